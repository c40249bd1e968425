import { SpanKind } from "@opentelemetry/api";
import { DelayedError, Queue, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { log } from "../log.ts";
import { queueTelemetry, withSpan } from "../tracing.ts";
import { deliverCallback } from "./delivery.ts";

/** One notification to deliver. */
export interface CallbackJob {
  task_id: string;
  url: string;
  /** The JSON body, exactly as signed; jobs queued by this version leave it out and send the status at delivery. */
  body?: string;
  request_id?: string;
}

/** The task's status as GET /status shows it (undefined once the task is gone). */
export type StatusReader = (taskId: string) => Promise<{ state: string } | undefined>;

/**
 * A callback queued before its task ended looks again after a quarter of its age, between these bounds: the usual
 * case (queued by the processor a moment before BullMQ records the end) costs one 100 ms wait, a task waiting for a
 * retry is looked at every few seconds, and after a day the callback gives up.
 */
const FINAL_POLL_MIN_MS = 100;
const FINAL_POLL_MAX_MS = 5000;
const FINAL_WAIT_MS = 24 * 3600_000;

/** The queue that holds notifications, beside the contour queue. */
export function createCallbackQueue(config: Config, connection: Redis): Queue<CallbackJob> {
  const queue = new Queue<CallbackJob>(`${config.QUEUE_NAME}-callbacks`, {
    connection,
    prefix: config.QUEUE_PREFIX,
    telemetry: queueTelemetry(config),
  });
  queue.on("error", () => {});
  return queue;
}

/**
 * Queues a task's notification, once: the job id is the task id, so queueing it again (a retried task, or the
 * failure handler after the processor) changes nothing. Delivery retries with exponential backoff
 * (CALLBACK_ATTEMPTS).
 */
export async function enqueueCallback(queue: Queue<CallbackJob>, config: Config, job: CallbackJob): Promise<void> {
  await queue.add("callback", job, {
    jobId: job.task_id,
    attempts: config.CALLBACK_ATTEMPTS,
    backoff: { type: "exponential", delay: 1000 },
    removeOnComplete: { age: 24 * 3600 },
  });
}

/**
 * Delivers notifications: the task's final status as JSON, signed, 10 s timeout; any non-2xx answer is retried. A
 * notification queued before its task ended waits for the end (without spending an attempt).
 */
export function startCallbackWorker(config: Config, connection: Redis, statusOf: StatusReader): Worker<CallbackJob> {
  const worker = new Worker<CallbackJob>(
    `${config.QUEUE_NAME}-callbacks`,
    async (job, token) => {
      let body = job.data.body;
      if (body === undefined) {
        const status = await statusOf(job.data.task_id);
        if (!status) {
          log("info", "callback dropped: the task no longer exists", { task_id: job.data.task_id });
          return;
        }
        if (status.state !== "completed" && status.state !== "failed") {
          const age = Date.now() - job.timestamp;
          if (age > FINAL_WAIT_MS) throw new UnrecoverableError(`task ${job.data.task_id} did not end within a day`);
          const wait = Math.min(FINAL_POLL_MAX_MS, Math.max(FINAL_POLL_MIN_MS, age / 4));
          await job.moveToDelayed(Date.now() + wait, token);
          throw new DelayedError();
        }
        body = JSON.stringify(status);
      }
      const url = new URL(job.data.url);
      const payload = body;
      // The query is left out of the span: a client's URL may carry a token there.
      const attributes = {
        "http.request.method": "POST",
        "url.full": url.origin + url.pathname,
        "task.id": job.data.task_id,
      };
      const status = await withSpan(config, "callback delivery", SpanKind.CLIENT, attributes, async (span) => {
        const answer = await deliverCallback(config, url, payload, job.data.request_id ?? job.data.task_id);
        span?.setAttribute("http.response.status_code", answer);
        if (answer < 200 || answer > 299) throw new Error(`callback answered ${answer}`);
        return answer;
      });
      log("info", "callback delivered", {
        task_id: job.data.task_id,
        request_id: job.data.request_id,
        status,
      });
    },
    { connection, prefix: config.QUEUE_PREFIX, concurrency: 4, telemetry: queueTelemetry(config) },
  );
  worker.on("error", () => {});
  worker.on("failed", (job, err) => {
    log("warn", "callback failed", { task_id: job?.data.task_id, attempts: job?.attemptsMade, error: err.message });
  });
  return worker;
}
