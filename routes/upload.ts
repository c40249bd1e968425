import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { join } from "node:path";
import { BadRequest } from "../errors.ts";
import { fileSource } from "../imaging/byte_source.ts";
import { EXTENSIONS, type ImageFormat } from "../imaging/format.ts";
import { checkStructure } from "../imaging/structure.ts";
import { log } from "../log.ts";
import { validateCallbackUrl } from "../callbacks/callback.ts";
import { enqueueContourJob } from "../queue/contour_queue.ts";
import { serviceKeys } from "../queue/keys.ts";
import { removeFile } from "../storage/files.ts";
import { createLocalStore } from "../storage/object_store.ts";
import type { AppDeps } from "./deps.ts";
import { sha256Hex } from "./auth.ts";
import { claimIdempotencyKey, type IdempotencyClaim, idempotencyKey } from "./idempotency.ts";
import { receiveMultipart } from "./multipart.ts";
import { refuseOtherMethods } from "./method_not_allowed.ts";
import { isConnectionError, redisUnavailable } from "./redis_errors.ts";
import { fromStorage } from "./storage_errors.ts";
import {
  API_KEY_SECURITY,
  errorResponses,
  UPLOAD_FIELD_NAMES,
  UploadAcceptedSchema,
  UploadFieldsSchema,
  UploadFormSchema,
} from "./schemas.ts";

// Room for the multipart boundaries and part headers around the file itself.
const MULTIPART_OVERHEAD = 64 * 1024;

/**
 * Keeps a client's filename as harmless metadata: no paths, no control characters, no bidirectional overrides (which
 * make "gpj.exe" display as "exe.jpg"), bounded length.
 */
export function sanitizeFilename(name: string): string {
  // deno-lint-ignore no-control-regex
  const base = name.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "")
    .split(/[\\/]/).pop() ?? "";
  const trimmed = base.trim().slice(0, 255);
  return trimmed === "" || trimmed === "." || trimmed === ".." ? "upload" : trimmed;
}

const uploadRoute = createRoute({
  method: "post",
  path: "/api/v1/images/upload",
  operationId: "uploadImage",
  tags: ["images"],
  summary: "Upload an image for contour detection",
  description: "Stores the file under a server-generated name and queues a contour-detection job.",
  security: API_KEY_SECURITY,
  request: {
    headers: z.object({
      "idempotency-key": z.string().max(255).optional().openapi({
        description: "Makes retries safe: an upload repeated with the same key (and the same file, filename and " +
          "options) answers with the first one's task instead of creating another (header Idempotent-Replayed: " +
          "true). Scoped to the API key when one is sent; kept as long as results (RESULT_TTL_HOURS).",
        example: "5d0f0b6e-3c2a-4d55-9d1e-2f1b7f3c9a10",
      }),
    }),
    body: { required: true, content: { "multipart/form-data": { schema: UploadFormSchema } } },
  },
  responses: {
    202: {
      description: "Accepted and queued",
      headers: { Location: { description: "The task's status URL (status_url)", schema: { type: "string" } } },
      content: { "application/json": { schema: UploadAcceptedSchema } },
    },
    ...errorResponses(400, 401, 408, 409, 413, 415, 422, 429, 503, 507),
  },
});

/** Registers `POST /api/v1/images/upload`. */
export function registerUploadRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const { config, queue } = deps;
  const store = deps.store ?? createLocalStore(config);
  // Documented from the schemas, but parsed by receiveMultipart (streamed to disk) rather than by the validator
  // middleware, which would buffer the whole form; the fields are then validated with the same schema.
  app.openAPIRegistry.registerPath(uploadRoute);
  // Before the routes of /api/v1/images/{task_id}, which would otherwise take "upload" for a malformed task id.
  refuseOtherMethods(app, uploadRoute.path, "POST", "upload");
  app.post(uploadRoute.path, async (c) => {
    const taskId = crypto.randomUUID();
    const incoming = join(config.UPLOAD_DIR, `.incoming-${taskId}`);
    let stored: string | undefined;
    let claim: IdempotencyClaim | undefined;
    try {
      const form = await receiveMultipart(c.req.raw, {
        tempPath: incoming,
        maxFileBytes: config.MAX_FILE_SIZE,
        maxBodyBytes: config.MAX_FILE_SIZE + MULTIPART_OVERHEAD,
        idleTimeoutMs: config.BODY_IDLE_TIMEOUT_MS,
        sha256: idempotencyKey(c.req.raw.headers) !== undefined,
      });
      const unknown = Object.keys(form.fields).find((name) => !UPLOAD_FIELD_NAMES.includes(name));
      if (unknown !== undefined) {
        throw new BadRequest(
          "validation_error",
          `${unknown}: not a field of this form (it takes ${UPLOAD_FIELD_NAMES.join(", ")})`,
        );
      }
      const parsed = UploadFieldsSchema.safeParse(form.fields);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new BadRequest("validation_error", `${issue.path.join(".") || "request"}: ${issue.message}`);
      }
      if (!form.file) throw new BadRequest("missing_file", "file: the form needs a 'file' field holding the image");
      const { callback_url, render, ...options } = parsed.data;
      const callbackUrl = callback_url ? validateCallbackUrl(config, callback_url) : undefined;
      if (form.file.size === 0) throw new BadRequest("empty_file", "the uploaded file is empty");
      // Cheap checks only (headers, pixel limit, container structure), on the file as written: decoding pixels is
      // the workers' CPU work, not the API's. A file spilled to disk is walked a few pages at a time, not read back.
      const { bytes } = form.file;
      const format = bytes
        ? checkStructure(bytes, config.MAX_PIXELS)
        : await checkSpilled(incoming, form.file.size, config.MAX_PIXELS);

      const filename = sanitizeFilename(form.file.name);
      const key = idempotencyKey(c.req.raw.headers);
      if (key !== undefined) {
        // Checked only now, so that a refused request leaves the key free for the corrected one.
        const fingerprint = await sha256Hex(
          JSON.stringify({ file: form.file.sha256, filename, options, render, callback_url: callbackUrl }),
        );
        const claimed = await claimIdempotencyKey(
          deps.redis,
          serviceKeys(config).idempotency,
          c.req.raw.headers,
          key,
          fingerprint,
          // As long as the task it names is kept.
          config.RESULT_TTL_HOURS * 3600,
        );
        if (claimed.replay) {
          await removeFile(incoming);
          c.header("Idempotent-Replayed", "true");
          c.header("Location", claimed.replay.status_url);
          return c.json(claimed.replay, 202);
        }
        claim = claimed;
      }
      const name = `${taskId}.${EXTENSIONS[format]}`;
      // Stored whole before the job exists: a store that fails here answers 503 and nothing is queued.
      stored = store.locate("uploads", name);
      await fromStorage(() =>
        bytes ? store.write("uploads", name, bytes) : store.writeFile("uploads", name, incoming, form.file!.size)
      );
      try {
        await enqueueContourJob(queue, config, {
          task_id: taskId,
          upload_path: stored,
          filename,
          format,
          size: form.file.size,
          submitted_at: new Date().toISOString(),
          options,
          render: render ?? config.RENDER,
          request_id: c.get("requestId"),
          callback_url: callbackUrl,
        });
      } catch (err) {
        // Only an unreachable Redis is a 503; anything else is a fault of this service, for the error handler's 500.
        if (!isConnectionError(err)) throw err;
        log("warn", "enqueue failed", { task_id: taskId, error: (err as Error).message });
        throw redisUnavailable();
      }
      log("info", "upload accepted", { request_id: c.get("requestId"), task_id: taskId, format, size: form.file.size });
      const accepted: z.infer<typeof UploadAcceptedSchema> = {
        message: "Image uploaded successfully, processing started",
        status: "queued",
        task_id: taskId,
        filename,
        file_path: stored,
        status_url: `/api/v1/images/status/${taskId}`,
      };
      stored = undefined;
      // The task exists now: if Redis fails this write, a retry waits out the claim, then creates a second task.
      await claim?.complete(accepted).catch((err) =>
        log("warn", "could not record the Idempotency-Key", { task_id: taskId, error: String(err) })
      );
      // 202's status monitor (RFC 9110 §15.3.3), for clients that follow Location rather than read the body.
      c.header("Location", accepted.status_url);
      return c.json(accepted, 202);
    } catch (err) {
      // Nothing will ever process these bytes: no partial or orphan file is left behind.
      await removeFile(incoming);
      // The store may be the very thing that failed; then there is nothing of this upload in it to remove.
      if (stored) await store.removeAt(stored).catch(() => {});
      await claim?.release();
      throw err;
    }
  });
}

/** checkStructure of the spilled upload at `path`, read from disk as the walk goes. */
async function checkSpilled(path: string, size: number, maxPixels: number): Promise<ImageFormat> {
  const file = await Deno.open(path);
  try {
    return checkStructure(fileSource(file, size), maxPixels);
  } finally {
    file.close();
  }
}
