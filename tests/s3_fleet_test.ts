import assert from "node:assert/strict";
import { join } from "node:path";
import { fixture } from "./fixtures.ts";
import { dropPrefix, killProcesses, listDir, sparePort, spawnDeno, taskFlags, testConfig, upload } from "./harness.ts";
import { pollUntil } from "./redis_topologies.ts";
import { startS3rver } from "./s3rver.ts";

const UPLOADS = Number(Deno.env.get("FLEET_UPLOADS") ?? 300);
const CONCURRENCY = 8;

type Proc = ReturnType<typeof spawnDeno>;

Deno.test("STORAGE=s3: two APIs and two workers, each with its own private disk, share one Redis and one bucket", async () => {
  const s3 = await startS3rver();
  const shared = testConfig();
  const roots: string[] = [];
  const procs: Proc[] = [];
  const env = (role: string) => {
    const root = join(shared.UPLOAD_DIR, "..", role);
    roots.push(root);
    return {
      ...s3.env,
      QUEUE_PREFIX: shared.QUEUE_PREFIX,
      REDIS_AUTOSTART: "false",
      UPLOAD_DIR: join(root, "uploads"),
      RESULT_DIR: join(root, "results"),
      EMBEDDED_WORKER: "false",
      WORKER_CONCURRENCY: "1",
      RATE_LIMIT: "0",
      HOST: "127.0.0.1",
    };
  };
  try {
    const apis: string[] = [];
    for (const role of ["api-a", "api-b"]) {
      const port = sparePort();
      const e = { ...env(role), PORT: String(port) };
      procs.push(spawnDeno(["run", ...await taskFlags("start", e), `--allow-write=${roots.at(-1)}`, "main.ts"], e));
      apis.push(`http://127.0.0.1:${port}`);
    }
    for (const role of ["worker-a", "worker-b"]) {
      const e = env(role);
      procs.push(spawnDeno(["run", ...await taskFlags("worker", e), `--allow-write=${roots.at(-1)}`, "worker.ts"], e));
    }
    for (const api of apis) {
      await pollUntil(`${api} answers with two workers connected`, async () => {
        const res = await fetch(`${api}/api/v1/health/worker`).catch(() => null);
        const body = res ? await res.json().catch(() => ({})) : {};
        return body.workers === 2;
      }, 60_000);
    }

    const bytes = await fixture("coins.png");
    const ids: string[] = [];
    const started = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < UPLOADS) {
        const i = next++;
        const res = await upload(apis[i % 2], bytes, `coins-${i}.png`);
        assert.equal(res.status, 202, await res.clone().text());
        ids[i] = (await res.json()).task_id;
      }
    }));
    const pending = new Set(ids);
    await pollUntil(`all ${UPLOADS} uploads complete`, async () => {
      for (const id of [...pending]) {
        const status = await (await fetch(`${apis[0]}/api/v1/images/status/${id}`)).json();
        assert.notEqual(status.state, "failed", JSON.stringify(status));
        if (status.state === "completed") pending.delete(id);
      }
      return pending.size === 0;
    }, 150_000);
    const seconds = (performance.now() - started) / 1000;
    console.log(`${UPLOADS} uploads through 2 APIs, 2 workers, s3rver: ${(UPLOADS / seconds).toFixed(1)} images/s`);

    // Every image and every export, from either API.
    let served = 0;
    next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < ids.length) {
        const id = ids[next++];
        for (
          const [api, path, type] of [
            [apis[0], `/static/results/${id}.png`, "image/png"],
            [apis[1], `/static/results/${id}.png`, "image/png"],
            [apis[1], `/static/results/${id}.json`, "application/json"],
            [apis[0], `/api/v1/images/contours/${id}`, "application/json"],
            [apis[1], `/api/v1/images/contours/${id}?format=svg`, "image/svg+xml"],
            [apis[0], `/api/v1/images/contours/${id}?format=geojson`, "application/geo+json"],
          ]
        ) {
          const res = await fetch(`${api}${path}`);
          assert.equal(res.status, 200, `${api}${path}: ${await res.clone().text()}`);
          assert.ok(res.headers.get("content-type")?.startsWith(type), `${path}: ${res.headers.get("content-type")}`);
          assert.ok((await res.arrayBuffer()).byteLength > 0);
          served++;
        }
      }
    }));
    assert.equal(served, UPLOADS * 6);
    // Nothing of any task stayed on a process's own disk.
    for (const root of roots) {
      for (const dir of ["uploads", "results"]) assert.deepEqual(await listDir(join(root, dir)), [], `${root}/${dir}`);
    }
  } finally {
    for (const p of procs) {
      try {
        p.child.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
    await Promise.all(procs.map((p) => p.child.status));
    await killProcesses(...procs);
    await dropPrefix(shared);
    await Deno.remove(join(shared.UPLOAD_DIR, ".."), { recursive: true }).catch(() => {});
    await s3.close();
  }
});
