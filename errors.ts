import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ImageError } from "./imaging/image_error.ts";

/** The one error currency of the API: a status, a stable machine code and a human message. */
export class AppError extends Error {
  constructor(readonly status: ContentfulStatusCode, readonly code: string, message: string) {
    super(message);
    this.name = "AppError";
  }
}

/** 400: the request is malformed or its content is unacceptable. */
export class BadRequest extends AppError {
  constructor(code: string, message: string) {
    super(400, code, message);
  }
}

/** 404: no such resource. */
export class NotFound extends AppError {
  constructor(message: string) {
    super(404, "not_found", message);
  }
}

/** 413: the body is larger than the configured limit. */
export class TooLarge extends AppError {
  constructor(limit: number) {
    super(413, "file_too_large", `the file is larger than the limit of ${limit} bytes (MAX_FILE_SIZE)`);
  }
}

/** 503: a dependency (Redis, the queue) is not answering. */
export class Unavailable extends AppError {
  constructor(message: string) {
    super(503, "service_unavailable", message);
  }
}

const HTTP_CODES: Record<number, string> = {
  400: "bad_request",
  413: "file_too_large",
  415: "unsupported_media_type",
};

/** Maps any thrown value to the `{error: {code, message}}` body and its status. */
export function errorResponse(err: unknown, c: Context): Response {
  let status: ContentfulStatusCode = 500;
  let code = "internal_error";
  let message = "internal server error";
  if (err instanceof AppError) {
    ({ status, code, message } = err);
  } else if (err instanceof ImageError) {
    status = 400;
    ({ code, message } = err);
  } else if (err instanceof HTTPException) {
    status = err.status as ContentfulStatusCode;
    code = HTTP_CODES[status] ?? "http_error";
    message = err.message || "request failed";
  } else {
    console.error(
      JSON.stringify({ level: "error", msg: "unhandled error", error: String((err as Error)?.stack ?? err) }),
    );
  }
  return c.json({ error: { code, message } }, status);
}
