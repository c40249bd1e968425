import { z } from "@hono/zod-openapi";
import { type BackendFactory, createRedisBackend, Queue, QueueEvents, type RedisQueueBackend } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { JOB_FAILURE_CODES, type JobFailureCode } from "../errors.ts";
import { queueTelemetry } from "../tracing.ts";
import { type ContourJob, ContourJobSchema, type ContourSummary, ContourSummarySchema } from "./job.ts";

/** The BullMQ queue type the service uses. */
export type ContourQueue = Queue<ContourJob, ContourSummary>;

/** Each queue's own connection, for the reads BullMQ has no single call for (getTaskStatus). */
const connections = new WeakMap<ContourQueue, Redis>();

/** A task's job hash (as field, value, …) and its score in completed and failed and position in active (nil: absent). */
const TASK_STATUS_LUA = `
local id = ARGV[1]
return {
  redis.call("HGETALL", KEYS[1]),
  redis.call("ZSCORE", KEYS[2], id),
  redis.call("ZSCORE", KEYS[3], id),
  redis.call("LPOS", KEYS[4], id),
}`;

/** A connection with the taskStatus script defined (createContourQueue defines it). */
type StatusClient = Redis & {
  taskStatus(
    job: string,
    completed: string,
    failed: string,
    active: string,
    id: string,
  ): Promise<[string[], string | null, string | null, number | null]>;
};

/** Opens the contour queue on an existing producer connection. */
export function createContourQueue(config: Config, connection: Redis): ContourQueue {
  const queue: ContourQueue = new Queue(config.QUEUE_NAME, {
    connection,
    prefix: config.QUEUE_PREFIX,
    // The upload's trace goes along in each job's options (OTEL_DENO).
    telemetry: queueTelemetry(config),
  });
  connections.set(queue, connection);
  if (!("taskStatus" in connection)) connection.defineCommand("taskStatus", { numberOfKeys: 4, lua: TASK_STATUS_LUA });
  // BullMQ re-emits connection errors here; without a listener they would crash the process.
  queue.on("error", () => {});
  return queue;
}

/**
 * The shortest time between two reads of the queue's event stream. Every job adds five events or so, and a read that
 * returns at the first of them costs this process and Redis a round trip each: reading at most every 20 ms takes them
 * in batches (a fraction of a read per job under load, whatever the number of workers), and a live status stream hears
 * of a change up to that much later.
 */
export const EVENTS_READ_INTERVAL_MS = 20;

/**
 * BullMQ's Redis backend, with its reads of the event stream paced at EVENTS_READ_INTERVAL_MS. A read waits only after
 * one that returned events, and not once the backend is being closed.
 */
const pacedEventsBackend: BackendFactory<RedisQueueBackend> = (name, opts, options) => {
  const backend = createRedisBackend(name, opts, options);
  const read = backend.readEvents.bind(backend);
  const disconnect = backend.disconnect.bind(backend);
  let readyAt = 0;
  let closing = false;
  let wake = () => {};
  backend.readEvents = async (id, blockTimeout) => {
    const wait = readyAt - Date.now();
    if (wait > 0 && !closing) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        wake = () => (clearTimeout(timer), resolve());
      });
    }
    const data = await read(id, blockTimeout);
    if (data) readyAt = Date.now() + EVENTS_READ_INTERVAL_MS;
    return data;
  };
  backend.disconnect = (...args) => {
    closing = true;
    wake();
    return disconnect(...args);
  };
  return backend;
};

/** Subscribes to the contour queue's events on its own connection: one subscription serves every status stream. */
export async function openQueueEvents(config: Config, connection: Redis): Promise<QueueEvents> {
  const events = new QueueEvents(config.QUEUE_NAME, { connection, prefix: config.QUEUE_PREFIX }, pacedEventsBackend);
  events.on("error", () => {}); // the connection logs its own errors and reconnects
  // Each live stream adds its own listeners.
  events.setMaxListeners(0);
  await events.waitUntilReady();
  return events;
}

/**
 * Enqueues one contour job under its task id (so a retried upload cannot create two jobs). `priority` is BullMQ's:
 * 1 runs first; jobs of equal priority run in the order they came (docs/batches.md).
 */
export async function enqueueContourJob(
  queue: ContourQueue,
  config: Config,
  job: ContourJob,
  { priority }: { priority?: number } = {},
): Promise<void> {
  const payload = ContourJobSchema.parse(job);
  await queue.add("contours", payload, {
    jobId: payload.task_id,
    priority,
    attempts: config.JOB_ATTEMPTS,
    backoff: { type: "exponential", delay: 1000 },
    // Job records expire with their results (the retention sweep removes the files and the index entries).
    removeOnComplete: { age: Math.round(config.RESULT_TTL_HOURS * 3600) },
    removeOnFail: { age: Math.round(config.RESULT_TTL_HOURS * 3600) },
  });
}

/** Everything the status endpoint shows about a task. */
export const TaskStatusSchema = z
  .object({
    task_id: z.uuid(),
    state: z.enum(["queued", "active", "completed", "failed"]),
    progress: z.number().min(0).max(100).openapi({
      description: "100 once completed, 10 while a worker has the task, 0 while it is queued and once it failed",
    }),
    filename: z.string(),
    source_url: z.string().optional().openapi({
      description: "For an upload that gave source_url: the URL the worker downloads the image from",
      example: "https://images.example.com/samples/coins.png",
    }),
    submitted_at: z.iso.datetime(),
    started_at: z.iso.datetime().nullable(),
    finished_at: z.iso.datetime().nullable(),
    attempts: z.number().int(),
    error: z.object({ code: z.enum(JOB_FAILURE_CODES), message: z.string() }).optional().openapi({
      description: "Why a failed task failed",
    }),
    result: ContourSummarySchema.optional(),
  })
  .openapi("TaskStatus");

/** A task's status. */
export type TaskStatus = z.infer<typeof TaskStatusSchema>;

/** A task's state as the API reports it. */
export type TaskState = TaskStatus["state"];

const PROGRESS: Record<TaskState, number> = { queued: 0, active: 10, completed: 100, failed: 0 };

const iso = (ms: number | undefined | null) => (ms ? new Date(ms).toISOString() : null);

/** A job's failure reason as parseFailure reads it back: the worker fails jobs with these. */
export function formatFailure(code: JobFailureCode, message: string): string {
  return `${code}: ${message}`;
}

/**
 * Splits a failure reason written by formatFailure; any other reason (an I/O error's own message, BullMQ's for a job
 * that stalled too often) is a processing_error with the reason as its message.
 */
export function parseFailure(reason: string | undefined): { code: JobFailureCode; message: string } {
  const m = /^([a-z_]+): (.*)$/s.exec(reason ?? "");
  const code = JOB_FAILURE_CODES.find((c) => c === m?.[1]);
  return code ? { code, message: m![2] } : { code: "processing_error", message: reason || "unknown failure" };
}

/** Reads a task's status from the queue, or undefined when no such task exists. */
export async function getTaskStatus(queue: ContourQueue, taskId: string): Promise<TaskStatus | undefined> {
  // Clients poll this, so it is one round trip: the job's hash and the three places that tell the states the API
  // reports apart, read by one script, so a job finishing in between cannot be reported completed without its return
  // value. Every other place a job can be (waiting, delayed, prioritized, paused) is "queued". A script rather than
  // MULTI: ioredis builds each transaction as a pipeline that copies every command the connection knows, and BullMQ
  // defines some sixty scripts on it, which made a transaction cost ten times a script call's CPU.
  const client = connections.get(queue);
  if (!client) throw new Error("getTaskStatus needs a queue opened by createContourQueue");
  const key = (k: string) => queue.toKey(k);
  const [fields, completed, failed, active] = await (client as StatusClient)
    .taskStatus(key(taskId), key("completed"), key("failed"), key("active"), taskId);
  const hash: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) hash[fields[i]] = fields[i + 1];
  // An empty hash: no such job (never existed, removed, or expired).
  if (!hash.data) return undefined;
  const state: TaskState = completed !== null
    ? "completed"
    : failed !== null
    ? "failed"
    : active !== null
    ? "active"
    : "queued";
  // The fields as BullMQ stores them (its rawToJobJson reads the same names).
  const job = {
    data: JSON.parse(hash.data) as ContourJob,
    timestamp: Number(hash.timestamp),
    processedOn: hash.processedOn ? Number(hash.processedOn) : undefined,
    finishedOn: hash.finishedOn ? Number(hash.finishedOn) : undefined,
    attemptsMade: Number(hash.attemptsMade || hash.atm || "0"),
    failedReason: hash.failedReason,
    returnvalue: hash.returnvalue ? JSON.parse(hash.returnvalue) as ContourSummary | null : undefined,
  };
  const status: TaskStatus = {
    task_id: taskId,
    state,
    // Told by the state alone: a worker reporting it would cost every job a Redis script and a queue event.
    progress: PROGRESS[state],
    filename: job.data.filename,
    ...(job.data.source_url ? { source_url: job.data.source_url } : {}),
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
