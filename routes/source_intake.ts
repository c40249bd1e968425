import type { Config } from "../config.ts";
import { log } from "../log.ts";
import { type ContourQueue, enqueueContourJob } from "../queue/contour_queue.ts";
import { jobFields, type JobRequest, type UploadAccepted } from "./intake.ts";
import { isConnectionError, redisUnavailable } from "./redis_errors.ts";

/** An upload by source_url, checked, and what its job is to do. */
export interface SourceIntake extends JobRequest {
  /** Validated by validateSourceUrl (sources/source_url.ts). */
  sourceUrl: string;
}

/**
 * Queues the job of an upload by source_url: nothing is stored yet, since the worker downloads the image
 * (sources/fetch_source.ts), so the job carries the URL instead of an upload's path. Answers the 202 body.
 */
export async function enqueueSourceJob(
  { config, queue }: { config: Config; queue: ContourQueue },
  intake: SourceIntake,
): Promise<UploadAccepted> {
  const { taskId } = intake;
  try {
    await enqueueContourJob(queue, config, { ...jobFields(intake), source_url: intake.sourceUrl }, {
      priority: intake.priority,
    });
  } catch (err) {
    // Only an unreachable Redis is a 503; anything else is a fault of this service, for the error handler's 500.
    if (!isConnectionError(err)) throw err;
    log("warn", "enqueue failed", { task_id: taskId, error: (err as Error).message });
    throw redisUnavailable();
  }
  log("info", "upload accepted", { request_id: intake.requestId, task_id: taskId, source_url: intake.sourceUrl });
  return {
    message: "Image accepted, the worker downloads it from source_url",
    status: "queued",
    task_id: taskId,
    filename: intake.filename,
    source_url: intake.sourceUrl,
    status_url: `/api/v1/images/status/${taskId}`,
  };
}
