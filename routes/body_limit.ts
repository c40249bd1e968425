import type { MiddlewareHandler } from "hono";
import { TooLarge } from "../errors.ts";

/**
 * Refuses bodies over `maxBytes` (413) from Content-Length, and again while a body streams in (chunked or lying
 * clients), buffering at most `maxBytes`. Hono's own bodyLimit does the same but leaves the request stream locked and
 * un-cancelled on overflow, which keeps Deno's request-body resource alive after the 413 has been sent.
 */
export function limitBody(maxBytes: number, reportedLimit = maxBytes): MiddlewareHandler {
  return async (c, next) => {
    const body = c.req.raw.body;
    if (!body) return next();
    const declared = c.req.raw.headers.get("content-length");
    if (declared !== null && !c.req.raw.headers.has("transfer-encoding") && Number(declared) > maxBytes) {
      await body.cancel().catch(() => {});
      throw new TooLarge(reportedLimit);
    }
    const reader = body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new TooLarge(reportedLimit);
      }
      chunks.push(value);
    }
    const buffer = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      buffer.set(chunk, offset);
      offset += chunk.length;
    }
    // Built from parts: copying the request itself would touch its `signal`, which Deno warns about.
    const { url, method, headers } = c.req.raw;
    c.req.raw = new Request(url, { method, headers, body: buffer });
    return next();
  };
}
