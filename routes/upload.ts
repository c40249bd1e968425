import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { join } from "node:path";
import { BadRequest } from "../errors.ts";
import { log } from "../log.ts";
import { validateCallbackUrl } from "../callbacks/callback_url.ts";
import { sourceFilename, validateSourceUrl } from "../sources/source_url.ts";
import { serviceKeys } from "../queue/keys.ts";
import { removeFile } from "../storage/files.ts";
import { createLocalStore } from "../storage/object_store.ts";
import type { AppDeps } from "./deps.ts";
import { sha256Hex } from "./auth.ts";
import { claimIdempotencyKey, type IdempotencyClaim, idempotencyKey } from "./idempotency.ts";
import { inspectUpload, parseUploadFields, SINGLE_PRIORITY, storeAndEnqueue } from "./intake.ts";
import { receiveMultipart } from "./multipart.ts";
import { enqueueSourceJob } from "./source_intake.ts";
import { refuseOtherMethods } from "./method_not_allowed.ts";
import { API_KEY_SECURITY, errorResponses, UploadAcceptedSchema, UploadFormSchema } from "./schemas.ts";

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
    let claim: IdempotencyClaim | undefined;
    try {
      const form = await receiveMultipart(c.req.raw, {
        tempPath: incoming,
        maxFileBytes: config.MAX_FILE_SIZE,
        maxBodyBytes: config.MAX_FILE_SIZE + MULTIPART_OVERHEAD,
        idleTimeoutMs: config.BODY_IDLE_TIMEOUT_MS,
        sha256: idempotencyKey(c.req.raw.headers) !== undefined,
      });
      // source_url is the single upload's own field (a batch's files are files), read apart from the shared ones.
      const { source_url, ...textFields } = form.fields;
      const fields = parseUploadFields(textFields);
      if (form.file && source_url !== undefined) {
        throw new BadRequest("validation_error", "source_url: send either a file or a source_url, not both");
      }
      if (!form.file && source_url === undefined) {
        throw new BadRequest("missing_file", "file: the form needs a 'file' field holding the image (or a source_url)");
      }
      const sourceUrl = source_url === undefined ? undefined : validateSourceUrl(config, source_url);
      const { callback_url, render, priority, ...options } = fields;
      const callbackUrl = callback_url ? validateCallbackUrl(config, callback_url) : undefined;
      const upload = form.file &&
        { file: form.file, format: await inspectUpload(form.file, incoming, config.MAX_PIXELS) };

      const filename = upload ? sanitizeFilename(upload.file.name) : sourceFilename(sourceUrl!, sanitizeFilename);
      const key = idempotencyKey(c.req.raw.headers);
      if (key !== undefined) {
        // Checked only now, so that a refused request leaves the key free for the corrected one.
        const fingerprint = await sha256Hex(
          JSON.stringify({
            file: upload?.file.sha256,
            source_url: sourceUrl,
            filename,
            options,
            render,
            callback_url: callbackUrl,
            priority,
          }),
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
      const job = {
        taskId,
        filename,
        options,
        render: render ?? config.RENDER,
        callbackUrl,
        requestId: c.get("requestId"),
        priority: priority ?? SINGLE_PRIORITY,
      };
      const accepted = upload
        ? await storeAndEnqueue({ config, queue, store }, { ...job, ...upload, spilledAt: incoming })
        : await enqueueSourceJob({ config, queue }, { ...job, sourceUrl: sourceUrl! });
      // The task exists now: if Redis fails this write, a retry waits out the claim, then creates a second task.
      await claim?.complete(accepted).catch((err) =>
        log("warn", "could not record the Idempotency-Key", { task_id: taskId, error: String(err) })
      );
      // 202's status monitor (RFC 9110 §15.3.3), for clients that follow Location rather than read the body.
      c.header("Location", accepted.status_url);
      return c.json(accepted, 202);
    } catch (err) {
      // Nothing will ever process these bytes: no partial or orphan file is left behind (storeAndEnqueue removes what
      // it stored when the job could not be queued).
      await removeFile(incoming);
      await claim?.release();
      throw err;
    }
  });
}
