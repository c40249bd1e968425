import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { EXTENSIONS } from "../imaging/format.ts";
import type { ContourQueue } from "../queue/contour_queue.ts";
import { serviceKeys } from "../queue/keys.ts";
import { forgetResult } from "../queue/results_index.ts";
import { type Area, createLocalStore, type ObjectStore } from "./object_store.ts";
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
const UPLOAD_EXTENSIONS = [...new Set(Object.values(EXTENSIONS))];

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
  for (const ext of UPLOAD_EXTENSIONS) {
    if (await store.remove("uploads", `${taskId}.${ext}`)) uploads++;
  }
  return uploads;
}
