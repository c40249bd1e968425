import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { join } from "node:path";
import { BadRequest, TooLarge, Unavailable } from "../errors.ts";
import { assertPixelLimit } from "../imaging/decode.ts";
import { EXTENSIONS, sniffFormat } from "../imaging/format.ts";
import { checkStructure } from "../imaging/structure.ts";
import { AnalysisOptionsSchema } from "../imaging/options.ts";
import { log } from "../log.ts";
import { validateCallbackUrl } from "../callbacks/callback.ts";
import { enqueueContourJob } from "../queue/contour_queue.ts";
import { removeFile, saveUpload } from "../storage/files.ts";
import { limitBody } from "./body_limit.ts";
import { requireSingleFileForm } from "./form_shape.ts";
import type { AppDeps } from "./deps.ts";
import { errorResponses, UploadAcceptedSchema, UploadFormSchema } from "./schemas.ts";

// Room for the multipart boundaries and part headers around the file itself.
const MULTIPART_OVERHEAD = 64 * 1024;

/** Keeps a client's filename as harmless metadata: no paths, no control characters, bounded length. */
export function sanitizeFilename(name: string): string {
  // deno-lint-ignore no-control-regex
  const base = name.replace(/[\u0000-\u001f\u007f]/g, "").split(/[\\/]/).pop() ?? "";
  const trimmed = base.trim().slice(0, 255);
  return trimmed === "" || trimmed === "." || trimmed === ".." ? "upload" : trimmed;
}

const uploadRoute = (maxSize: number) =>
  createRoute({
    method: "post",
    path: "/api/v1/images/upload",
    tags: ["images"],
    summary: "Upload an image for contour detection",
    description: "Stores the file under a server-generated name and queues a contour-detection job.",
    middleware: [
      // Enforced while the body streams in: an oversized body is cut off before it is buffered.
      limitBody(maxSize + MULTIPART_OVERHEAD, maxSize),
      requireSingleFileForm(),
    ] as const,
    request: { body: { required: true, content: { "multipart/form-data": { schema: UploadFormSchema } } } },
    responses: {
      202: { description: "Accepted and queued", content: { "application/json": { schema: UploadAcceptedSchema } } },
      ...errorResponses(400, 401, 413, 429, 503),
    },
  });

/** Registers `POST /api/v1/images/upload`. */
export function registerUploadRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const { config, queue } = deps;
  app.openapi(uploadRoute(config.MAX_FILE_SIZE), async (c) => {
    const { file, callback_url, ...fields } = c.req.valid("form");
    const callbackUrl = callback_url ? validateCallbackUrl(config, callback_url) : undefined;
    // Already validated by the route; parsed again only to get the typed, defaulted options.
    const options = AnalysisOptionsSchema.parse(fields);
    if (file.size === 0) throw new BadRequest("empty_file", "the uploaded file is empty");
    if (file.size > config.MAX_FILE_SIZE) throw new TooLarge(config.MAX_FILE_SIZE);
    // The form parser already holds the file in memory (bounded by MAX_FILE_SIZE): read it once, check it, write it.
    const bytes = new Uint8Array(await file.arrayBuffer());
    const format = sniffFormat(bytes);
    // Cheap checks only (headers, container structure): decoding pixels is the workers' CPU work, not the API's.
    // The pixel limit first: a bomb's tiny body would also fail the structure check, less helpfully.
    assertPixelLimit(bytes, config.MAX_PIXELS);
    checkStructure(bytes);

    const taskId = crypto.randomUUID();
    const filename = sanitizeFilename(file.name);
    const filePath = join(config.UPLOAD_DIR, `${taskId}.${EXTENSIONS[format]}`);
    await saveUpload(bytes, filePath);
    try {
      await enqueueContourJob(queue, config, {
        task_id: taskId,
        upload_path: filePath,
        filename,
        format,
        size: file.size,
        submitted_at: new Date().toISOString(),
        options,
        request_id: c.get("requestId"),
        callback_url: callbackUrl,
      });
    } catch (err) {
      // Nothing will ever process this file: remove it rather than leave an orphan.
      await removeFile(filePath);
      log("warn", "enqueue failed", { task_id: taskId, error: (err as Error).message });
      throw new Unavailable("the job queue (Redis) is not reachable; try again shortly");
    }
    log("info", "upload accepted", { request_id: c.get("requestId"), task_id: taskId, format, size: file.size });
    return c.json({
      message: "Image uploaded successfully, processing started",
      status: "queued" as const,
      task_id: taskId,
      filename,
      file_path: filePath,
      status_url: `/api/v1/images/status/${taskId}`,
    }, 202);
  });
}
