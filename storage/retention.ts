import { Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { log } from "../log.ts";
import { closeRedis, createRedis } from "../queue/connection.ts";
import { ImageFormatSchema } from "../imaging/format.ts";
import type { ContourQueue } from "../queue/contour_queue.ts";
import { serviceKeys } from "../queue/keys.ts";
import { forgetResult } from "../queue/results_index.ts";
import { uploadName } from "./files.ts";
import { type Area, createLocalStore, type ObjectStore, SPARE_NAME } from "./object_store.ts";
import { imageStored, removeResults } from "./results.ts";

/** What one sweep removed. */
export interface SweepReport {
  /** Completed tasks past RESULT_TTL_HOURS, removed with their result files and upload. */
  expired_results: number;
  /** Failed tasks past RESULT_TTL_HOURS, removed with their upload. */
  expired_failed: number;
  /** Result files whose job no longer exists. */
  orphan_results: number;
  /** Uploads removed: those of expired tasks, old ones of finished jobs, orphans and abandoned partial uploads. */
  uploads: number;
}

// A file younger than this is never taken for an orphan: its job may be being created or finished right now. Files
// of a task the sweep expires itself do not wait for it: that task is known to be finished and gone.
const ORPHAN_MIN_AGE_MS = 10 * 60_000;
// Each clean() batch runs as one Lua script, which blocks Redis while it runs; small batches keep that short.
const CLEAN_BATCH = 500;
const FILE_NAME = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.[a-z]+$/;
const INCOMING = /^\.incoming-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
const LIVE = new Set(["waiting", "active", "delayed", "prioritized", "waiting-children"]);

async function* taskFiles(
  store: ObjectStore,
  area: Area,
  pattern = FILE_NAME,
): AsyncGenerator<{ name: string; taskId: string; mtime: number }> {
  for await (const o of store.list(area)) {
    const m = pattern.exec(o.name);
    if (m) yield { name: o.name, taskId: m[1], mtime: o.modified };
  }
}

/**
 * Removes what has outlived its TTL: finished jobs (completed or failed) older than RESULT_TTL_HOURS with their
 * result files, upload and index entries, uploads of finished jobs older than UPLOAD_TTL_HOURS, and files whose job no
 * longer exists. A queued or running job, and any file it needs, is never touched, nor the upload of a result whose
 * image is not drawn yet.
 */
export async function sweepRetention(
  config: Config,
  queue: ContourQueue,
  redis: Redis,
  now = Date.now(),
  store: ObjectStore = createLocalStore(config),
): Promise<SweepReport> {
  const report: SweepReport = { expired_results: 0, expired_failed: 0, orphan_results: 0, uploads: 0 };
  const keys = serviceKeys(config);
  const resultCutoff = now - config.RESULT_TTL_HOURS * 3_600_000;
  const expire = async (taskId: string) => {
    // Index entry first, so the results list stops showing the task before its files go.
    await forgetResult(redis, keys, taskId);
    report.uploads += await removeTaskFiles(store, taskId);
  };

  // The results list, not the job records: an entry can outlive its job (removeOnComplete, a manual removal), and
  // its files would be served until the orphan pass if only job records were swept.
  for (const taskId of await redis.zrangebyscore(keys.results, "-inf", resultCutoff)) {
    const job = await queue.getJob(taskId);
    if (job && LIVE.has(await job.getState())) continue;
    await job?.remove();
    await expire(taskId);
    report.expired_results++;
  }
  // BullMQ's own age limits (removeOnFail, removeOnComplete) act only when another job finishes, so a quiet queue
  // would keep these records forever. clean() reads only the finished set it is given, atomically per batch: a job
  // queued, running, or retried from the dashboard meanwhile is never in it.
  for (const state of ["failed", "completed"] as const) {
    let ids: string[];
    do {
      // clean() measures its grace from its own clock; `now` may differ (tests sweep "later").
      ids = await queue.clean(Date.now() - resultCutoff, CLEAN_BATCH, state);
      for (const taskId of ids) {
        await expire(taskId);
        if (state === "failed") report.expired_failed++;
        else report.expired_results++;
      }
    } while (ids.length === CLEAN_BATCH);
  }

  const states = new Map<string, string>();
  const stateOf = async (taskId: string) => {
    if (!states.has(taskId)) states.set(taskId, await queue.getJobState(taskId));
    return states.get(taskId)!;
  };
  for await (const f of taskFiles(store, "results")) {
    if (now - f.mtime < ORPHAN_MIN_AGE_MS) continue;
    const state = await stateOf(f.taskId);
    const listed = (await redis.zscore(keys.results, f.taskId)) !== null;
    // Kept while the job exists or the result is still listed; gone with both.
    if (state !== "unknown" || listed) continue;
    await store.remove("results", f.name);
    report.orphan_results++;
  }
  // Uploads still arriving are written as .incoming-<task id>, on the API's own disk whatever the store; one left
  // behind by an API that died mid-upload goes.
  const disk = createLocalStore(config);
  for await (const f of taskFiles(disk, "uploads", INCOMING)) {
    if (now - f.mtime < ORPHAN_MIN_AGE_MS) continue;
    await disk.remove("uploads", f.name);
    report.uploads++;
  }
  // Emptied files a process kept to write over (createLocalStore) and did not use before it stopped.
  for await (const o of disk.list("uploads")) {
    if (SPARE_NAME.test(o.name) && now - o.modified >= ORPHAN_MIN_AGE_MS) await disk.remove("uploads", o.name);
  }
  const uploadCutoff = now - config.UPLOAD_TTL_HOURS * 3_600_000;
  for await (const f of taskFiles(store, "uploads")) {
    if (now - f.mtime < ORPHAN_MIN_AGE_MS) continue;
    const state = await stateOf(f.taskId);
    if (LIVE.has(state)) continue; // a worker still needs it
    // Its annotated image is drawn from it on first request (RENDER=lazy): kept as long as the result is.
    if (state === "completed" && !(await imageStored(store, f.taskId))) continue;
    if (state !== "unknown" && f.mtime > uploadCutoff) continue; // a finished job's upload, kept for UPLOAD_TTL_HOURS
    await store.remove("uploads", f.name);
    report.uploads++;
  }
  return report;
}

/**
 * Removes a finished task's result files and upload, by the names the worker and the API give them; returns how many
 * uploads it removed.
 */
async function removeTaskFiles(store: ObjectStore, taskId: string): Promise<number> {
  await removeResults(store, taskId);
  let uploads = 0;
  for (const format of ImageFormatSchema.options) {
    if (await store.remove("uploads", uploadName(taskId, format))) uploads++;
  }
  return uploads;
}

/** The retention sweeps a worker process takes part in, and how it stops taking them. */
export interface RetentionSchedule {
  /** Settles once the scheduler is in Redis (which may be down when the worker starts: then once it is back). */
  ready: Promise<void>;
  close(): Promise<void>;
}

/** The queue the retention sweeps run on, beside the contour queue. */
export function retentionQueueName(config: Config): string {
  return `${config.QUEUE_NAME}-retention`;
}

// Upserting under one id is idempotent: every worker process names the same scheduler, so the deployment has one.
const SCHEDULER_ID = "retention-sweep";

/**
 * Runs sweepRetention once per RETENTION_SWEEP_MINUTES for the whole deployment: a BullMQ job scheduler makes one
 * sweep job per interval, and whichever worker process is free takes it. Each process calls this; the first sweep
 * comes one interval after the scheduler is first made (a changed interval starts it anew). `redis` serves the sweep's
 * reads and the scheduler's queue; the sweeps' worker opens a blocking connection of its own.
 */
export function scheduleRetention(
  config: Config,
  queue: ContourQueue,
  redis: Redis,
  store: ObjectStore,
): RetentionSchedule {
  const every = Math.max(1, Math.round(config.RETENTION_SWEEP_MINUTES * 60_000));
  const opts = { connection: redis, prefix: config.QUEUE_PREFIX };
  const schedules = new Queue(retentionQueueName(config), opts);
  schedules.on("error", () => {}); // the connection logs its own errors and reconnects
  const ready = schedules.upsertJobScheduler(SCHEDULER_ID, { every, startDate: Date.now() + every }, {
    name: "sweep",
    // A failed sweep is not retried: the next one comes within an interval. A few are kept for the dashboard.
    opts: { attempts: 1, removeOnComplete: { count: 10 }, removeOnFail: { count: 10 } },
  }).then(() => {}, (err) => log("warn", "could not schedule the retention sweeps", { error: String(err) }));
  const connection = createRedis(config, "worker");
  const worker = new Worker(retentionQueueName(config), async () => {
    const report = await sweepRetention(config, queue, redis, Date.now(), store);
    if (Object.values(report).some((n) => n > 0)) log("info", "retention sweep", { ...report });
    return report;
  }, { connection, prefix: config.QUEUE_PREFIX, concurrency: 1 });
  worker.on("error", () => {});
  worker.on("failed", (_job, err) => log("warn", "retention sweep failed", { error: err.message }));
  return {
    ready,
    async close() {
      // A sweep under way is safe to cut off (the next one finishes its work); waiting for one is not worth a long
      // shutdown.
      if (await withDeadline(worker.close(), 5000) === TIMED_OUT) await withDeadline(worker.close(true), 1000);
      await schedules.close().catch(() => {});
      await closeRedis(connection);
    },
  };
}
