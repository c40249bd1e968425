import assert from "node:assert/strict";
import { join } from "node:path";
import { QueueEvents, Worker } from "bullmq";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue } from "../queue/contour_queue.ts";
import { retentionQueueName, type SweepReport, sweepRetention } from "../storage/retention.ts";
import { startContourWorker } from "../worker.ts";
import { fixture } from "./fixtures.ts";
import { listDir, startTestService, upload, waitForTask, waitUntil } from "./harness.ts";

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
    // Emptied files a process keeps to write over: one left by a process long gone, one of a running process.
    const staleSpare = `.spare-${crypto.randomUUID()}`, liveSpare = `.spare-${crypto.randomUUID()}`;
    await Deno.writeFile(join(UPLOAD_DIR, staleSpare), new Uint8Array());
    await Deno.utime(join(UPLOAD_DIR, staleSpare), old, old);
    await Deno.writeFile(join(UPLOAD_DIR, liveSpare), new Uint8Array());

    const first = await sweepRetention(svc.config, queue, redis);
    assert.deepEqual(first, { expired_results: 0, expired_failed: 0, orphan_results: 2, uploads: 2 });
    assert.ok(!(await listDir(UPLOAD_DIR)).includes(abandoned), "an abandoned partial upload is removed");
    assert.ok((await listDir(UPLOAD_DIR)).includes(arriving), "an upload still arriving is kept");
    assert.ok(!(await listDir(UPLOAD_DIR)).includes(staleSpare), "a spare file left long ago is removed");
    assert.ok((await listDir(UPLOAD_DIR)).includes(liveSpare), "a recent spare file is kept");
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

// 0.0003 h ≈ 1 s: the tests below wait for real expiry instead of sweeping "later", which would also age every file
// past the orphan pass's 10 minutes and hide whether the expiry itself removed them.
const TINY_TTL_HOURS = "0.0003";

/** Sweeps until a sweep reports what `done` looks for, failing after `timeoutMs`; returns every report. */
async function sweepUntil(
  args: Parameters<typeof sweepRetention>,
  done: (report: SweepReport) => boolean,
  timeoutMs = 15_000,
): Promise<SweepReport[]> {
  const until = Date.now() + timeoutMs;
  const reports: SweepReport[] = [];
  while (Date.now() < until) {
    reports.push(await sweepRetention(...args));
    if (done(reports.at(-1)!)) return reports;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no sweep expired the task within ${timeoutMs} ms; reports ${JSON.stringify(reports.slice(-3))}`);
}

async function statusOf(base: string, taskId: string): Promise<{ code: number; state?: string }> {
  const res = await fetch(`${base}/api/v1/images/status/${taskId}`);
  const body = await res.json();
  return { code: res.status, state: body.state };
}

Deno.test("retention: a failed job past RESULT_TTL_HOURS goes with its upload; queued and active jobs stay", async () => {
  const svc = await startTestService({
    EMBEDDED_WORKER: "false",
    RESULT_TTL_HOURS: TINY_TTL_HOURS,
    UPLOAD_TTL_HOURS: "1",
  });
  const redis = createRedis(svc.config, "producer");
  await connectRedis(redis);
  const queue = createContourQueue(svc.config, redis);
  const { UPLOAD_DIR } = svc.config;
  const holderRedis = createRedis(svc.config, "worker");
  let holder: Worker | undefined;
  try {
    const worker = await startContourWorker(svc.config);
    // A BMP whose header names a compression the decoder does not support: accepted at upload, failed by the worker.
    const bmp = (await fixture("coins.bmp")).slice();
    new DataView(bmp.buffer).setUint32(30, 4, true);
    const failed = (await (await upload(svc.base, bmp, "coins.bmp")).json()).task_id;
    const final = await waitForTask(svc.base, failed);
    assert.equal(final.state, "failed");
    assert.equal((final.error as { code: string }).code, "unsupported_image");
    await worker.close();
    assert.ok((await listDir(UPLOAD_DIR)).some((f) => f.startsWith(failed)), "a failed job keeps its upload");

    // With no contour worker left, one job is taken by a bare BullMQ worker (active) and one stays queued.
    const active = (await (await upload(svc.base, await fixture("page.png"), "page.png")).json()).task_id;
    const queued = (await (await upload(svc.base, await fixture("coins.png"), "coins.png")).json()).task_id;
    holder = new Worker(svc.config.QUEUE_NAME, null, {
      connection: holderRedis,
      prefix: svc.config.QUEUE_PREFIX,
    });
    holder.on("error", () => {});
    const held = await holder.getNextJob("retention-test", { block: false });
    assert.equal(held?.id, active);
    assert.equal((await statusOf(svc.base, active)).state, "active");
    assert.equal((await statusOf(svc.base, queued)).state, "queued");

    const reports = await sweepUntil([svc.config, queue, redis], (r) => r.expired_failed > 0);
    assert.deepEqual(reports.at(-1), { expired_results: 0, expired_failed: 1, orphan_results: 0, uploads: 1 });
    assert.equal((await statusOf(svc.base, failed)).code, 404);
    assert.ok(!(await listDir(UPLOAD_DIR)).some((f) => f.startsWith(failed)), "its upload went with it");
    // Both are older than RESULT_TTL_HOURS too, yet neither has finished.
    assert.deepEqual(await statusOf(svc.base, active), { code: 200, state: "active" });
    assert.deepEqual(await statusOf(svc.base, queued), { code: 200, state: "queued" });
    for (const id of [active, queued]) {
      assert.ok((await listDir(UPLOAD_DIR)).some((f) => f.startsWith(id)), `the upload of ${id} is kept`);
    }
    assert.equal(reports.reduce((n, r) => n + r.expired_results, 0), 0);
  } finally {
    // The held job's lock would otherwise keep close() waiting for a job this worker never runs.
    await holder?.close(true);
    await closeRedis(holderRedis);
    await queue.close();
    await closeRedis(redis);
    await svc.close();
  }
});

Deno.test("retention: an expired task's result files and upload go in the sweep that expires it", async () => {
  // Eager rendering and kept uploads: the task has all three files (image, data, upload) when it expires.
  const svc = await startTestService({
    EMBEDDED_WORKER: "false",
    RESULT_TTL_HOURS: TINY_TTL_HOURS,
    RENDER: "eager",
    KEEP_UPLOADS: "true",
  });
  const redis = createRedis(svc.config, "producer");
  await connectRedis(redis);
  const queue = createContourQueue(svc.config, redis);
  const { UPLOAD_DIR, RESULT_DIR } = svc.config;
  const served = async (url: string) => {
    const res = await fetch(svc.base + url);
    await res.body?.cancel();
    return res.status;
  };
  try {
    const worker = await startContourWorker(svc.config);
    const id = (await (await upload(svc.base, await fixture("page.png"), "page.png")).json()).task_id;
    const done = await waitForTask(svc.base, id);
    await worker.close();
    assert.equal(done.state, "completed");
    const { result_url, data_url } = done.result as { result_url: string; data_url: string };
    assert.deepEqual((await listDir(RESULT_DIR)).filter((f) => f.startsWith(id)).sort(), [`${id}.json`, `${id}.png`]);
    assert.ok((await listDir(UPLOAD_DIR)).some((f) => f.startsWith(id)));
    assert.equal(await served(result_url), 200);
    assert.equal(await served(data_url), 200);

    const reports = await sweepUntil([svc.config, queue, redis], (r) => r.expired_results > 0);
    // Checked at once: the files are minutes short of the orphan age, so only the expiry can have removed them.
    assert.deepEqual((await listDir(RESULT_DIR)).filter((f) => f.startsWith(id)), []);
    assert.deepEqual((await listDir(UPLOAD_DIR)).filter((f) => f.startsWith(id)), []);
    assert.deepEqual(reports.at(-1), { expired_results: 1, expired_failed: 0, orphan_results: 0, uploads: 1 });
    assert.equal(await served(result_url), 404);
    assert.equal(await served(data_url), 404);
    assert.equal((await statusOf(svc.base, id)).code, 404);
    const list = await (await fetch(`${svc.base}/api/v1/images/results`)).json();
    assert.deepEqual(list.items, []);
  } finally {
    await queue.close();
    await closeRedis(redis);
    await svc.close();
  }
});

Deno.test("retention: two worker processes sweep once per interval between them, not once each", async () => {
  // 0.01 min = 600 ms between sweeps.
  const svc = await startTestService({ EMBEDDED_WORKER: "false", RETENTION_SWEEP_MINUTES: "0.01" });
  const every = 600;
  const { UPLOAD_DIR } = svc.config;
  const eventsRedis = createRedis(svc.config, "worker");
  const events = new QueueEvents(retentionQueueName(svc.config), {
    connection: eventsRedis,
    prefix: svc.config.QUEUE_PREFIX,
  });
  events.on("error", () => {});
  const workers = [];
  try {
    await events.waitUntilReady();
    const swept: { id: string; at: number }[] = [];
    events.on("completed", ({ jobId }) => swept.push({ id: jobId, at: Date.now() }));
    // An orphan upload past the orphan age: only a scheduled sweep can remove it, as nothing here sweeps by hand.
    const orphan = `${crypto.randomUUID()}.png`;
    await Deno.mkdir(UPLOAD_DIR, { recursive: true });
    await Deno.writeTextFile(join(UPLOAD_DIR, orphan), "x");
    const old = new Date(Date.now() - 3 * HOUR);
    await Deno.utime(join(UPLOAD_DIR, orphan), old, old);
    // Two worker processes' worth: each schedules the sweeps and takes sweep jobs.
    const started = Date.now();
    for (let i = 0; i < 2; i++) workers.push(await startContourWorker(svc.config));
    const until = started + 20_000;
    while (swept.length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const elapsed = Date.now() - started;
    assert.ok(swept.length >= 5, `${swept.length} sweeps in ${elapsed} ms; expected one each ${every} ms`);
    assert.ok(!(await listDir(UPLOAD_DIR)).includes(orphan), "the scheduled sweeps removed the orphan upload");
    // Each sweep is one job of the one scheduler, named after its slot: slots one interval apart, none taken twice.
    const slots = swept.map(({ id }) => Number(/^repeat:retention-sweep:(\d+)$/.exec(id)?.[1]));
    assert.equal(new Set(slots).size, slots.length, `a slot swept twice: ${slots}`);
    for (let i = 1; i < slots.length; i++) assert.equal(slots[i] - slots[i - 1], every, `slots ${slots}`);
    // Had each process swept on its own timer, there would be two sweeps per interval.
    assert.ok(swept.length <= Math.floor(elapsed / every) + 1, `${swept.length} sweeps in ${elapsed} ms`);
  } finally {
    for (const w of workers) await w.close();
    await events.close();
    await closeRedis(eventsRedis);
    await svc.close();
  }
});

Deno.test("KEEP_UPLOADS=true keeps the upload after a successful job (removed by default: see api_test)", async () => {
  const svc = await startTestService({ KEEP_UPLOADS: "true", EMBEDDED_WORKER: "false" });
  const worker = await startContourWorker(svc.config);
  try {
    // The worker removes an upload in its own "completed" listener; listeners run in the order they were added, so
    // once this later one has heard of the job, the worker's has made its choice.
    const heard = new Set<string>();
    worker.worker.on("completed", (job) => heard.add(job.id ?? ""));
    const { task_id } = await (await upload(svc.base, await fixture("page.png"), "page.png")).json();
    assert.equal((await waitForTask(svc.base, task_id)).state, "completed");
    await waitUntil("the worker's completed event", 10_000, () => heard.has(task_id));
    assert.ok((await listDir(svc.config.UPLOAD_DIR)).some((f) => f.startsWith(task_id)));
  } finally {
    await worker.close();
    await svc.close();
  }
});
