// Idempotency-Key for uploads (IETF draft-ietf-httpapi-idempotency-key-header): a script that retries an upload after a
// timeout or a dropped connection gets the task the first attempt created instead of a second one.
import type { Redis } from "ioredis";
import { AppError, BadRequest } from "../errors.ts";
import { presentedKey, sha256Hex } from "./auth.ts";
import { fromRedis } from "./redis_errors.ts";

/** The 202 body an upload answered, kept so that a retry with the same key gets the same answer. */
export type AcceptedBody = Record<string, unknown> & { task_id: string; status_url: string };

interface StoredRecord {
  state: "pending" | "done";
  fingerprint: string;
  accepted?: AcceptedBody;
}

/** One upload's claim on its Idempotency-Key, once the request has been found valid. */
export interface IdempotencyClaim {
  /** Set when an earlier request with this key was accepted: answer with its body, create nothing. */
  replay?: AcceptedBody;
  /** Records the accepted upload under the key (for `ttlSeconds`). */
  complete(accepted: AcceptedBody): Promise<void>;
  /** Frees the key after a failure, so the client's retry is processed afresh. */
  release(): Promise<void>;
}

// Long enough to store the file and queue the job; short enough that a request which died midway frees its key soon.
const PENDING_SECONDS = 60;
const MAX_KEY_LENGTH = 255;

/** The request's Idempotency-Key (a structured-field string, quoted or not), or undefined when it sent none. */
export function idempotencyKey(headers: Headers): string | undefined {
  const raw = headers.get("idempotency-key");
  if (raw === null) return undefined;
  const key = raw.trim().replace(/^"(.*)"$/, "$1");
  if (key.length === 0 || key.length > MAX_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(key)) {
    throw new BadRequest(
      "validation_error",
      `Idempotency-Key: 1 to ${MAX_KEY_LENGTH} visible ASCII characters (a UUID is a good choice)`,
    );
  }
  return key;
}

/**
 * Claims `key` for this upload. Keys are scoped to the caller's API key when one is presented (else shared by all
 * callers, so use unique ones), and bound to a fingerprint of the request: the same key with another request is a
 * client bug, refused with 422 rather than answered with the wrong task.
 */
export async function claimIdempotencyKey(
  redis: Redis,
  prefix: string,
  headers: Headers,
  key: string,
  fingerprint: string,
  ttlSeconds: number,
): Promise<IdempotencyClaim> {
  const scope = presentedKey(headers) ?? "";
  const redisKey = `${prefix}:${await sha256Hex(`${scope}\n${key}`)}`;
  const pending: StoredRecord = { state: "pending", fingerprint };
  const claim: IdempotencyClaim = {
    complete: (accepted) =>
      fromRedis(async () => {
        const done: StoredRecord = { state: "done", fingerprint, accepted };
        await redis.set(redisKey, JSON.stringify(done), "EX", Math.max(1, Math.round(ttlSeconds)));
      }),
    release: async () => {
      await redis.del(redisKey).catch(() => {});
    },
  };
  const won = await fromRedis(() => redis.set(redisKey, JSON.stringify(pending), "EX", PENDING_SECONDS, "NX"));
  if (won === "OK") return claim;
  const earlier = await fromRedis(() => redis.get(redisKey));
  // Expired between the two calls: the earlier request is gone, so this one may proceed (and claims the key).
  if (earlier === null) return claimIdempotencyKey(redis, prefix, headers, key, fingerprint, ttlSeconds);
  const record = JSON.parse(earlier) as StoredRecord;
  if (record.fingerprint !== fingerprint) {
    throw new AppError(
      "idempotency_key_reused",
      "Idempotency-Key was already used for a different upload (another file, filename or options); use a new key",
    );
  }
  if (record.state === "pending" || !record.accepted) {
    throw new AppError(
      "idempotency_key_in_use",
      "an upload with this Idempotency-Key is still being processed; retry in a moment",
    );
  }
  return { ...claim, replay: record.accepted };
}
