import assert from "node:assert/strict";
import { join } from "node:path";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue } from "../queue/contour_queue.ts";
import { sweepRetention } from "../storage/retention.ts";
import { startContourWorker } from "../worker.ts";
import { fixture } from "./fixtures.ts";
import { listDir, startTestService, upload, waitForTask } from "./harness.ts";

const HOUR = 3_600_000;

Deno.test("retention: expired results, orphans and old uploads go; files live jobs need stay", async () => {
  const svc = await startTestService({ EMBEDDED_WORKER: "false", RESULT_TTL_HOURS: "1", UPLOAD_TTL_HOURS: "1" });
  const redis = createRedis(svc.config, "producer");
  await connectRedis(redis);
  const queue = createContourQueue(svc.config, redis);
  const { UPLOAD_DIR, RESULT_DIR } = svc.config;
  const old = new Date(Date.now() - 3 * HOUR);
  try {
    // A completed task, processed by a worker that is then stopped.
    const worker = await startContourWorker(svc.config);
    const done = (await (await upload(svc.base, await fixture("page.png"), "page.png")).json()).task_id;
    assert.equal((await waitForTask(svc.base, done)).state, "completed");
    await worker.close();
    // A queued task (no worker now): its upload must survive any sweep.
    const queued = (await (await upload(svc.base, await fixture("coins.png"), "coins.png")).json()).task_id;
    const queuedUpload = (await listDir(UPLOAD_DIR)).find((f) => f.startsWith(queued))!;
    await Deno.utime(join(UPLOAD_DIR, queuedUpload), old, old);
    // Orphans: files whose task never existed, one old and one just written.
    const orphan = crypto.randomUUID(), fresh = crypto.randomUUID();
    for (
      const [dir, name] of [[UPLOAD_DIR, `${orphan}.png`], [RESULT_DIR, `${orphan}.png`], [
        RESULT_DIR,
        `${orphan}.json`,
      ]]
    ) {
      await Deno.writeTextFile(join(dir, name), "x");
      await Deno.utime(join(dir, name), old, old);
    }
    await Deno.writeTextFile(join(UPLOAD_DIR, `${fresh}.png`), "x");
    // An upload an API was receiving when it died, and one being received now.
    const abandoned = `.incoming-${crypto.randomUUID()}`, arriving = `.incoming-${crypto.randomUUID()}`;
    await Deno.writeTextFile(join(UPLOAD_DIR, abandoned), "x");
    await Deno.utime(join(UPLOAD_DIR, abandoned), old, old);
    await Deno.writeTextFile(join(UPLOAD_DIR, arriving), "x");

    const first = await sweepRetention(svc.config, queue, redis);
    assert.deepEqual(first, { expired_results: 0, orphan_results: 2, uploads: 2 });
    assert.ok(!(await listDir(UPLOAD_DIR)).includes(abandoned), "an abandoned partial upload is removed");
    assert.ok((await listDir(UPLOAD_DIR)).includes(arriving), "an upload still arriving is kept");
    assert.ok((await listDir(UPLOAD_DIR)).includes(queuedUpload), "a queued task's upload is kept");
    assert.ok((await listDir(UPLOAD_DIR)).includes(`${fresh}.png`), "a fresh file is never taken for an orphan");
    assert.ok((await listDir(RESULT_DIR)).some((f) => f.startsWith(done)), "an unexpired result is kept");

    // Two hours later, the completed task's result has outlived RESULT_TTL_HOURS=1.
    const later = await sweepRetention(svc.config, queue, redis, Date.now() + 2 * HOUR);
    assert.equal(later.expired_results, 1);
    assert.deepEqual((await listDir(RESULT_DIR)).filter((f) => f.startsWith(done)), []);
    const status = await fetch(`${svc.base}/api/v1/images/status/${done}`);
    assert.equal(status.status, 404);
    await status.body?.cancel();
    const list = await (await fetch(`${svc.base}/api/v1/images/results`)).json();
    assert.equal(list.items.length, 0);
    assert.ok((await listDir(UPLOAD_DIR)).includes(queuedUpload), "still kept: its job is still queued");
  } finally {
    await queue.close();
    await closeRedis(redis);
    await svc.close();
  }
});

Deno.test("KEEP_UPLOADS=true keeps the upload after a successful job (removed by default: see api_test)", async () => {
  const svc = await startTestService({ KEEP_UPLOADS: "true" });
  try {
    const { task_id } = await (await upload(svc.base, await fixture("page.png"), "page.png")).json();
    assert.equal((await waitForTask(svc.base, task_id)).state, "completed");
    // The removal would follow completion at once; give the completed-event handler its turn, with a deadline.
    const until = Date.now() + 1000;
    while (Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.ok((await listDir(svc.config.UPLOAD_DIR)).some((f) => f.startsWith(task_id)));
  } finally {
    await svc.close();
  }
});
