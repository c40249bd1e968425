/**
 * A typed client of the contour service, built on openapi-fetch with the types `deno task client:generate` derives
 * from the service's OpenAPI document (`client/schema.d.ts`).
 *
 * @example
 * ```ts
 * import { createContourClient } from "./mod.ts";
 *
 * const api = createContourClient({ baseUrl: "http://localhost:8000" });
 * const { task_id } = await api.upload(await Deno.readFile("coins.png"), { filename: "coins.png", min_area: 500 });
 * const status = await api.waitForCompletion(task_id);
 * const { contours } = await api.contours(task_id);
 * await Deno.writeFile("annotated.png", new Uint8Array(await (await api.image(status)).arrayBuffer()));
 * await api.delete(task_id);
 * ```
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema.d.ts";

type Schemas = components["schemas"];

/** A task's state, progress and, once completed, its result summary. */
export type TaskStatus = Schemas["TaskStatus"];
/** The answer to an accepted upload. */
export type UploadAccepted = Schemas["UploadAccepted"];
/** The result document: every contour with its measurements. */
export type Contours = Schemas["Contours"];
/** The contours as a GeoJSON FeatureCollection of Polygons, in pixel coordinates. */
export type ContoursGeoJson = Schemas["ContoursGeoJson"];
/** One page of finished results. */
export type ResultsPage = Schemas["ResultsPage"];
/** The body of every error answer. */
export type ErrorBody = Schemas["Error"];
/** A status with links to the task's image, data and exports. */
export type TaskWithLinks = paths["/api/v1/images/{task_id}"]["get"]["responses"][200]["content"]["application/json"];
/** The answer to an accepted batch: its tasks and the files it refused. */
export type BatchAccepted = Schemas["BatchAccepted"];
/** A batch's tasks per state and each task's state. */
export type BatchStatus = Schemas["BatchStatus"];
/** The processing options an upload may carry (every one optional; the service's defaults apply). */
export type UploadOptions = Omit<Schemas["UploadForm"], "file" | "source_url">;

/** How the client reaches the service. */
export interface ContourClientOptions {
  /** The service's origin, such as `http://localhost:8000`. */
  baseUrl: string;
  /** A key of the service's API_KEYS; needed only when it runs with keys. */
  apiKey?: string;
  /** Send the key as `X-API-Key` (the default) or as `Authorization: Bearer`. */
  apiKeyAs?: "x-api-key" | "bearer";
  /** The fetch to use (a test routes requests with it). */
  fetch?: (request: Request) => Promise<Response>;
}

/** How long `waitForCompletion` waits, and how. */
export interface WaitOptions {
  /** Give up after this many milliseconds (default 120 000). */
  timeoutMs?: number;
  /** Interval of the polling fallback, in milliseconds (default 500). */
  pollIntervalMs?: number;
  /** Called with each status seen on the way. */
  onStatus?: (status: TaskStatus) => void;
  /** Stops waiting. */
  signal?: AbortSignal;
}

/** An error answer of the service: its HTTP status and the `{error: {code, message}}` body. */
export class ContourApiError extends Error {
  constructor(readonly status: number, readonly body: ErrorBody) {
    super(`${status} ${body.error.code}: ${body.error.message}`);
    this.name = "ContourApiError";
  }

  /** The error's code, such as `not_found` or `validation_error`. */
  get code(): ErrorBody["error"]["code"] {
    return this.body.error.code;
  }
}

/** A client of the contour service. */
export interface ContourClient {
  /** The underlying openapi-fetch client, for every operation of the document. */
  readonly raw: Client<paths>;
  /** Uploads an image (bytes or a Blob/File) with processing options; the task is queued. */
  upload(
    file: Blob | Uint8Array,
    options?: UploadOptions & { filename?: string; idempotencyKey?: string },
  ): Promise<UploadAccepted>;
  /**
   * Queues an image the service's worker downloads from `sourceUrl` (only hosts in its SOURCE_ALLOWED_HOSTS); a failed
   * download ends the task `failed` with a `source_*` code.
   */
  uploadFromUrl(sourceUrl: string, options?: UploadOptions & { idempotencyKey?: string }): Promise<UploadAccepted>;
  /** Uploads several images with one set of options; a refused file is listed in `errors`, the others are queued. */
  uploadBatch(files: (Blob | File)[], options?: UploadOptions): Promise<BatchAccepted>;
  /** A batch's progress. */
  batch(batchId: string): Promise<BatchStatus>;
  /** A batch's finished results as one ZIP (unfinished tasks are listed in its manifest.json). */
  batchResults(batchId: string): Promise<Blob>;
  /** A task's status. */
  status(taskId: string): Promise<TaskStatus>;
  /** A task's status plus links to its image, data and exports. */
  task(taskId: string): Promise<TaskWithLinks>;
  /**
   * Waits until a task has completed or failed and returns its final status: follows the live event stream, and polls
   * when the stream is not available or ends early (a server shutting down), riding out 503s and network errors until
   * the deadline.
   */
  waitForCompletion(taskId: string, options?: WaitOptions): Promise<TaskStatus>;
  /** The contours with their measurements; `points: false` leaves out the vertices. */
  contours(taskId: string, options?: { points?: boolean }): Promise<Contours>;
  /** The contours as GeoJSON. */
  contoursGeoJson(taskId: string): Promise<ContoursGeoJson>;
  /** The contours as an SVG document of the image's size. */
  contoursSvg(taskId: string): Promise<string>;
  /** The annotated image (PNG or JPEG, as the upload asked) of a completed task. */
  image(task: string | TaskStatus): Promise<Blob>;
  /** One page of finished results, newest first; pass `next_cursor` back as `cursor` for the next. */
  results(options?: { limit?: number; cursor?: string }): Promise<ResultsPage>;
  /** Removes a task, its upload and its result files. */
  delete(taskId: string): Promise<void>;
  /**
   * Cancels a queued or running task; its status comes back (`failed` with `cancelled` already for a queued one, still
   * `active` for a running one until its worker has stopped it). A finished task throws ApiError 409 `task_finished`.
   */
  cancel(taskId: string): Promise<TaskStatus>;
}

const EVENTS_PATH = "/api/v1/images/status/{task_id}/events";

/** Creates a client of the service at `options.baseUrl`. */
export function createContourClient(options: ContourClientOptions): ContourClient {
  const headers: Record<string, string> = {};
  if (options.apiKey !== undefined) {
    if (options.apiKeyAs === "bearer") headers.authorization = `Bearer ${options.apiKey}`;
    else headers["x-api-key"] = options.apiKey;
  }
  const raw = createClient<paths>({ baseUrl: options.baseUrl, headers, fetch: options.fetch });

  const status = async (taskId: string, signal?: AbortSignal) =>
    expect(await raw.GET("/api/v1/images/status/{task_id}", { params: { path: { task_id: taskId } }, signal }));

  const client: ContourClient = {
    raw,
    async upload(file, { filename, idempotencyKey, ...fields } = {}) {
      const blob = file instanceof Blob ? file : new Blob([file as Uint8Array<ArrayBuffer>]);
      return expect(
        await raw.POST("/api/v1/images/upload", {
          body: { ...fields, file: blob },
          params: { header: idempotencyKey === undefined ? undefined : { "idempotency-key": idempotencyKey } },
          bodySerializer: (body) => {
            const form = new FormData();
            for (const [name, value] of Object.entries(body ?? {})) {
              if (name === "file" || value === undefined) continue;
              form.append(name, String(value));
            }
            form.append("file", blob, filename ?? (file instanceof File ? file.name : "upload"));
            return form;
          },
        }),
      );
    },
    async uploadFromUrl(sourceUrl, { idempotencyKey, ...fields } = {}) {
      return expect(
        await raw.POST("/api/v1/images/upload", {
          body: { ...fields, source_url: sourceUrl },
          params: { header: idempotencyKey === undefined ? undefined : { "idempotency-key": idempotencyKey } },
          bodySerializer: (body) => {
            const form = new FormData();
            for (const [name, value] of Object.entries(body ?? {})) {
              if (value !== undefined) form.append(name, String(value));
            }
            return form;
          },
        }),
      );
    },
    async uploadBatch(files, fields = {}) {
      return expect(
        await raw.POST("/api/v1/images/batch", {
          body: { ...fields, file: [] },
          bodySerializer: () => {
            const form = new FormData();
            for (const [name, value] of Object.entries(fields)) {
              if (value !== undefined) form.append(name, String(value));
            }
            for (const file of files) form.append("file", file, file instanceof File ? file.name : "upload");
            return form;
          },
        }),
      );
    },
    async batch(batchId) {
      return expect(await raw.GET("/api/v1/batches/{batch_id}", { params: { path: { batch_id: batchId } } }));
    },
    async batchResults(batchId) {
      return expect(
        await raw.GET("/api/v1/batches/{batch_id}/results.zip", {
          params: { path: { batch_id: batchId } },
          parseAs: "blob",
        }),
      ) as Blob;
    },
    status: (taskId) => status(taskId),
    async task(taskId) {
      return expect(await raw.GET("/api/v1/images/{task_id}", { params: { path: { task_id: taskId } } }));
    },
    async waitForCompletion(taskId, { timeoutMs = 120_000, pollIntervalMs = 500, onStatus, signal } = {}) {
      const deadline = new AbortController();
      const timer = setTimeout(
        () => deadline.abort(new Error(`task ${taskId} did not finish within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const stop = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
      try {
        const streamed = await followEvents(raw, taskId, stop, onStatus);
        if (streamed) return streamed;
        for (;;) {
          let current: TaskStatus | undefined;
          try {
            current = await status(taskId, stop);
          } catch (err) {
            if (stop.aborted || !transient(err)) throw err;
          }
          if (current) {
            onStatus?.(current);
            if (finished(current)) return current;
          }
          await pause(pollIntervalMs, stop);
        }
      } catch (err) {
        throw deadline.signal.aborted && !signal?.aborted ? deadline.signal.reason : err;
      } finally {
        clearTimeout(timer);
      }
    },
    async contours(taskId, { points = true } = {}) {
      const body = expect(
        await raw.GET("/api/v1/images/contours/{task_id}", {
          params: { path: { task_id: taskId }, query: { format: "json", points: points ? "true" : "false" } },
        }),
      );
      return body as Contours;
    },
    async contoursGeoJson(taskId) {
      const body = expect(
        await raw.GET("/api/v1/images/contours/{task_id}", {
          params: { path: { task_id: taskId }, query: { format: "geojson" } },
        }),
      );
      return body as ContoursGeoJson;
    },
    async contoursSvg(taskId) {
      return expect(
        await raw.GET("/api/v1/images/contours/{task_id}", {
          params: { path: { task_id: taskId }, query: { format: "svg" } },
          parseAs: "text",
        }),
      );
    },
    async image(task) {
      const current = typeof task === "string" ? await status(task) : task;
      const url = current.result?.result_url;
      if (!url) throw new Error(`task ${current.task_id} has no image (state ${current.state})`);
      const name = url.slice(url.lastIndexOf("/") + 1);
      return expect(await raw.GET("/static/results/{name}", { params: { path: { name } }, parseAs: "blob" }));
    },
    async results({ limit, cursor } = {}) {
      return expect(await raw.GET("/api/v1/images/results", { params: { query: { limit, cursor } } }));
    },
    async delete(taskId) {
      expect(await raw.DELETE("/api/v1/images/{task_id}", { params: { path: { task_id: taskId } } }));
    },
    async cancel(taskId) {
      return expect(await raw.POST("/api/v1/images/cancel/{task_id}", { params: { path: { task_id: taskId } } }));
    },
  };
  return client;
}

const finished = (s: TaskStatus) => s.state === "completed" || s.state === "failed";

// Worth asking again: the service is unavailable for a moment (Redis, a restart) or could not be reached.
const transient = (err: unknown) => (err instanceof ContourApiError && err.status === 503) || err instanceof TypeError;

/** The data of a successful answer; an error answer becomes a ContourApiError. */
function expect<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.response.ok) return result.data as T;
  throw apiError(result.response.status, result.error);
}

function apiError(status: number, body: unknown): ContourApiError {
  const error = (body as Partial<ErrorBody> | undefined)?.error;
  if (error && typeof error.code === "string" && typeof error.message === "string") {
    return new ContourApiError(status, { error });
  }
  // Not the service's own answer (a proxy in between): the body is kept as the message.
  const message = typeof body === "string" ? body : JSON.stringify(body);
  return new ContourApiError(status, { error: { code: "internal_error", message: message ?? "" } });
}

/**
 * Follows the task's event stream to its final status. Undefined when the stream is not available (a proxy that does
 * not pass it, a 503) or ended without a final status (the server began shutting down): the caller polls then.
 */
async function followEvents(
  raw: Client<paths>,
  taskId: string,
  signal: AbortSignal,
  onStatus?: (status: TaskStatus) => void,
): Promise<TaskStatus | undefined> {
  let answer;
  try {
    answer = await raw.GET(EVENTS_PATH, {
      params: { path: { task_id: taskId } },
      headers: { accept: "text/event-stream" },
      parseAs: "stream",
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw err;
    return undefined;
  }
  const { response } = answer;
  if (!response.ok) {
    // An unknown task or a refused key is the answer; anything else is worth a poll.
    if ([400, 401, 404].includes(response.status)) throw apiError(response.status, answer.error);
    return undefined;
  }
  if (!response.headers.get("content-type")?.startsWith("text/event-stream") || !response.body) {
    await response.body?.cancel();
    return undefined;
  }
  try {
    for await (const event of serverSentEvents(response.body)) {
      if (event.event === "gone") throw apiError(404, JSON.parse(event.data));
      if (event.event !== "status") continue;
      const current = JSON.parse(event.data) as TaskStatus;
      onStatus?.(current);
      if (finished(current)) return current;
    }
  } catch (err) {
    if (err instanceof ContourApiError || signal.aborted) throw err;
  }
  return undefined;
}

/** The events of a text/event-stream body (the fields this service sends: event and data). */
async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replaceAll("\r\n", "\n");
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = value;
          else if (field === "data") data.push(value);
        }
        if (data.length) yield { event, data: data.join("\n") };
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** Resolves after `ms`, or rejects when `signal` aborts first. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}
