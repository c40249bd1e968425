import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { type ContourJob, ContourJobSchema, type ContourSummary } from "./job.ts";

/** The BullMQ queue type the service uses. */
export type ContourQueue = Queue<ContourJob, ContourSummary>;

/** Opens the contour queue on an existing producer connection. */
export function createContourQueue(config: Config, connection: Redis): ContourQueue {
  const queue: ContourQueue = new Queue(config.QUEUE_NAME, { connection, prefix: config.QUEUE_PREFIX });
  // BullMQ re-emits connection errors here; without a listener they would crash the process.
  queue.on("error", () => {});
  return queue;
}

/** Enqueues one contour job under its task id (so a retried upload cannot create two jobs). */
export async function enqueueContourJob(queue: ContourQueue, config: Config, job: ContourJob): Promise<void> {
  const payload = ContourJobSchema.parse(job);
  await queue.add("contours", payload, {
    jobId: payload.task_id,
    attempts: config.JOB_ATTEMPTS,
    backoff: { type: "exponential", delay: 1000 },
    // Job records expire with their results (the retention sweep removes the files and the index entries).
    removeOnComplete: { age: Math.round(config.RESULT_TTL_HOURS * 3600) },
    removeOnFail: { age: Math.round(config.RESULT_TTL_HOURS * 3600) },
  });
}

/** A task's state as the API reports it. */
export type TaskState = "queued" | "active" | "completed" | "failed";

/** Everything the status endpoint shows about a task. */
export interface TaskStatus {
  task_id: string;
  state: TaskState;
  progress: number;
  filename: string;
  submitted_at: string;
  started_at: string | null;
  finished_at: string | null;
  attempts: number;
  error?: { code: string; message: string };
  result?: ContourSummary;
}

const iso = (ms: number | undefined | null) => (ms ? new Date(ms).toISOString() : null);

/** Splits a failure reason written as "code: message" by the worker. */
export function parseFailure(reason: string | undefined): { code: string; message: string } {
  const m = /^([a-z_]+): (.*)$/s.exec(reason ?? "");
  return m ? { code: m[1], message: m[2] } : { code: "processing_error", message: reason || "unknown failure" };
}

/** Reads a task's status from the queue, or undefined when no such task exists. */
export async function getTaskStatus(queue: ContourQueue, taskId: string): Promise<TaskStatus | undefined> {
  // State first, then the job: read the other way round, a job that finishes in between would be reported
  // completed with the stale (empty) return value fetched before.
  const raw = await queue.getJobState(taskId);
  if (raw === "unknown") return undefined;
  const job = await queue.getJob(taskId);
  if (!job) return undefined;
  const state: TaskState = raw === "completed" || raw === "failed" || raw === "active" ? raw : "queued";
  const progress = typeof job.progress === "number" ? job.progress : 0;
  const status: TaskStatus = {
    task_id: taskId,
    state,
    progress: state === "completed" ? 100 : progress,
    filename: job.data.filename,
    submitted_at: iso(job.timestamp) ?? job.data.submitted_at,
    // A job handed back by a stopping worker keeps BullMQ's processedOn while it waits again.
    started_at: state === "queued" ? null : iso(job.processedOn),
    // A completed task's time is the one its result and the results list carry (BullMQ's comes a moment later).
    finished_at: state === "completed"
      ? job.returnvalue?.finished_at ?? iso(job.finishedOn)
      : state === "failed"
      ? iso(job.finishedOn)
      : null,
    attempts: job.attemptsMade,
  };
  if (state === "failed") status.error = parseFailure(job.failedReason);
  if (state === "completed" && job.returnvalue) status.result = job.returnvalue;
  return status;
}
