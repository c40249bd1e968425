import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors.ts";

const encoder = new TextEncoder();

/** Compares two strings in time independent of where they differ (length leaks, content does not). */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a), y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i % x.length] ?? 0) ^ (y[i % y.length] ?? 0);
  return diff === 0 && x.length === y.length;
}

/** The key a request carries, from `X-API-Key` or `Authorization: Bearer …`. */
export function presentedKey(headers: Headers): string | undefined {
  const direct = headers.get("x-api-key");
  if (direct) return direct;
  const m = /^Bearer\s+(.+)$/i.exec(headers.get("authorization") ?? "");
  return m?.[1];
}

/** Requires one of `keys` when any are configured; with none configured, everything passes. */
export function requireApiKey(keys: string[]): MiddlewareHandler {
  return (c, next) => {
    if (keys.length === 0) return next();
    const key = presentedKey(c.req.raw.headers);
    // Every configured key is compared, so the time taken does not tell which one came closest.
    const ok = key !== undefined && keys.map((k) => constantTimeEqual(k, key)).includes(true);
    if (!ok) {
      c.header("WWW-Authenticate", 'Bearer realm="api"');
      throw new AppError(401, "unauthorized", "a valid API key is required (X-API-Key header or Bearer token)");
    }
    return next();
  };
}
