import assert from "node:assert/strict";
import { parseConfig } from "../config.ts";
import { fixture } from "./fixtures.ts";
import { dropPrefix, sparePort, taskFlags, testTempDir } from "./harness.ts";

// Bounded: LOAD_UPLOADS (default 1000) uploads at concurrency 32, against 2 API and 2 worker processes on one Redis.
const UPLOADS = Number(Deno.env.get("LOAD_UPLOADS") ?? 1000);
const CONCURRENCY = 32;

async function rssKiB(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)], stdout: "piped" }).output();
  return Number(new TextDecoder().decode(out.stdout).trim());
}

Deno.test("load: no 5xx, every accepted upload completes exactly once, worker memory flat", async () => {
  const root = testTempDir();
  const prefix = `test-${crypto.randomUUID()}`;
  const [startFlags, workerFlags] = await Promise.all([taskFlags("start"), taskFlags("worker")]);
  const env = {
    QUEUE_PREFIX: prefix,
    UPLOAD_DIR: `${root}/uploads`,
    RESULT_DIR: `${root}/results`,
    RATE_LIMIT: "0",
    HOST: "127.0.0.1",
  };
  const ports = [sparePort(), sparePort()];
  const spawn = (args: string[], extra: Record<string, string>) =>
    new Deno.Command("deno", {
      args,
      cwd: new URL("..", import.meta.url),
      env: { ...env, ...extra },
      stdout: "null",
      stderr: "piped",
    }).spawn();
  const apis = ports.map((port) =>
    spawn(["run", ...startFlags, `--allow-write=${root}`, "main.ts"], {
      PORT: String(port),
      EMBEDDED_WORKER: "false",
    })
  );
  const workers = [0, 1].map(() =>
    spawn(["run", ...workerFlags, `--allow-write=${root}`, "worker.ts"], { WORKER_CONCURRENCY: "1" })
  );
  const stderr = [...apis, ...workers].map((p) => new Response(p.stderr).text());
  const bases = ports.map((p) => `http://127.0.0.1:${p}`);
  try {
    // Both APIs up and both workers connected.
    const until = Date.now() + 60_000;
    let ready = false;
    while (!ready && Date.now() < until) {
      const health = await Promise.all(
        bases.map((b) => fetch(`${b}/api/v1/health/worker`).then((r) => r.json(), () => ({ workers: 0 }))),
      );
      ready = health.every((h) => h.workers >= 2);
      if (!ready) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(ready, "the 2 APIs and 2 workers did not come up within 60 s");

    const images = [await fixture("page.png"), await fixture("coins.png"), await fixture("rocket.jpg")];
    const statuses = new Map<number, number>();
    const accepted = new Set<string>();
    let next = 0;
    let rssStart = 0;
    const client = async () => {
      for (let i = next++; i < UPLOADS; i = next++) {
        const form = new FormData();
        form.append("file", new File([images[i % images.length] as Uint8Array<ArrayBuffer>], `img-${i}.png`));
        const res = await fetch(`${bases[i % 2]}/api/v1/images/upload`, { method: "POST", body: form });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const body = await res.json();
        if (res.status === 202) accepted.add(body.task_id);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));
    const fiveXX = [...statuses].filter(([s]) => s >= 500).reduce((n, [, c]) => n + c, 0);
    assert.equal(fiveXX, 0, `5xx answers: ${JSON.stringify([...statuses])}`);
    assert.equal(accepted.size, UPLOADS, `statuses ${JSON.stringify([...statuses])}`);

    // Every accepted task reaches completed: wait on the queue's own count.
    const done = Date.now() + 300_000;
    let counts = { completed: 0, failed: 0 };
    while (Date.now() < done) {
      counts = (await (await fetch(`${bases[0]}/api/v1/health/worker`)).json()).queue;
      // The baseline is taken once a quarter is processed: after warm-up (OpenCV, JIT, heap sizing), before the rest.
      if (rssStart === 0 && counts.completed >= UPLOADS / 4) {
        rssStart = (await Promise.all(workers.map((w) => rssKiB(w.pid)))).reduce((a, b) => a + b);
      }
      if (counts.completed + counts.failed >= UPLOADS) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(counts.failed, 0);
    assert.equal(counts.completed, UPLOADS);

    // No duplicates: the results index holds each task once.
    const seen = new Set<string>();
    let cursor: string | null = null;
    let items = 0;
    do {
      const page: { items: { task_id: string }[]; next_cursor: string | null } = await (await fetch(
        `${bases[1]}/api/v1/images/results?limit=100${cursor ? `&cursor=${cursor}` : ""}`,
      )).json();
      for (const item of page.items) seen.add(item.task_id);
      items += page.items.length;
      cursor = page.next_cursor;
    } while (cursor);
    assert.equal(items, UPLOADS, "every result listed once");
    assert.deepEqual([...seen].sort(), [...accepted].sort());

    const rssEnd = (await Promise.all(workers.map((w) => rssKiB(w.pid)))).reduce((a, b) => a + b);
    console.log(
      `load: ${UPLOADS} uploads, concurrency ${CONCURRENCY}: statuses ${
        JSON.stringify(Object.fromEntries(statuses))
      }; ` +
        `worker RSS (both) ${Math.round(rssStart / 1024)} MiB after ${UPLOADS / 4} images → ${
          Math.round(rssEnd / 1024)
        } MiB ` +
        `after ${UPLOADS}`,
    );
    // The point is that memory does not grow with the number of images processed (every Mat freed).
    assert.ok(rssEnd < rssStart * 1.25, `worker RSS grew from ${rssStart} KiB to ${rssEnd} KiB`);
  } finally {
    for (const p of [...apis, ...workers]) {
      try {
        p.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
    for (const p of [...apis, ...workers]) await p.status;
    await Promise.all(stderr);
    await dropPrefix(parseConfig({ QUEUE_PREFIX: prefix }));
    await Deno.remove(root, { recursive: true });
  }
});
