import type { z } from "@hono/zod-openapi";
import type { Config } from "../config.ts";
import { BadRequest } from "../errors.ts";
import { fileSource } from "../imaging/byte_source.ts";
import type { ImageFormat } from "../imaging/format.ts";
import type { AnalysisOptions } from "../imaging/options.ts";
import { checkStructure } from "../imaging/structure.ts";
import { log } from "../log.ts";
import { type ContourQueue, enqueueContourJob } from "../queue/contour_queue.ts";
import { uploadName } from "../storage/files.ts";
import type { ObjectStore } from "../storage/object_store.ts";
import type { ReceivedFile } from "./multipart.ts";
import { isConnectionError, redisUnavailable } from "./redis_errors.ts";
import { fromStorage } from "./storage_errors.ts";
import { UPLOAD_FIELD_NAMES, type UploadAcceptedSchema, UploadFieldsSchema } from "./schemas.ts";

/**
 * BullMQ priority (lower runs sooner) of a single upload that names none. Batch files default to
 * {@link BATCH_PRIORITY}, so a single upload sent behind a big batch overtakes the batch's waiting files instead of
 * waiting for all of them (docs/batches.md).
 */
export const SINGLE_PRIORITY = 10;
/** BullMQ priority of a batch's files when the batch names none. */
export const BATCH_PRIORITY = 50;

/** 202 body of one accepted file. */
export type UploadAccepted = z.infer<typeof UploadAcceptedSchema>;

/**
 * The text fields of an upload form (a single upload's or a batch's), validated by the one schema; a name the form
 * does not take is a client's typo, refused rather than ignored.
 */
export function parseUploadFields(fields: Record<string, string>): z.output<typeof UploadFieldsSchema> {
  const unknown = Object.keys(fields).find((name) => !UPLOAD_FIELD_NAMES.includes(name));
  if (unknown !== undefined) {
    throw new BadRequest(
      "validation_error",
      `${unknown}: not a field of this form (it takes ${UPLOAD_FIELD_NAMES.join(", ")})`,
    );
  }
  const parsed = UploadFieldsSchema.safeParse(fields);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BadRequest("validation_error", `${issue.path.join(".") || "request"}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * The cheap checks of a received file part (empty, header, pixel limit, container structure), on the file as written:
 * decoding pixels is the workers' CPU work, not the API's. A part spilled to disk (at `spilledAt`) is walked a few pages
 * at a time, not read back. Throws the same errors for a single upload and for each file of a batch.
 */
export async function inspectUpload(file: ReceivedFile, spilledAt: string, maxPixels: number): Promise<ImageFormat> {
  if (file.size === 0) throw new BadRequest("empty_file", "the uploaded file is empty");
  if (file.bytes) return checkStructure(file.bytes, maxPixels);
  const opened = await Deno.open(spilledAt);
  try {
    return checkStructure(fileSource(opened, file.size), maxPixels);
  } finally {
    opened.close();
  }
}

/** What a job is to do, however its image arrives (a file part, or a source_url the worker downloads). */
export interface JobRequest {
  taskId: string;
  filename: string;
  options: AnalysisOptions;
  render: "eager" | "lazy";
  callbackUrl?: string;
  requestId?: string;
  /** BullMQ priority: 1 runs first. */
  priority: number;
}

/** The job's fields every upload has, whichever way its image arrives. */
export function jobFields(request: JobRequest) {
  return {
    task_id: request.taskId,
    filename: request.filename,
    submitted_at: new Date().toISOString(),
    options: request.options,
    render: request.render,
    request_id: request.requestId,
    callback_url: request.callbackUrl,
  };
}

/** One inspected file and what its job is to do. */
export interface Intake extends JobRequest {
  file: ReceivedFile;
  /** Where the part was spilled when `file.bytes` is null (consumed: moved into the store). */
  spilledAt: string;
  format: ImageFormat;
}

/**
 * Stores an inspected file whole, then queues its job: a store that fails answers 503 and nothing is queued; a queue
 * that fails leaves no stored file behind. Answers the file's 202 body.
 */
export async function storeAndEnqueue(
  { config, queue, store }: { config: Config; queue: ContourQueue; store: ObjectStore },
  intake: Intake,
): Promise<UploadAccepted> {
  const { taskId, file, format } = intake;
  const name = uploadName(taskId, format);
  const stored = store.locate("uploads", name);
  await fromStorage(() =>
    file.bytes
      ? store.write("uploads", name, file.bytes)
      : store.writeFile("uploads", name, intake.spilledAt, file.size)
  );
  try {
    await enqueueContourJob(
      queue,
      config,
      { ...jobFields(intake), upload_path: stored, format, size: file.size },
      { priority: intake.priority },
    );
  } catch (err) {
    // The store may be the very thing that failed; then there is nothing of this upload in it to remove.
    await store.removeAt(stored).catch(() => {});
    // Only an unreachable Redis is a 503; anything else is a fault of this service, for the error handler's 500.
    if (!isConnectionError(err)) throw err;
    log("warn", "enqueue failed", { task_id: taskId, error: (err as Error).message });
    throw redisUnavailable();
  }
  log("info", "upload accepted", { request_id: intake.requestId, task_id: taskId, format, size: file.size });
  return {
    message: "Image uploaded successfully, processing started",
    status: "queued",
    task_id: taskId,
    filename: intake.filename,
    file_path: stored,
    status_url: `/api/v1/images/status/${taskId}`,
  };
}
