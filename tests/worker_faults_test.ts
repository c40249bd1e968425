import assert from "node:assert/strict";
import jpeg from "jpeg-js";
import { closeRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue } from "../queue/contour_queue.ts";
import { noisePng } from "../bench/heavy.ts";
import { fixture } from "./fixtures.ts";
import {
  analysisCpuSeconds,
  killProcesses,
  spawnWorker,
  startTestService,
  type TestService,
  upload,
  uploadWith,
  waitForTask,
} from "./harness.ts";

// One pool member, and a lock short enough that a killed worker's job is taken up again within seconds.
const FAST_LOCKS = { WORKER_CONCURRENCY: "1", LOCK_DURATION_MS: "2000" };

/** A noisy 3000×2000 JPEG: slow enough to decode that a worker can be caught in the middle of it. */
function bigJpeg(): Uint8Array {
  const width = 3000, height = 2000;
  const data = new Uint8Array(width * height * 4);
  let seed = 12345;
  for (let i = 0; i < data.length; i += 4) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    data[i] = data[i + 1] = data[i + 2] = (seed >> 16) & 0xff;
    data[i + 3] = 255;
  }
  return jpeg.encode({ width, height, data }, 90).data;
}

async function waitForState(
  svc: TestService,
  taskId: string,
  state: string,
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const s = await (await fetch(`${svc.base}/api/v1/images/status/${taskId}`)).json();
    if (s.state === state) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`task ${taskId} never became ${state}`);
}

Deno.test("a worker killed with SIGKILL mid-job: the job is taken up again and completes once", async () => {
  const svc = await startTestService({ EMBEDDED_WORKER: "false", LOCK_DURATION_MS: "2000" });
  const first = await spawnWorker(svc, FAST_LOCKS);
  let second: Awaited<ReturnType<typeof spawnWorker>> | undefined;
  try {
    const res = await upload(svc.base, bigJpeg(), "big.jpg");
    assert.equal(res.status, 202);
    const { task_id } = await res.json();
    await waitForState(svc, task_id, "active");
    first.child.kill("SIGKILL");
    await first.child.status;
    assert.doesNotMatch(await first.output, new RegExp(`job completed.*${task_id}`), "killed before it finished");
    second = await spawnWorker(svc, FAST_LOCKS);
    const status = await waitForTask(svc.base, task_id, 60_000);
    assert.equal(status.state, "completed", JSON.stringify(status));
    const list = await (await fetch(`${svc.base}/api/v1/images/results?limit=100`)).json();
    assert.equal(list.items.filter((i: { task_id: string }) => i.task_id === task_id).length, 1, "one result");
  } finally {
    await killProcesses(first, second);
    await svc.close();
  }
});

Deno.test("SIGTERM: a worker finishes its active job within the grace period, then exits 0", async () => {
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  const worker = await spawnWorker(svc, { ...FAST_LOCKS, WORKER_GRACE_MS: "60000" });
  try {
    // A noise image with every measurement: seconds of analysis, so the signal lands while it runs.
    const task_id = await uploadWith(svc.base, await noisePng(3000), "noise.png", { measurements: "all" });
    // A job still reading its upload when SIGTERM comes is handed back to the queue instead (worker_shutdown_test.ts):
    // the signal waits for the analysis thread, idle before this job, to use CPU.
    await waitForState(svc, task_id, "active");
    const from = await analysisCpuSeconds(worker.child.pid);
    const until = Date.now() + 60_000;
    while (await analysisCpuSeconds(worker.child.pid) <= from) {
      assert.ok(Date.now() < until, "the analysis thread used no CPU within 60 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    worker.child.kill("SIGTERM");
    const { code } = await worker.child.status;
    const out = await worker.output;
    assert.equal(code, 0, out);
    assert.match(out, new RegExp(`"job completed".*"${task_id}"`), "the active job finished before the exit");
    const status = await (await fetch(`${svc.base}/api/v1/images/status/${task_id}`)).json();
    assert.equal(status.state, "completed");
  } finally {
    try {
      worker.child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await worker.child.status;
    await svc.close();
  }
});

Deno.test("an analysis past ANALYSIS_TIMEOUT_MS fails its job at once with code timeout, is counted, and the worker goes on", async () => {
  // The noisy JPEG takes about a second to analyse and draw here, coins.png about 10 ms.
  const svc = await startTestService({ ANALYSIS_TIMEOUT_MS: "250", WORKER_CONCURRENCY: "1", JOB_ATTEMPTS: "3" });
  try {
    const res = await upload(svc.base, bigJpeg(), "big.jpg");
    assert.equal(res.status, 202);
    const status = await waitForTask(svc.base, (await res.json()).task_id);
    assert.equal(status.state, "failed", JSON.stringify(status));
    assert.equal(status.attempts, 1, "a timeout is not retried");
    const error = status.error as { code: string; message: string };
    assert.equal(error.code, "timeout");
    assert.match(error.message, /ANALYSIS_TIMEOUT_MS \(250 ms\)/);
    // Counted from the queue's events, which reach /metrics a moment after the status.
    const until = Date.now() + 10_000;
    let metrics = "";
    while (Date.now() < until && !/^bip_jobs_failed_total\{code="timeout"\} 1$/m.test(metrics)) {
      metrics = await (await fetch(`${svc.base}/metrics`)).text();
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(metrics, /^bip_jobs_failed_total\{code="timeout"\} 1$/m);
    // The member that ran out of time was replaced: the next job completes.
    const next = await upload(svc.base, await fixture("coins.png"), "coins.png");
    const done = await waitForTask(svc.base, (await next.json()).task_id);
    assert.equal(done.state, "completed", JSON.stringify(done));
  } finally {
    await svc.close();
  }
});

Deno.test("a job whose payload does not match the job schema fails at once with code invalid_job", async () => {
  const svc = await startTestService({ JOB_ATTEMPTS: "3" });
  const redis = createRedis(svc.config, "producer");
  const queue = createContourQueue(svc.config, redis);
  try {
    // As a producer of another version might send it: no upload_path, a size that is not a number.
    const taskId = crypto.randomUUID();
    await queue.add("contours", { task_id: taskId, filename: "x.png", size: "big" } as never, {
      jobId: taskId,
      attempts: 3,
      backoff: { type: "exponential", delay: 1000 },
    });
    const status = await waitForTask(svc.base, taskId);
    assert.equal(status.state, "failed", JSON.stringify(status));
    assert.equal(status.attempts, 1, "retrying cannot fix the payload");
    const error = status.error as { code: string; message: string };
    assert.equal(error.code, "invalid_job");
    assert.match(error.message, /^the job's payload is not valid: size: /);
  } finally {
    await queue.close();
    await closeRedis(redis);
    await svc.close();
  }
});
