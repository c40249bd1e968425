import { join } from "node:path";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import type { ContourQueue } from "../queue/contour_queue.ts";
import { serviceKeys } from "../queue/keys.ts";
import { forgetResult } from "../queue/results_index.ts";
import { fileExists, removeFile, RESULT_EXTENSIONS, resultFiles } from "./files.ts";

/** What one sweep removed. */
export interface SweepReport {
  expired_results: number;
  orphan_results: number;
  uploads: number;
}

// A file younger than this is never taken for an orphan: its job may be being created or finished right now.
const ORPHAN_MIN_AGE_MS = 10 * 60_000;
const FILE_NAME = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.[a-z]+$/;
const INCOMING = /^\.incoming-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
const LIVE = new Set(["waiting", "active", "delayed", "prioritized", "waiting-children"]);

async function* taskFiles(
  dir: string,
  pattern = FILE_NAME,
): AsyncGenerator<{ path: string; taskId: string; mtime: number }> {
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  for (const e of entries) {
    const m = e.isFile ? pattern.exec(e.name) : null;
    if (!m) continue;
    const path = join(dir, e.name);
    const stat = await Deno.stat(path).catch(() => undefined);
    if (stat) yield { path, taskId: m[1], mtime: stat.mtime?.getTime() ?? 0 };
  }
}

/**
 * Removes what has outlived its TTL: finished jobs older than RESULT_TTL_HOURS with their result files and index
 * entries, uploads of finished jobs older than UPLOAD_TTL_HOURS, and files whose job no longer exists. A file whose
 * job is still queued or running is never touched, nor the upload of a result whose image is not drawn yet.
 */
export async function sweepRetention(
  config: Config,
  queue: ContourQueue,
  redis: Redis,
  now = Date.now(),
): Promise<SweepReport> {
  const report: SweepReport = { expired_results: 0, orphan_results: 0, uploads: 0 };
  const keys = serviceKeys(config);
  const resultCutoff = now - config.RESULT_TTL_HOURS * 3_600_000;

  for (const taskId of await redis.zrangebyscore(keys.results, "-inf", resultCutoff)) {
    const job = await queue.getJob(taskId);
    if (job && LIVE.has(await job.getState())) continue;
    await job?.remove();
    // Its files are now those of a job that no longer exists: the orphan pass below removes them.
    await forgetResult(redis, keys, taskId);
    report.expired_results++;
  }

  const states = new Map<string, string>();
  const stateOf = async (taskId: string) => {
    if (!states.has(taskId)) states.set(taskId, await queue.getJobState(taskId));
    return states.get(taskId)!;
  };
  for await (const f of taskFiles(config.RESULT_DIR)) {
    if (now - f.mtime < ORPHAN_MIN_AGE_MS) continue;
    const state = await stateOf(f.taskId);
    const listed = (await redis.zscore(keys.results, f.taskId)) !== null;
    // Kept while the job exists or the result is still listed; gone with both.
    if (state !== "unknown" || listed) continue;
    await removeFile(f.path);
    report.orphan_results++;
  }
  // Uploads still arriving are written as .incoming-<task id>; one left behind by an API that died mid-upload goes.
  for await (const f of taskFiles(config.UPLOAD_DIR, INCOMING)) {
    if (now - f.mtime < ORPHAN_MIN_AGE_MS) continue;
    await removeFile(f.path);
    report.uploads++;
  }
  const uploadCutoff = now - config.UPLOAD_TTL_HOURS * 3_600_000;
  for await (const f of taskFiles(config.UPLOAD_DIR)) {
    if (now - f.mtime < ORPHAN_MIN_AGE_MS) continue;
    const state = await stateOf(f.taskId);
    if (LIVE.has(state)) continue; // a worker still needs it
    // Its annotated image is drawn from it on first request (RENDER=lazy): kept as long as the result is.
    if (state === "completed" && !(await imageDrawn(config.RESULT_DIR, f.taskId))) continue;
    if (state !== "unknown" && f.mtime > uploadCutoff) continue; // a finished job's upload, kept for UPLOAD_TTL_HOURS
    await removeFile(f.path);
    report.uploads++;
  }
  return report;
}

/** Whether the task's annotated image exists, in either output format. */
async function imageDrawn(resultDir: string, taskId: string): Promise<boolean> {
  for (const format of Object.keys(RESULT_EXTENSIONS) as (keyof typeof RESULT_EXTENSIONS)[]) {
    if (await fileExists(resultFiles(resultDir, taskId, format).image)) return true;
  }
  return false;
}
