import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { makeZip } from "client-zip";
import { join } from "node:path";
import {
  AppError,
  BadRequest,
  ERROR_CODES,
  type ErrorCode,
  InsufficientStorage,
  NotFound,
  TooLarge,
} from "../errors.ts";
import { ImageError } from "../imaging/image_error.ts";
import { log } from "../log.ts";
import { validateCallbackUrl } from "../callbacks/callback_url.ts";
import {
  type BatchRecord,
  type BatchTaskState,
  countStates,
  readBatch,
  readBatchTasks,
  recordBatch,
} from "../queue/batch.ts";
import type { TaskStatus } from "../queue/contour_queue.ts";
import { isDiskFull } from "../storage/disk.ts";
import { removeFile, resultNames } from "../storage/files.ts";
import { createLocalStore, type ObjectStore } from "../storage/object_store.ts";
import type { AppDeps } from "./deps.ts";
import { readResult, resultToCsv } from "./images.ts";
import { BATCH_PRIORITY, inspectUpload, parseUploadFields, storeAndEnqueue } from "./intake.ts";
import { receiveMultipart, spillPath } from "./multipart.ts";
import { refuseOtherMethods } from "./method_not_allowed.ts";
import { fromRedis } from "./redis_errors.ts";
import { fromStorage } from "./storage_errors.ts";
import { API_KEY_SECURITY, errorResponses, ErrorSchema, UploadFields } from "./schemas.ts";
import { sanitizeFilename } from "./upload.ts";

// Room for each file part's boundary and headers, and for the text fields.
const PART_OVERHEAD = 4 * 1024;
const FORM_OVERHEAD = 64 * 1024;
// Small files stay in memory while the form arrives, up to this much for the whole batch; the rest spill to disk.
const BATCH_HELD_BYTES = 8 * 1024 * 1024;

const BATCH_ID_EXAMPLE = "9f8c2a4e-6d1b-4f3a-8e2c-5b7a1d0c3e94";
const TASK_ID_EXAMPLE = "3b241101-e2bb-4255-8caf-4136c566a962";

const BatchIdSchema = z.uuid({ message: "batch_id must be a UUID" }).toLowerCase().openapi({
  param: { name: "batch_id", in: "path" },
  example: BATCH_ID_EXAMPLE,
});

const params = z.object({ batch_id: BatchIdSchema });

/** The multipart form of a batch: many `file` parts and one set of options for all of them. */
const BatchFormSchema = UploadFields.extend({
  file: z.array(
    z.string().openapi({ format: "binary", description: "JPEG, PNG, BMP or TIFF (format detected from content)" }),
  ).min(1).openapi({
    description: "The images: one `file` part each, up to MAX_BATCH_FILES, each up to MAX_FILE_SIZE",
  }),
}).openapi("BatchForm");

const RefusedFileSchema = z.object({
  index: z.number().int().openapi({
    description: "The file's place among the form's `file` parts, from 0",
    example: 2,
  }),
  filename: z.string().openapi({ example: "scan.gif" }),
  error: ErrorSchema.shape.error.pick({ code: true, message: true }).openapi({
    description: "What a single upload of this file would have answered",
    example: { code: "unsupported_image", message: "GIF images are not supported; send JPEG, PNG, BMP or TIFF" },
  }),
}).openapi("BatchRefusedFile");

const BatchTaskSchema = z.object({
  index: z.number().int().openapi({
    description: "The file's place among the form's `file` parts, from 0",
    example: 0,
  }),
  task_id: z.uuid().openapi({ example: TASK_ID_EXAMPLE }),
  filename: z.string().openapi({ example: "coins.png" }),
  status_url: z.string().openapi({ example: `/api/v1/images/status/${TASK_ID_EXAMPLE}` }),
});

const BatchAcceptedSchema = z.object({
  batch_id: z.uuid().openapi({ example: BATCH_ID_EXAMPLE }),
  status_url: z.string().openapi({ example: `/api/v1/batches/${BATCH_ID_EXAMPLE}` }),
  results_url: z.string().openapi({ example: `/api/v1/batches/${BATCH_ID_EXAMPLE}/results.zip` }),
  tasks: z.array(BatchTaskSchema).openapi({ description: "The files accepted and queued, in form order" }),
  errors: z.array(RefusedFileSchema).openapi({
    description: "The files refused, each with the error a single upload of it would have had; the others stand",
  }),
}).openapi("BatchAccepted");

const STATES = ["queued", "active", "completed", "failed", "removed"] as const;

const BatchStatusSchema = z.object({
  batch_id: z.uuid().openapi({ example: BATCH_ID_EXAMPLE }),
  created_at: z.iso.datetime().openapi({ example: "2026-12-06T18:00:00.000Z" }),
  total: z.number().int().openapi({ description: "Tasks in the batch (refused files not counted)", example: 3 }),
  done: z.boolean().openapi({ description: "True once no task is queued or active", example: false }),
  counts: z.object(Object.fromEntries(STATES.map((s) => [s, z.number().int()])) as Record<
    BatchTaskState,
    z.ZodNumber
  >).openapi({
    description: "Tasks in each state; removed: the task was deleted (or expired) since",
    example: { queued: 1, active: 1, completed: 1, failed: 0, removed: 0 },
  }),
  tasks: z.array(BatchTaskSchema.extend({
    state: z.enum(STATES).openapi({ example: "completed" }),
    error: z.object({ code: z.string(), message: z.string() }).optional().openapi({
      description: "Why a failed task failed (as GET /api/v1/images/status/{task_id} says)",
    }),
  })),
  errors: z.array(RefusedFileSchema),
  results_url: z.string().openapi({ example: `/api/v1/batches/${BATCH_ID_EXAMPLE}/results.zip` }),
}).openapi("BatchStatus");

const batchUploadRoute = createRoute({
  method: "post",
  path: "/api/v1/images/batch",
  operationId: "uploadBatch",
  tags: ["batches"],
  summary: "Upload several images at once, with one set of options",
  description: "Each `file` part becomes a task, as if uploaded alone (the same checks, limits and error codes); a " +
    "refused file is listed in `errors` and does not stop the others. Batch files are queued behind single uploads " +
    "unless `priority` says otherwise (docs/batches.md).",
  security: API_KEY_SECURITY,
  request: { body: { required: true, content: { "multipart/form-data": { schema: BatchFormSchema } } } },
  responses: {
    202: {
      description: "Accepted: the batch and its tasks (and the files refused)",
      headers: { Location: { description: "The batch's status URL (status_url)", schema: { type: "string" } } },
      content: { "application/json": { schema: BatchAcceptedSchema } },
    },
    ...errorResponses(400, 401, 408, 413, 415, 429, 503, 507),
  },
});

const batchStatusRoute = createRoute({
  method: "get",
  path: "/api/v1/batches/{batch_id}",
  operationId: "getBatch",
  tags: ["batches"],
  summary: "A batch's progress: tasks per state, and each task's state",
  security: API_KEY_SECURITY,
  request: { params },
  responses: {
    200: { description: "The batch", content: { "application/json": { schema: BatchStatusSchema } } },
    ...errorResponses(400, 401, 404, 503),
  },
});

const batchZipRoute = createRoute({
  method: "get",
  path: "/api/v1/batches/{batch_id}/results.zip",
  operationId: "getBatchResults",
  tags: ["batches"],
  summary: "Every finished result of a batch as one streamed ZIP",
  description: "`images/` holds the annotated images (lazily rendered ones are drawn for it), `data/` the result " +
    "documents, `contours.csv` every contour of every completed task (the per-task CSV export with task_id and " +
    "filename first), and `manifest.json` each task's state and files: tasks not finished yet are listed there, so " +
    "the archive can be fetched at any time; fetch it again once the batch is `done` for every result.",
  security: API_KEY_SECURITY,
  request: { params },
  responses: {
    200: {
      description: "The archive (Zip64 when over 4 GiB)",
      headers: {
        "Content-Disposition": { description: "attachment; filename=batch-{batch_id}.zip", schema: { type: "string" } },
      },
      content: { "application/zip": { schema: z.string().openapi({ format: "binary" }) } },
    },
    ...errorResponses(400, 401, 404, 503),
  },
});

/** A refused file's code and message: what the error handler would have answered for it alone; undefined if none. */
function refusal(err: unknown): { code: ErrorCode; message: string } | undefined {
  if (isDiskFull(err)) err = new InsufficientStorage();
  if (err instanceof AppError) return { code: err.code, message: err.message };
  if (err instanceof ImageError && err.code in ERROR_CODES) {
    return { code: err.code as ErrorCode, message: err.message };
  }
  return undefined;
}

/** The files a batch refused, their codes read back as the ones refusal() wrote. */
const refusedFiles = (record: BatchRecord) => record.rejected as z.infer<typeof RefusedFileSchema>[];

/** A state of a task as a batch reports it. */
const stateOf = (status: TaskStatus | undefined): BatchTaskState => status?.state ?? "removed";

/** Registers `POST /api/v1/images/batch`, `GET /api/v1/batches/{batch_id}` and its `results.zip`. */
export function registerBatchRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const { config, queue } = deps;
  const store = deps.store ?? createLocalStore(config);
  const findBatch = async (batchId: string) => {
    const record = await fromRedis(() => readBatch(deps.redis, config, batchId));
    if (!record) throw new NotFound(`no batch with id ${batchId}`);
    return record;
  };
  const links = (batchId: string) => ({
    status_url: `/api/v1/batches/${batchId}`,
    results_url: `/api/v1/batches/${batchId}/results.zip`,
  });

  // Documented from the schema, parsed by receiveMultipart (streamed) as the single upload is.
  app.openAPIRegistry.registerPath(batchUploadRoute);
  refuseOtherMethods(app, batchUploadRoute.path, "POST", "upload a batch");
  app.post(batchUploadRoute.path, async (c) => {
    const batchId = crypto.randomUUID();
    const incoming = join(config.UPLOAD_DIR, `.incoming-${batchId}`);
    let received = 0;
    try {
      const form = await receiveMultipart(c.req.raw, {
        tempPath: incoming,
        maxFiles: config.MAX_BATCH_FILES,
        oversized: "mark",
        maxFileBytes: config.MAX_FILE_SIZE,
        maxBodyBytes: config.MAX_BATCH_FILES * (config.MAX_FILE_SIZE + PART_OVERHEAD) + FORM_OVERHEAD,
        maxHeldBytes: BATCH_HELD_BYTES,
        idleTimeoutMs: config.BODY_IDLE_TIMEOUT_MS,
      });
      received = form.files.length;
      const { callback_url, render, priority, ...options } = parseUploadFields(form.fields);
      if (!form.files.length) {
        throw new BadRequest("missing_file", "file: the form needs one or more 'file' fields holding the images");
      }
      const callbackUrl = callback_url ? validateCallbackUrl(config, callback_url) : undefined;
      const record: BatchRecord = { batch_id: batchId, created_at: new Date().toISOString(), tasks: [], rejected: [] };
      const tasks: z.infer<typeof BatchTaskSchema>[] = [];
      for (const [index, file] of form.files.entries()) {
        const filename = sanitizeFilename(file.name);
        try {
          if (file.tooLarge) throw new TooLarge(config.MAX_FILE_SIZE);
          const spilledAt = spillPath(incoming, index);
          const format = await inspectUpload(file, spilledAt, config.MAX_PIXELS);
          const accepted = await storeAndEnqueue({ config, queue, store }, {
            taskId: crypto.randomUUID(),
            file,
            spilledAt,
            format,
            filename,
            options,
            render: render ?? config.RENDER,
            callbackUrl,
            requestId: c.get("requestId"),
            priority: priority ?? BATCH_PRIORITY,
          });
          record.tasks.push({ index, task_id: accepted.task_id, filename });
          tasks.push({ index, task_id: accepted.task_id, filename, status_url: accepted.status_url });
        } catch (err) {
          const error = refusal(err);
          if (!error) throw err;
          record.rejected.push({ index, filename, error });
        }
        // Its bytes are in memory or in the store now (or refused): the next file's part may take their room.
        file.bytes = null;
      }
      await fromRedis(() => recordBatch(deps.redis, config, record));
      log("info", "batch accepted", {
        request_id: c.get("requestId"),
        batch_id: batchId,
        tasks: record.tasks.length,
        refused: record.rejected.length,
      });
      const body = { batch_id: batchId, ...links(batchId), tasks, errors: refusedFiles(record) };
      c.header("Location", body.status_url);
      return c.json(body, 202);
    } finally {
      // Spilled parts not moved into the store (refused, or the batch failed) are never read again.
      for (let i = 0; i < received; i++) await removeFile(spillPath(incoming, i));
    }
  });

  app.openapi(batchStatusRoute, async (c) => {
    const { batch_id } = c.req.valid("param");
    const record = await findBatch(batch_id);
    const statuses = await fromRedis(() => readBatchTasks(queue, record));
    const tasks = record.tasks.map((t, i) => ({
      ...t,
      status_url: `/api/v1/images/status/${t.task_id}`,
      state: stateOf(statuses[i]),
      ...(statuses[i]?.error ? { error: statuses[i]!.error } : {}),
    }));
    const counts = countStates(tasks.map((t) => t.state));
    return c.json({
      batch_id,
      created_at: record.created_at,
      total: tasks.length,
      done: counts.queued + counts.active === 0,
      counts,
      tasks,
      errors: refusedFiles(record),
      results_url: links(batch_id).results_url,
    }, 200);
  });

  app.openapi(batchZipRoute, async (c) => {
    const { batch_id } = c.req.valid("param");
    const record = await findBatch(batch_id);
    const statuses = await fromRedis(() => readBatchTasks(queue, record));
    const zip = makeZip(zipEntries(record, statuses, store, deps));
    return c.body(zip, 200, {
      "content-type": "application/zip",
      "content-disposition": `attachment; filename="batch-${batch_id}.zip"`,
      "cache-control": "no-store",
    });
  });
}

/** One entry of the archive, as client-zip takes it. */
type ZipEntry = {
  name: string;
  input: ReadableStream<Uint8Array> | Uint8Array | string | AsyncIterable<string>;
  lastModified?: Date;
};

/**
 * The archive's entries, produced as the ZIP is read (client-zip pulls the next one when the client has taken the
 * last): at most one stored object is open at a time, whatever the batch's size.
 */
async function* zipEntries(
  record: BatchRecord,
  statuses: (TaskStatus | undefined)[],
  store: ObjectStore,
  deps: AppDeps,
): AsyncGenerator<ZipEntry> {
  const manifest = [];
  const csvTasks: { task_id: string; filename: string }[] = [];
  for (const [i, task] of record.tasks.entries()) {
    const status = statuses[i];
    const files: string[] = [];
    let note: string | undefined;
    if (status?.state === "completed" && status.result) {
      const image = status.result.result_url.split("/").pop()!;
      let opened = await fromStorage(() => store.open("results", image));
      if (!opened && deps.renderer) {
        // Drawn lazily (RENDER=lazy) and never asked for: drawn now by the same renderer as /static/results.
        try {
          if (await deps.renderer.ensure(task.task_id, image.split(".").pop()!)) {
            opened = await fromStorage(() => store.open("results", image));
          }
        } catch (err) {
          const error = refusal(err);
          if (!error) throw err;
          note = error.message;
        }
      }
      if (opened) {
        files.push(`images/${image}`);
        yield { name: `images/${image}`, input: opened.body, lastModified: opened.modified };
      }
      const data = resultNames(task.task_id).data;
      const document = await fromStorage(() => store.open("results", data));
      if (document) {
        files.push(`data/${data}`);
        csvTasks.push(task);
        yield { name: `data/${data}`, input: document.body, lastModified: document.modified };
      }
    }
    manifest.push({
      ...task,
      state: stateOf(status),
      ...(status?.error ? { error: status.error } : {}),
      files,
      ...(note ? { note } : {}),
    });
  }
  yield { name: "contours.csv", input: batchCsv(csvTasks, store) };
  const states = manifest.map((t) => t.state);
  const counts = countStates(states);
  yield {
    name: "manifest.json",
    input: JSON.stringify(
      {
        batch_id: record.batch_id,
        created_at: record.created_at,
        complete: counts.queued + counts.active === 0,
        counts,
        tasks: manifest,
        errors: record.rejected,
      },
      null,
      2,
    ),
  };
}

/**
 * Every contour of the given tasks as one CSV: the per-task export's columns (the same for every task, since a
 * batch's options are one set) after task_id and filename. Produced a task at a time, so only one result document is
 * in memory.
 */
async function* batchCsv(tasks: { task_id: string; filename: string }[], store: ObjectStore): AsyncGenerator<string> {
  let header = false;
  for (const task of tasks) {
    const lines = resultToCsv(await readResult(store, task.task_id)).split("\r\n");
    if (!header) {
      yield `task_id,filename,${lines[0]}\r\n`;
      header = true;
    }
    const prefix = `${task.task_id},${csvText(task.filename)},`;
    const rows = lines.slice(1).filter((line) => line !== "");
    if (rows.length) yield rows.map((row) => prefix + row).join("\r\n") + "\r\n";
  }
  if (!header) yield "task_id,filename\r\n";
}

/**
 * A text cell (RFC 4180 quoting). A leading = + - @ is escaped with an apostrophe, so a spreadsheet does not run a
 * filename as a formula (OWASP's CSV injection advice).
 */
function csvText(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n']/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
