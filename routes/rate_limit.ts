import type { MiddlewareHandler } from "hono";
import type { Redis } from "ioredis";
import { AppError } from "../errors.ts";
import { presentedKey, sha256Hex } from "./auth.ts";
import type {} from "./client_address.ts";

/** Settings of the fixed-window limiter. */
export interface RateLimit {
  /** Requests allowed per client per window; 0 turns the limiter off. */
  limit: number;
  windowSeconds: number;
  /** Redis key prefix (the service's queue prefix), so all API processes share the counters. */
  prefix: string;
}

async function clientId(headers: Headers, remote: string): Promise<string> {
  const key = presentedKey(headers);
  if (!key) return `ip:${remote}`;
  // The key itself never lands in Redis, only a digest of it.
  return `key:${(await sha256Hex(key)).slice(0, 24)}`;
}

/** Limits requests per client (API key, else IP) with counters in Redis; 429 with Retry-After past the limit. */
export function rateLimit(redis: Redis, settings: RateLimit): MiddlewareHandler {
  return async (c, next) => {
    if (settings.limit <= 0) return next();
    // The client's address as identifyClient established it (TRUST_PROXY), else the socket's peer.
    const remote = c.get("clientAddress") ??
      (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr?.hostname ?? "unknown";
    const windowMs = settings.windowSeconds * 1000;
    const now = Date.now();
    const windowStart = Math.floor(now / windowMs) * windowMs;
    const key = `${settings.prefix}:ratelimit:${await clientId(c.req.raw.headers, remote)}:${windowStart}`;
    let count: number;
    try {
      const result = await redis.multi().incr(key).pexpire(key, windowMs).exec();
      count = Number(result?.[0]?.[1] ?? 0);
    } catch {
      // Without Redis the request fails with 503 further on anyway; the limiter must not turn that into a 429.
      return next();
    }
    const remaining = Math.max(0, settings.limit - count);
    c.header("RateLimit-Limit", String(settings.limit));
    c.header("RateLimit-Remaining", String(remaining));
    if (count > settings.limit) {
      const retryAfter = Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000));
      c.header("Retry-After", String(retryAfter));
      throw new AppError("rate_limited", `too many requests; retry in ${retryAfter} s`);
    }
    return next();
  };
}
