import type { MiddlewareHandler } from "hono";
import { createHash, timingSafeEqual } from "node:crypto";
import { AppError } from "../errors.ts";

const encoder = new TextEncoder();

/** Hex SHA-256 of a text or bytes: what lands in Redis instead of a client's API key or idempotency key. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Compares two strings in time independent of their contents and lengths: their SHA-256 digests have one length, which
 * `timingSafeEqual` needs, and compare equal only when the strings do.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash("sha256").update(a).digest(), createHash("sha256").update(b).digest());
}

/**
 * The key a request carries, from `X-API-Key`, `Authorization: Bearer …`, or the password of `Authorization: Basic …`
 * (what a browser sends after its login prompt; the user name is ignored).
 */
export function presentedKey(headers: Headers): string | undefined {
  const direct = headers.get("x-api-key");
  if (direct) return direct;
  const authorization = headers.get("authorization") ?? "";
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization);
  if (!basic) return undefined;
  try {
    const credentials = new TextDecoder().decode(Uint8Array.from(atob(basic[1]), (ch) => ch.charCodeAt(0)));
    const colon = credentials.indexOf(":");
    return colon >= 0 ? credentials.slice(colon + 1) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Requires one of `keys` when any are configured; with none configured, everything passes. `challenge` is the scheme
 * a refusal names: "Basic" makes a browser ask for the key (pages people open), "Bearer" does not (the API).
 */
export function requireApiKey(keys: string[], challenge: "Bearer" | "Basic" = "Bearer"): MiddlewareHandler {
  return (c, next) => {
    if (keys.length === 0) return next();
    const key = presentedKey(c.req.raw.headers);
    // Every configured key is compared, so the time taken does not tell which one came closest.
    const ok = key !== undefined && keys.map((k) => constantTimeEqual(k, key)).includes(true);
    if (!ok) {
      c.header(
        "WWW-Authenticate",
        challenge === "Basic" ? 'Basic realm="admin", charset="UTF-8"' : 'Bearer realm="api"',
      );
      throw new AppError(
        "unauthorized",
        "a valid API key is required (X-API-Key header, Bearer token, or as the password of Basic authentication)",
      );
    }
    return next();
  };
}
