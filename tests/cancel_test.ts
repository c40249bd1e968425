import assert from "node:assert/strict";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { noisePng } from "../bench/heavy.ts";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { DEFAULT_OPTIONS } from "../imaging/options.ts";
import { AnalysisCancelledError, createAnalysisPool } from "../imaging/pool.ts";
import { TaskStatusSchema } from "../queue/contour_queue.ts";
import { fixture } from "./fixtures.ts";
import {
  analysisCpuSeconds,
  killProcesses,
  listDir,
  spawnWorker,
  sseReader,
  startTestService,
  upload,
  uploadWith,
  waitForTask,
} from "./harness.ts";
import { startRedisCluster } from "./redis_topologies.ts";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";

/** A member that hangs when an analysis's header says `fault: "hang"` (tests/faulty_pool_member.ts). */
const FAULTY_MEMBER = new URL("./faulty_pool_member.ts", import.meta.url);

function cancel(base: string, taskId: string, path = `/api/v1/images/cancel/${taskId}`): Promise<Response> {
  return fetch(`${base}${path}`, { method: "POST" });
}

async function statusOf(base: string, taskId: string): Promise<Record<string, unknown>> {
  return await (await fetch(`${base}/api/v1/images/status/${taskId}`)).json();
}

/** Polls a task until `ok` holds for its status, failing with the last one seen after `timeoutMs`. */
async function pollStatus(
  base: string,
  taskId: string,
  ok: (s: Record<string, unknown>) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  const until = Date.now() + timeoutMs;
  let last: Record<string, unknown> = {};
  while (Date.now() < until) {
    last = await statusOf(base, taskId);
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`task ${taskId} was not ${what} within ${timeoutMs} ms; last status ${JSON.stringify(last)}`);
}

/** A loopback callback receiver: the bodies it was sent, by task id. */
function callbackReceiver() {
  const received = new Map<string, Record<string, unknown>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    received.set(body.task_id, body);
    return new Response("ok");
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    async bodyFor(taskId: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
      const until = Date.now() + timeoutMs;
      while (!received.has(taskId) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      assert.ok(received.has(taskId), `no callback for ${taskId} within ${timeoutMs} ms`);
      return received.get(taskId)!;
    },
    close: () => server.shutdown(),
  };
}

const CALLBACKS = { CALLBACK_SECRET: "cancel-test-secret", CALLBACK_ALLOWED_HOSTS: "127.0.0.1" };

Deno.test("cancel: a queued task fails as cancelled at once; repeated → the same; unknown → 404; finished → 409", async (t) => {
  // No worker at first: uploads stay queued.
  const svc = await startTestService({ EMBEDDED_WORKER: "false", ...CALLBACKS });
  const hook = callbackReceiver();
  let worker: Awaited<ReturnType<typeof spawnWorker>> | undefined;
  let events: ReturnType<typeof sseReader> | undefined;
  try {
    const task_id = await uploadWith(svc.base, await fixture("coins.png"), "coins.png", { callback_url: hook.url });
    events = sseReader(await fetch(`${svc.base}/api/v1/images/status/${task_id}/events`));
    assert.equal(JSON.parse((await events.next())!.data).state, "queued");

    await t.step("queued → 202 with the task failed, error.code cancelled, in the status schema's shape", async () => {
      assert.equal((await statusOf(svc.base, task_id)).state, "queued");
      const answer = await cancel(svc.base, task_id);
      assert.equal(answer.status, 202);
      const body = TaskStatusSchema.parse(await answer.json());
      assert.equal(body.state, "failed");
      assert.equal(body.error?.code, "cancelled");
      assert.ok(body.finished_at, "finished_at is set");
      assert.equal(body.attempts, 0);
    });

    await t.step("GET /status shows the same failure", async () => {
      const status = TaskStatusSchema.parse(await statusOf(svc.base, task_id));
      assert.equal(status.state, "failed");
      assert.deepEqual(status.error, { code: "cancelled", message: "the task was cancelled at the client's request" });
    });

    await t.step("/metrics counts it under its code, from the queue's failed event", async () => {
      const until = Date.now() + 10_000;
      let text = "";
      while (Date.now() < until) {
        text = await (await fetch(`${svc.base}/metrics`)).text();
        if (/bip_jobs_failed_total\{code="cancelled"\} 1\b/.test(text)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(text, /bip_jobs_failed_total\{code="cancelled"\} 1\b/);
    });

    await t.step("the live status stream sends the failure and ends", async () => {
      const last = await events!.next();
      assert.equal(last?.event, "status");
      assert.equal(JSON.parse(last!.data).error.code, "cancelled");
      assert.equal(await events!.next(), null);
    });

    await t.step("cancelling again answers the same (idempotent), at either path", async () => {
      for (const path of [`/api/v1/images/cancel/${task_id}`, `/api/v1/images/${task_id}/cancel`]) {
        const again = await cancel(svc.base, task_id, path);
        assert.equal(again.status, 202, path);
        const body = await again.json();
        assert.equal(body.state, "failed", path);
        assert.equal(body.error.code, "cancelled", path);
      }
    });

    await t.step("an unknown task → 404, a malformed id → 400, both as JSON errors", async () => {
      const missing = await cancel(svc.base, UNKNOWN);
      assert.equal(missing.status, 404);
      assert.equal((await missing.json()).error.code, "not_found");
      const bad = await cancel(svc.base, "not-a-uuid");
      assert.equal(bad.status, 400);
      assert.equal((await bad.json()).error.code, "validation_error");
    });

    await t.step("a prioritized and a delayed job (BullMQ's other queued places) are cancelled alike", async () => {
      const redis = new Redis({ host: svc.config.REDIS_HOST, port: svc.config.REDIS_PORT, maxRetriesPerRequest: 1 });
      const queue = new Queue(svc.config.QUEUE_NAME, { connection: redis, prefix: svc.config.QUEUE_PREFIX });
      try {
        const ids = [crypto.randomUUID(), crypto.randomUUID()];
        await queue.add("contours", { task_id: ids[0], filename: "p.png" }, { jobId: ids[0], priority: 3 });
        await queue.add("contours", { task_id: ids[1], filename: "d.png" }, { jobId: ids[1], delay: 60_000 });
        assert.deepEqual([await queue.getJobState(ids[0]), await queue.getJobState(ids[1])], [
          "prioritized",
          "delayed",
        ]);
        for (const id of ids) {
          const answer = await cancel(svc.base, id);
          assert.equal(answer.status, 202);
          assert.equal((await answer.json()).error.code, "cancelled");
          assert.equal(await queue.getJobState(id), "failed");
        }
        assert.deepEqual(await queue.getJobCounts("prioritized", "delayed"), { prioritized: 0, delayed: 0 });
      } finally {
        await queue.close();
        await redis.quit();
      }
    });

    // Started once (BullMQ's count of attempts started) and marked as the cancel route marks a running task, then back
    // in the queue: as a task whose worker died holding it.
    const markedTask = await uploadWith(svc.base, await fixture("camera.png"), "camera.png", {});
    const marker = new Redis({ host: svc.config.REDIS_HOST, port: svc.config.REDIS_PORT, maxRetriesPerRequest: 1 });
    try {
      const key = `${svc.config.QUEUE_PREFIX}:${svc.config.QUEUE_NAME}:${markedTask}`;
      await marker.hset(key, "ats", 1, "cancelRequested", Date.now());
    } finally {
      await marker.quit();
    }

    worker = await spawnWorker(svc, { WORKER_CONCURRENCY: "1", ...CALLBACKS });
    let laterTask = "";

    await t.step("a queued task marked cancelled is failed as cancelled when a worker takes it up", async () => {
      const status = await waitForTask(svc.base, markedTask, 60_000);
      assert.equal(status.state, "failed", JSON.stringify(status));
      assert.equal((status.error as { code: string }).code, "cancelled");
      assert.equal(status.progress, 0, "stopped before its analysis began");
      assert.deepEqual((await listDir(svc.config.RESULT_DIR)).filter((n) => n.startsWith(markedTask)), []);
    });

    await t.step("the cancelled task is never taken up by a worker that starts later", async () => {
      // A later upload completes, so the worker has read the queue past where the cancelled task was.
      const later = await upload(svc.base, await fixture("coins.png"), "coins.png");
      const laterId = (await later.json()).task_id;
      assert.equal((await waitForTask(svc.base, laterId, 60_000)).state, "completed");
      const status = await statusOf(svc.base, task_id);
      assert.equal(status.state, "failed");
      assert.equal((status.error as { code: string }).code, "cancelled");
      assert.deepEqual((await listDir(svc.config.RESULT_DIR)).filter((n) => n.startsWith(task_id)), []);
      laterTask = laterId;
    });

    await t.step("its callback (delivered by the worker process) carries the cancelled status", async () => {
      const body = await hook.bodyFor(task_id);
      assert.equal(body.state, "failed");
      assert.equal((body.error as { code: string }).code, "cancelled");
    });

    await t.step("a completed task → 409 task_finished", async () => {
      const answer = await cancel(svc.base, laterTask);
      assert.equal(answer.status, 409);
      const body = await answer.json();
      assert.equal(body.error.code, "task_finished");
      assert.match(body.error.message, /already completed/);
      assert.equal((await statusOf(svc.base, laterTask)).state, "completed");
    });

    await t.step("a task that failed for another reason → 409 task_finished", async () => {
      // A job of another shape (as a producer of another version could add): the worker fails it, not retried.
      const failedId = crypto.randomUUID();
      const redis = new Redis({ host: svc.config.REDIS_HOST, port: svc.config.REDIS_PORT, maxRetriesPerRequest: 1 });
      const queue = new Queue(svc.config.QUEUE_NAME, { connection: redis, prefix: svc.config.QUEUE_PREFIX });
      try {
        await queue.add("contours", { task_id: failedId }, { jobId: failedId });
      } finally {
        await queue.close();
        await redis.quit();
      }
      const status = await waitForTask(svc.base, failedId, 60_000);
      assert.equal(status.state, "failed");
      assert.notEqual((status.error as { code: string }).code, "cancelled");
      const answer = await cancel(svc.base, failedId);
      assert.equal(answer.status, 409);
      assert.equal((await answer.json()).error.code, "task_finished");
    });
  } finally {
    await events?.cancel();
    await killProcesses(worker);
    await svc.close();
    await hook.close();
  }
});

Deno.test("cancel: a task running in a separate worker process is stopped there; the worker goes on with later jobs", async (t) => {
  const svc = await startTestService({ EMBEDDED_WORKER: "false", ...CALLBACKS });
  const hook = callbackReceiver();
  const worker = await spawnWorker(svc, { WORKER_CONCURRENCY: "1", ...CALLBACKS });
  try {
    // A noise image with every measurement: seconds of analysis, so the task is still running when the cancel lands.
    const big = await noisePng(3000);
    const taskId = await uploadWith(svc.base, big, "noise.png", { measurements: "all", callback_url: hook.url });

    let cancelledAt = 0;
    await t.step("active → 202 with the task still active", async () => {
      await pollStatus(svc.base, taskId, (s) => s.state === "active" && s.progress === 10, "being analysed", 60_000);
      // The cancel must land once the analysis thread has begun (the status says active before it does), where the
      // member cannot stop by itself: it was idle before this job, so any CPU it uses from here on is the analysis.
      const from = await analysisCpuSeconds(worker.child.pid);
      const until = Date.now() + 60_000;
      while (await analysisCpuSeconds(worker.child.pid) <= from) {
        assert.ok(Date.now() < until, "the analysis thread used no CPU within 60 s");
        await new Promise((r) => setTimeout(r, 50));
      }
      cancelledAt = performance.now();
      const answer = await cancel(svc.base, taskId);
      assert.equal(answer.status, 202);
      const body = TaskStatusSchema.parse(await answer.json());
      assert.equal(body.state, "active", JSON.stringify(body));
    });

    await t.step("the worker process stops it: failed, cancelled, no retry, no result files", async () => {
      const status = await pollStatus(svc.base, taskId, (s) => s.state !== "active", "stopped", 15_000);
      const stoppedInMs = Math.round(performance.now() - cancelledAt);
      assert.equal(status.state, "failed", JSON.stringify(status));
      assert.equal((status.error as { code: string }).code, "cancelled");
      // The pool ends a member that has not stopped within 1 s (the analysis is one uninterruptible OpenCV call).
      assert.ok(stoppedInMs < 5000, `stopped ${stoppedInMs} ms after the cancel`);
      console.log(`active task stopped ${stoppedInMs} ms after the cancel`);
      assert.equal(status.attempts, 1, "one attempt, not retried");
      assert.deepEqual((await listDir(svc.config.RESULT_DIR)).filter((n) => n.startsWith(taskId)), []);
      // Kept like a failed task's upload, until UPLOAD_TTL_HOURS.
      assert.equal((await listDir(svc.config.UPLOAD_DIR)).filter((n) => n.startsWith(taskId)).length, 1);
      const again = await cancel(svc.base, taskId);
      assert.equal(again.status, 202);
      assert.equal((await again.json()).error.code, "cancelled");
      const body = await hook.bodyFor(taskId);
      assert.equal((body.error as { code: string }).code, "cancelled");
    });

    await t.step("the same worker process completes the next upload", async () => {
      const res = await upload(svc.base, await fixture("coins.png"), "coins.png");
      const status = await waitForTask(svc.base, (await res.json()).task_id, 60_000);
      assert.equal(status.state, "completed", JSON.stringify(status));
      assert.equal((status.result as { contour_count: number }).contour_count, 61);
      // Still cancelled: the task did not come back.
      assert.equal((await statusOf(svc.base, taskId)).state, "failed");
    });

    await t.step(
      "a cancellation whose message the worker missed is found by its mark before the result is kept",
      async () => {
        const id = await uploadWith(svc.base, big, "noise.png", { measurements: "all" });
        await pollStatus(svc.base, id, (s) => s.state === "active" && s.progress === 10, "being analysed", 60_000);
        // The mark the API sets, without the message it publishes: as if the worker's subscription was reconnecting.
        const redis = new Redis({ host: svc.config.REDIS_HOST, port: svc.config.REDIS_PORT, maxRetriesPerRequest: 1 });
        try {
          await redis.hset(`${svc.config.QUEUE_PREFIX}:${svc.config.QUEUE_NAME}:${id}`, "cancelRequested", Date.now());
        } finally {
          await redis.quit();
        }
        const status = await waitForTask(svc.base, id, 60_000);
        assert.equal(status.state, "failed", JSON.stringify(status));
        assert.equal((status.error as { code: string }).code, "cancelled");
        assert.deepEqual((await listDir(svc.config.RESULT_DIR)).filter((n) => n.startsWith(id)), []);
      },
    );

    await t.step("its log says it stopped the job and replaced the analysis thread", async () => {
      worker.child.kill("SIGTERM");
      const { code } = await worker.child.status;
      const text = await worker.output;
      assert.equal(code, 0, text);
      assert.match(text, /stopping a cancelled job/);
      assert.match(text, /job cancelled/);
      assert.match(text, /analysis worker ended to stop a cancelled analysis/);
    });
  } finally {
    await killProcesses(worker);
    await svc.close();
    await hook.close();
  }
});

Deno.test("analysis pool: a cancelled request leaves the line at once, and a member that does not stop is replaced", async (t) => {
  const pool = await createAnalysisPool(1, 0, { memberUrl: FAULTY_MEMBER, cancelGraceMs: 300 });
  try {
    const coins = await fixture("coins.png");

    await t.step("already aborted → rejected without reaching a member", async () => {
      await assert.rejects(
        pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity, {}, true, AbortSignal.abort()),
        AnalysisCancelledError,
      );
    });

    await t.step(
      "a member that never stops is ended after cancelGraceMs; a request queued behind it is cancelled at once",
      async () => {
        const running = new AbortController();
        const queued = new AbortController();
        const hung = pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity, { fault: "hang" }, true, running.signal);
        const behind = pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity, {}, true, queued.signal);
        queued.abort();
        await assert.rejects(behind, AnalysisCancelledError);
        const started = performance.now();
        running.abort();
        const out = await withDeadline(hung.then(() => "resolved", (e) => e), 10_000);
        assert.notEqual(out, TIMED_OUT, "the hung request settled");
        assert.ok(out instanceof AnalysisCancelledError, String(out));
        assert.ok(performance.now() - started >= 290, "not before the grace period");
      },
    );

    await t.step("the replacement member analyses the next request", async () => {
      const out = await withDeadline(pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity), 30_000);
      assert.notEqual(out, TIMED_OUT);
      assert.equal(out !== TIMED_OUT && out.report.contour_count, 61);
    });
  } finally {
    pool.close();
  }
});

Deno.test("analysis pool: a member told of a cancellation before it starts stops by itself and is kept", async () => {
  // Far longer than the test's deadline: were the member not to stop by itself, the request would not settle.
  const pool = await createAnalysisPool(1, 0, { cancelGraceMs: 60_000 });
  try {
    const coins = await fixture("coins.png");
    const ac = new AbortController();
    const request = pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity, {}, true, ac.signal);
    // Aborted while the request is being handed to the free member: the member finds the flag before it starts.
    ac.abort();
    const out = await withDeadline(request.then(() => "resolved", (e) => e), 10_000);
    assert.ok(out instanceof AnalysisCancelledError, String(out));
    const next = await withDeadline(pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity), 30_000);
    assert.equal(next !== TIMED_OUT && next.report.contour_count, 61);
  } finally {
    pool.close();
  }
});

Deno.test("cancel on a Redis Cluster: a queued task in one script, a running one through pub/sub to a worker process", async (t) => {
  const cluster = await startRedisCluster();
  const nodes = cluster.servers.map((s) => `127.0.0.1:${s.port}`).join(",");
  let svc: Awaited<ReturnType<typeof startTestService>> | undefined;
  let worker: Awaited<ReturnType<typeof spawnWorker>> | undefined;
  try {
    svc = await startTestService({ REDIS_CLUSTER_NODES: nodes, EMBEDDED_WORKER: "false" });
    const { base } = svc;

    await t.step("queued → failed, cancelled", async () => {
      const res = await upload(base, await fixture("coins.png"), "coins.png");
      const { task_id } = await res.json();
      const answer = await cancel(base, task_id);
      assert.equal(answer.status, 202);
      assert.equal((await answer.json()).error.code, "cancelled");
    });

    worker = await spawnWorker(svc, { REDIS_CLUSTER_NODES: nodes, WORKER_CONCURRENCY: "1" });
    await t.step("running in the worker process → stopped there", async () => {
      const taskId = await uploadWith(base, await noisePng(3000), "noise.png", { measurements: "all" });
      await pollStatus(base, taskId, (s) => s.state === "active" && s.progress === 10, "being analysed", 60_000);
      const answer = await cancel(base, taskId);
      assert.equal(answer.status, 202);
      assert.equal((await answer.json()).state, "active");
      const status = await pollStatus(base, taskId, (s) => s.state !== "active", "stopped", 15_000);
      assert.equal(status.state, "failed", JSON.stringify(status));
      assert.equal((status.error as { code: string }).code, "cancelled");
    });
  } finally {
    await killProcesses(worker);
    await svc?.close();
    await cluster.close();
  }
});
