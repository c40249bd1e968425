import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { IMAGE_ERROR_CODES, ImageError } from "./imaging/image_error.ts";
import { log } from "./log.ts";
import { ImageGone } from "./rendering/image_gone.ts";
import { isDiskFull } from "./storage/disk.ts";

/** Each of `codes` with the same status. */
const each = <C extends string, S extends number>(codes: readonly C[], status: S) =>
  Object.fromEntries(codes.map((c) => [c, status])) as Record<C, S>;

/**
 * Every `error.code` an HTTP answer carries, with the status it is answered with: the one list AppError and the OpenAPI
 * document (routes/schemas.ts) take codes from.
 */
export const ERROR_CODES = {
  bad_request: 400,
  missing_file: 400,
  empty_file: 400,
  too_many_files: 400,
  validation_error: 400,
  malformed_form: 400,
  invalid_cursor: 400,
  callbacks_disabled: 400,
  // An upload named a source_url, and SOURCE_ALLOWED_HOSTS is empty.
  source_urls_disabled: 400,
  // Found at upload from the header and structure; the same codes end a job whose image only the worker could judge.
  ...each(IMAGE_ERROR_CODES, 400),
  // An image in a format or with a feature the decoders do not read (GIF, a TIFF compression, …), named in the message.
  unsupported_image: 415,
  // A request the queue dashboard's own API (bull-board) refused, for a reason the service has no code of its own for.
  dashboard_error: 400,
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  read_only: 405,
  // An upload's body stopped arriving for BODY_IDLE_TIMEOUT_MS.
  request_timeout: 408,
  idempotency_key_in_use: 409,
  task_active: 409,
  task_state_changed: 409,
  // A cancel request for a task that has already completed or failed: there is nothing left to stop.
  task_finished: 409,
  image_gone: 410,
  file_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  rate_limited: 429,
  internal_error: 500,
  service_unavailable: 503,
  // The disk holding uploads or results is full (or its quota is used up): retry once an operator has made room.
  insufficient_storage: 507,
} as const;

/** A code of an HTTP error answer. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** A status an error answer may have. */
export type ErrorStatus = (typeof ERROR_CODES)[ErrorCode];

/** The codes answered with status `S`. */
export type ErrorCodeOf<S extends ErrorStatus> = {
  [C in ErrorCode]: (typeof ERROR_CODES)[C] extends S ? C : never;
}[ErrorCode];

/**
 * Every `error.code` of a failed task (GET /status): the image's own codes, then the job's. A failure reason is written
 * `"<code>: <message>"` (queue/contour_queue.ts).
 */
export const JOB_FAILURE_CODES = [
  ...IMAGE_ERROR_CODES,
  // The upload was removed before a worker read it.
  "upload_missing",
  // The job's payload does not match the job schema (a producer of another version, a job added by hand).
  "invalid_job",
  // The analysis ran past ANALYSIS_TIMEOUT_MS.
  "timeout",
  // The object storage (STORAGE=s3) could not be reached or kept failing, on every attempt.
  "storage_unavailable",
  // Cancelled at the client's request (POST /api/v1/images/{task_id}/cancel), while queued or running; never retried.
  "cancelled",
  // The worker's download of a source_url (sources/fetch_source.ts), by cause: its host is not in SOURCE_ALLOWED_HOSTS
  // or is (or resolves to) an internal address, at the first URL or a redirect's; the host has no address (retried);
  // no connection or no valid HTTP answer (retried); past SOURCE_TIMEOUT_MS (retried); an error status (5xx, 408
  // and 429 retried); more than 5 redirects; a body over MAX_FILE_SIZE (stopped as soon as it passes the limit).
  "source_refused",
  "source_unresolvable",
  "source_unreachable",
  "source_timeout",
  "source_http_error",
  "source_too_many_redirects",
  "source_too_large",
  // Anything else, after JOB_ATTEMPTS tries.
  "processing_error",
] as const;

/** A code of a failed task. */
export type JobFailureCode = (typeof JOB_FAILURE_CODES)[number];

/** The one error currency of the API: a registered code (which decides the status) and a human message. */
export class AppError extends Error {
  readonly status: ErrorStatus;
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = "AppError";
    this.status = ERROR_CODES[code];
  }
}

/** 400: the request is malformed or its content is unacceptable. */
export class BadRequest extends AppError {
  constructor(code: ErrorCodeOf<400>, message: string) {
    super(code, message);
  }
}

/** 404: no such resource. */
export class NotFound extends AppError {
  constructor(message: string) {
    super("not_found", message);
  }
}

/** 413: the body is larger than the configured limit. */
export class TooLarge extends AppError {
  constructor(limit: number) {
    super("file_too_large", `the file is larger than the limit of ${limit} bytes (MAX_FILE_SIZE)`);
  }
}

/** 503: a dependency (Redis, the queue) is not answering; `retryAfterSeconds` becomes the Retry-After header. */
export class Unavailable extends AppError {
  constructor(message: string, readonly retryAfterSeconds = 5) {
    super("service_unavailable", message);
  }
}

/** 507: no room left to store a file; `retryAfterSeconds` becomes the Retry-After header. */
export class InsufficientStorage extends AppError {
  constructor(readonly retryAfterSeconds = 300) {
    super("insufficient_storage", "the server has no storage space left for this request; retry later");
  }
}

// Hono's own HTTPExceptions; none of the middleware in use raises another status.
const HTTP_CODES: Partial<Record<number, ErrorCode>> = {
  400: "bad_request",
  401: "unauthorized",
  404: "not_found",
  405: "method_not_allowed",
  413: "file_too_large",
  415: "unsupported_media_type",
};

/**
 * Maps any thrown value to the `{error: {code, message}}` body and its status. An unexpected error is a 500 whose body
 * and log line carry the request id, so a client's report can be found in the logs.
 */
export function errorResponse(err: unknown, c: Context): Response {
  let code: ErrorCode;
  let message: string;
  // Wherever a write ran out of room (an upload being received, an image drawn on request), the client is told so.
  if (isDiskFull(err)) {
    log("error", "disk full", { request_id: c.get("requestId"), path: c.req.path, error: (err as Error).message });
    err = new InsufficientStorage();
  }
  if (err instanceof AppError) {
    ({ code, message } = err);
    if (err instanceof Unavailable || err instanceof InsufficientStorage) {
      c.header("Retry-After", String(err.retryAfterSeconds));
    }
  } else if (err instanceof ImageError || err instanceof ImageGone) {
    ({ code, message } = err);
  } else if (err instanceof HTTPException && HTTP_CODES[err.status]) {
    code = HTTP_CODES[err.status]!;
    message = err.message || "request failed";
  } else {
    const requestId = c.get("requestId") as string | undefined;
    log("error", "unhandled error", {
      request_id: requestId,
      method: c.req.method,
      path: c.req.path,
      error: String((err as Error)?.stack ?? err),
    });
    return c.json(
      { error: { code: "internal_error", message: "internal server error", request_id: requestId } },
      ERROR_CODES.internal_error,
    );
  }
  return c.json({ error: { code, message } }, ERROR_CODES[code]);
}
