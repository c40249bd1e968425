import assert from "node:assert/strict";
import { ConfigError, parseConfig, publicConfig } from "../config.ts";
import { encodePng } from "../imaging/encode.ts";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue } from "../queue/contour_queue.ts";
import { createS3Store } from "../storage/s3_store.ts";
import { sweepRetention } from "../storage/retention.ts";
import { startContourWorker } from "../worker.ts";
import { fixture } from "./fixtures.ts";
import { listDir, spawnDeno, startTestService, taskFlags, upload, waitForTask } from "./harness.ts";
import { pollUntil } from "./redis_topologies.ts";
import { startS3rver } from "./s3rver.ts";

const HOUR = 3_600_000;

/** Names of the objects under `area` of the store the service uses. */
async function objects(env: Record<string, string>, area: "uploads" | "results"): Promise<string[]> {
  const store = createS3Store(parseConfig(env));
  return (await Array.fromAsync(store.list(area))).map((o) => o.name).sort();
}

/** A PNG over 5 MiB that analyses fast: two flat halves with noise in the low bits, which defeats compression. */
function largePng(width = 1800, height = 1500): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  let seed = 7;
  for (let i = 0; i < data.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    data[i] = (i < data.length / 2 ? 0 : 192) + (seed >>> 26);
  }
  return encodePng({ width, height, channels: 3, data });
}

Deno.test("STORAGE=s3 settings: a bucket and keys are required", () => {
  assert.equal(parseConfig({}).STORAGE, "local");
  for (const missing of ["S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"]) {
    const env: Record<string, string> = {
      STORAGE: "s3",
      S3_BUCKET: "b-1",
      S3_ACCESS_KEY_ID: "k",
      S3_SECRET_ACCESS_KEY: "s",
    };
    delete env[missing];
    assert.throws(
      () => parseConfig(env),
      (err: Error) =>
        err instanceof ConfigError && err.message.includes(`${missing}=undefined: required with STORAGE=s3`),
    );
  }
  assert.throws(() => parseConfig({ S3_PREFIX: "no-slash" }), /S3_PREFIX=.*ending in \//);
  // /info shows where objects go, never the keys.
  const shown = JSON.stringify(publicConfig(parseConfig({
    STORAGE: "s3",
    S3_BUCKET: "b-1",
    S3_ACCESS_KEY_ID: "AKIDSHOWNNOWHERE",
    S3_SECRET_ACCESS_KEY: "secret-shown-nowhere",
  })));
  assert.match(shown, /"bucket":"b-1"/);
  assert.ok(!shown.includes("SHOWNNOWHERE") && !shown.includes("shown-nowhere"), shown);
});

Deno.test("STORAGE=s3: a missing bucket stops the API at start with one line", async () => {
  const s3 = await startS3rver();
  try {
    const env = { ...s3.env, S3_BUCKET: "no-such-bucket", REDIS_AUTOSTART: "false", PORT: "0" };
    const { child, output } = spawnDeno(["run", ...await taskFlags("start", env), "main.ts"], env);
    const { code } = await child.status;
    const text = (await output).trim();
    assert.equal(code, 1, text);
    const last = text.split("\n").at(-1)!;
    assert.match(last, /^error: object storage: bucket no-such-bucket does not exist at http:\/\/127\.0\.0\.1:\d+;/);
  } finally {
    await s3.close();
  }
});

Deno.test("STORAGE=s3: uploads, results, lazy drawing, multipart, delete and retention live in the bucket", async (t) => {
  const s3 = await startS3rver();
  const env = { ...s3.env, S3_PREFIX: "svc/", S3_MULTIPART_THRESHOLD_MB: "5", MAX_FILE_SIZE: String(20 * 2 ** 20) };
  const svc = await startTestService({
    ...env,
    RESULT_TTL_HOURS: "1",
    WORKER_CONCURRENCY: "1",
    CALLBACK_SECRET: "a-secret-of-sixteen-or-more",
    CALLBACK_ALLOWED_HOSTS: "127.0.0.1",
  });
  const { base, config } = svc;
  const ids: string[] = [];
  const callbacks: Record<string, unknown>[] = [];
  const hook = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    callbacks.push(await req.json());
    return new Response("ok");
  });
  try {
    await t.step("an upload is analysed from the bucket and its results are served from it", async () => {
      const res = await upload(base, await fixture("coins.png"), "coins.png");
      assert.equal(res.status, 202, await res.clone().text());
      const accepted = await res.json();
      ids.push(accepted.task_id);
      assert.equal(accepted.file_path, `s3://${s3.bucket}/svc/uploads/${accepted.task_id}.png`);
      const status = await waitForTask(base, accepted.task_id);
      assert.equal(status.state, "completed", JSON.stringify(status));
      const image = await fetch(`${base}/static/results/${accepted.task_id}.png`);
      assert.equal(image.status, 200);
      assert.equal(image.headers.get("content-type"), "image/png");
      const bytes = new Uint8Array(await image.arrayBuffer());
      assert.equal(Number(image.headers.get("content-length")), bytes.length);
      const again = await fetch(`${base}/static/results/${accepted.task_id}.png`, {
        headers: { "if-none-match": image.headers.get("etag")! },
      });
      assert.equal(again.status, 304);
      await again.body?.cancel();
      const contours = await (await fetch(`${base}/api/v1/images/contours/${accepted.task_id}`)).json();
      assert.equal(contours.contour_count, 61);
      const data = await fetch(`${base}/static/results/${accepted.task_id}.json`);
      assert.equal((await data.json()).contour_count, 61);
      // Eager drawing: the upload is removed once the image exists; nothing of the task on the local disks.
      assert.deepEqual(await objects(env, "uploads"), []);
      assert.deepEqual(await objects(env, "results"), [`${accepted.task_id}.json`, `${accepted.task_id}.png`]);
      assert.deepEqual(await listDir(config.RESULT_DIR), []);
      assert.deepEqual(await listDir(config.UPLOAD_DIR), []);
    });
    await t.step(
      "an idempotent retry answers with the first task and stores one upload; its callback comes",
      async () => {
        const bytes = await fixture("coins.png");
        const send = () => {
          const form = new FormData();
          form.append("file", new File([bytes as Uint8Array<ArrayBuffer>], "coins.png"));
          form.append("callback_url", `http://127.0.0.1:${hook.addr.port}/hook`);
          return fetch(`${base}/api/v1/images/upload`, {
            method: "POST",
            body: form,
            headers: { "idempotency-key": "s3-key" },
          });
        };
        const first = await (await send()).json();
        const again = await send();
        assert.equal(again.headers.get("idempotent-replayed"), "true");
        assert.equal((await again.json()).task_id, first.task_id);
        ids.push(first.task_id);
        assert.equal((await waitForTask(base, first.task_id)).state, "completed");
        await pollUntil("the callback arrives", () => Promise.resolve(callbacks.length > 0));
        assert.deepEqual(callbacks.map((c) => [c.task_id, c.state]), [[first.task_id, "completed"]]);
        assert.deepEqual(await objects(env, "uploads"), [], "one upload, removed once drawn");
      },
    );
    await t.step(
      "render=lazy: drawn from the document in the bucket on the first request, then the upload goes",
      async () => {
        const form = new FormData();
        form.append("file", new File([await fixture("coins.png") as Uint8Array<ArrayBuffer>], "coins.png"));
        form.append("render", "lazy");
        const { task_id } = await (await fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form })).json();
        ids.push(task_id);
        assert.equal((await waitForTask(base, task_id)).state, "completed");
        assert.deepEqual(await objects(env, "uploads"), [`${task_id}.png`]);
        assert.deepEqual((await objects(env, "results")).filter((o) => o.startsWith(task_id)), [`${task_id}.json`]);
        const image = await fetch(`${base}/static/results/${task_id}.png`);
        assert.equal(image.status, 200);
        await image.body?.cancel();
        assert.deepEqual(await objects(env, "uploads"), []);
        assert.deepEqual((await objects(env, "results")).filter((o) => o.startsWith(task_id)).sort(), [
          `${task_id}.json`,
          `${task_id}.png`,
        ]);
      },
    );
    await t.step("an upload over the multipart threshold goes up in parts and is analysed whole", async () => {
      const png = largePng();
      assert.ok(png.length > 5 * 2 ** 20, `${png.length} bytes`);
      const res = await upload(base, png, "large.png");
      assert.equal(res.status, 202, await res.clone().text());
      const { task_id } = await res.json();
      ids.push(task_id);
      const status = await waitForTask(base, task_id, 60_000);
      assert.equal(status.state, "completed", JSON.stringify(status));
      const result = status.result as { width: number; height: number };
      assert.deepEqual([result.width, result.height], [1800, 1500]);
    });
    await t.step("DELETE removes the task's objects", async () => {
      const id = ids.pop()!;
      const res = await fetch(`${base}/api/v1/images/${id}`, { method: "DELETE" });
      assert.equal(res.status, 204);
      assert.ok(!(await objects(env, "results")).some((n) => n.startsWith(id)));
    });
    await t.step("retention removes expired results from the bucket", async () => {
      const redis = createRedis(config, "producer");
      await connectRedis(redis);
      const queue = createContourQueue(config, redis);
      try {
        const store = createS3Store(config);
        const report = await sweepRetention(config, queue, redis, Date.now() + 2 * HOUR, store);
        assert.equal(report.expired_results, ids.length);
        assert.deepEqual(await objects(env, "results"), []);
        assert.deepEqual(await objects(env, "uploads"), []);
      } finally {
        await queue.close();
        await closeRedis(redis);
      }
    });
  } finally {
    await hook.shutdown();
    await svc.close();
    await s3.close();
  }
});

Deno.test("STORAGE=s3 with S3_PRESIGNED_RESULTS: result files answer with a redirect to a presigned URL", async () => {
  const s3 = await startS3rver();
  const svc = await startTestService({ ...s3.env, S3_PRESIGNED_RESULTS: "true", S3_PRESIGNED_EXPIRY_SECONDS: "60" });
  try {
    const { task_id } = await (await upload(svc.base, await fixture("coins.png"), "coins.png")).json();
    assert.equal((await waitForTask(svc.base, task_id)).state, "completed");
    for (const [name, type] of [[`${task_id}.png`, "image/png"], [`${task_id}.json`, "application/json"]]) {
      const res = await fetch(`${svc.base}/static/results/${name}`, { redirect: "manual" });
      assert.equal(res.status, 307);
      assert.equal(res.headers.get("cache-control"), "no-store");
      const location = new URL(res.headers.get("location")!);
      await res.body?.cancel();
      assert.equal(location.searchParams.get("X-Amz-Expires"), "60");
      assert.equal(location.searchParams.get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
      // s3rver checks the signature, as S3 would.
      const object = await fetch(location);
      assert.equal(object.status, 200, await object.clone().text());
      assert.match(
        object.headers.get("content-type") ?? "",
        new RegExp(type === "image/png" ? "png|octet" : "json|octet"),
      );
      await object.body?.cancel();
    }
    const missing = await fetch(`${svc.base}/static/results/${crypto.randomUUID()}.png`, { redirect: "manual" });
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await svc.close();
    await s3.close();
  }
});

Deno.test("STORAGE=s3 outages: an upload gets 503 and is not queued; a job retries, then fails storage_unavailable", async (t) => {
  const s3 = await startS3rver();
  const svc = await startTestService({ ...s3.env, EMBEDDED_WORKER: "false", JOB_ATTEMPTS: "2" });
  const redis = createRedis(svc.config, "producer");
  await connectRedis(redis);
  const queue = createContourQueue(svc.config, redis);
  let worker: Awaited<ReturnType<typeof startContourWorker>> | undefined;
  try {
    await t.step("bucket down during an upload → 503 with Retry-After, no job", async () => {
      await s3.stop();
      const res = await upload(svc.base, await fixture("coins.png"), "coins.png");
      assert.equal(res.status, 503);
      assert.ok(Number(res.headers.get("retry-after")) > 0);
      assert.equal((await res.json()).error.code, "service_unavailable");
      const counts = await queue.getJobCounts();
      assert.equal(Object.values(counts).reduce((a, b) => a + b, 0), 0, JSON.stringify(counts));
      assert.deepEqual(await listDir(svc.config.UPLOAD_DIR), [], "no partial upload left on the disk");
      await s3.start();
    });
    await t.step("bucket down while the job runs → retried, then failed with storage_unavailable", async () => {
      const { task_id } = await (await upload(svc.base, await fixture("coins.png"), "coins.png")).json();
      await s3.stop();
      // The bucket is checked at start, which is not what this step is about.
      worker = await startContourWorker(svc.config, { ...createS3Store(svc.config), prepare: () => Promise.resolve() });
      const status = await waitForTask(svc.base, task_id);
      assert.equal(status.state, "failed");
      assert.equal(status.attempts, 2);
      assert.equal((status.error as { code: string }).code, "storage_unavailable", JSON.stringify(status));
    });
  } finally {
    await worker?.close();
    await queue.close();
    await closeRedis(redis);
    await svc.close();
    await s3.close();
  }
});
