import assert from "node:assert/strict";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { encodePng } from "../imaging/encode.ts";
import { closeRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue } from "../queue/contour_queue.ts";
import { killProcesses, spawnWorker, startTestService, type TestService, waitForTask } from "./harness.ts";

/** A 4000×4000 checkerboard: about 1 MB as PNG, and seconds of work with a 99 px blur and a 255 px adaptive block. */
function bigPng(): Uint8Array {
  const size = 4000;
  const data = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) data[y * size + x] = ((x >> 4) ^ (y >> 4)) & 1 ? 200 : 40;
  }
  return encodePng({ width: size, height: size, channels: 1, data });
}

async function uploadSlow(svc: TestService, png: Uint8Array): Promise<string> {
  const form = new FormData();
  form.append("file", new File([png as Uint8Array<ArrayBuffer>], "big.png"));
  for (const [k, v] of Object.entries({ blur: "99", threshold: "adaptive", block_size: "255" })) form.append(k, v);
  const res = await fetch(`${svc.base}/api/v1/images/upload`, { method: "POST", body: form });
  const body = await res.json();
  assert.equal(res.status, 202, JSON.stringify(body));
  return body.task_id;
}

/** Polls the status until `ok` holds, failing after `timeoutMs`. */
async function waitForStatus(
  svc: TestService,
  taskId: string,
  ok: (s: { state: string; progress: number }) => boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = {};
  while (Date.now() < until) {
    last = await (await fetch(`${svc.base}/api/v1/images/status/${taskId}`)).json();
    if (ok(last as { state: string; progress: number })) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`task ${taskId}: condition not met within ${timeoutMs} ms; last status ${JSON.stringify(last)}`);
}

Deno.test("SIGTERM on a worker: jobs it took but had not finished go back to the queue without using an attempt", async () => {
  // One attempt per job: a shutdown counted as a failed attempt would fail the job for good.
  const svc = await startTestService({ EMBEDDED_WORKER: "false", JOB_ATTEMPTS: "1" });
  const redis = createRedis(svc.config, "producer");
  const queue = createContourQueue(svc.config, redis);
  // One pool member, so the worker holds two jobs: one being analysed and one waiting for the member.
  const first = await spawnWorker(svc, { WORKER_CONCURRENCY: "1", WORKER_GRACE_MS: "500" });
  let second: Awaited<ReturnType<typeof spawnWorker>> | undefined;
  try {
    const png = bigPng();
    const analysed = await uploadSlow(svc, png);
    await waitForStatus(svc, analysed, (s) => s.state === "active" && s.progress === 10);
    const untouched = await uploadSlow(svc, png);
    await waitForStatus(svc, untouched, (s) => s.state === "active");
    first.child.kill("SIGTERM");
    // The grace (0.5 s) plus 1 s for the cut-off job to go back, plus closing the connections.
    const exited = await withDeadline(first.child.status, 10_000);
    assert.notEqual(exited, TIMED_OUT, "the worker exits within 10 s of SIGTERM");
    const out = await first.output;
    assert.equal(exited === TIMED_OUT ? -1 : exited.code, 0, out);
    const returned = (id: string) =>
      out.split("\n").filter((l) => l.includes('"job returned to the queue"') && l.includes(id))
        .map((l) => JSON.parse(l));
    assert.deepEqual(returned(untouched).map((l) => l.cut_off), [false], out);
    assert.deepEqual(returned(analysed).map((l) => l.cut_off), [true], out);
    for (const id of [untouched, analysed]) {
      const job = (await queue.getJob(id))!;
      // Queued again: every upload carries a priority, so BullMQ keeps it in its prioritized set.
      assert.equal(await job.getState(), "prioritized", id);
      assert.equal(job.attemptsMade, 0, `${id}: no attempt used`);
      assert.equal(job.progress, 0, `${id}: shown as not started`);
    }
    for (const id of [untouched, analysed]) {
      const status = await (await fetch(`${svc.base}/api/v1/images/status/${id}`)).json();
      assert.equal(status.state, "queued");
      assert.equal(status.started_at, null, "queued again, not started");
    }
    // A new worker takes both up and finishes each on its first (and only) attempt.
    second = await spawnWorker(svc, { WORKER_CONCURRENCY: "2" });
    for (const id of [analysed, untouched]) {
      const done = await waitForTask(svc.base, id, 120_000);
      assert.equal(done.state, "completed", JSON.stringify(done));
      assert.equal(done.attempts, 1);
    }
  } finally {
    await killProcesses(first, second);
    await queue.close();
    await closeRedis(redis);
    await svc.close();
  }
});
