import type { MiddlewareHandler } from "hono";
import type { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { AppError } from "../errors.ts";
import { presentedKey, sha256Hex } from "./auth.ts";
import type {} from "./client_address.ts";

/** Settings of the limiter: `limit` requests per client in each window of `windowSeconds`. */
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

/**
 * Limits requests per client (API key, else IP) with rate-limiter-flexible's Redis store, so every API process counts
 * against the same budget; 429 with Retry-After past the limit.
 */
export function rateLimit(redis: Redis, settings: RateLimit): MiddlewareHandler {
  if (settings.limit <= 0) return (_c, next) => next();
  // One key per client and window, under the service's prefix (one Cluster hash slot with the rest of its keys).
  const limiter = new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${settings.prefix}:ratelimit`,
    points: settings.limit,
    duration: settings.windowSeconds,
  });
  return async (c, next) => {
    // The client's address as identifyClient established it (TRUST_PROXY), else the socket's peer.
    const remote = c.get("clientAddress") ??
      (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr?.hostname ?? "unknown";
    let answer: RateLimiterRes;
    let refused = false;
    try {
      answer = await limiter.consume(await clientId(c.req.raw.headers, remote));
    } catch (err) {
      // Without Redis the request fails with 503 further on anyway; the limiter must not turn that into a 429.
      if (!(err instanceof RateLimiterRes)) return next();
      answer = err;
      refused = true;
    }
    c.header("RateLimit-Limit", String(settings.limit));
    c.header("RateLimit-Remaining", String(answer.remainingPoints));
    if (refused) {
      const retryAfter = Math.max(1, Math.ceil(answer.msBeforeNext / 1000));
      c.header("Retry-After", String(retryAfter));
      throw new AppError("rate_limited", `too many requests; retry in ${retryAfter} s`);
    }
    return next();
  };
}
