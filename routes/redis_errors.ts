import { ErrorCode as BullErrorCode } from "bullmq";
import { AppError, Unavailable } from "../errors.ts";

// Socket errors (Node's codes) and ioredis's own words for a command it could not send or that lost its connection.
// Their text names ioredis internals (enableOfflineQueue, maxRetriesPerRequest), which clients should not be shown.
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
const CONNECTION_MESSAGES = [
  "Stream isn't writeable",
  "Connection is closed",
  "Command aborted due to connection close",
  "Reached the max retries per request limit",
  "Socket timeout",
  "connect ETIMEDOUT",
];
// Replies of a Redis that is there but cannot serve for now (loading its data after a restart, a failover).
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|READONLY|CLUSTERDOWN) /;

// BullMQ's script results for a job that is gone, locked by a worker or in another state than the request read.
const STATE_CODES = new Set<unknown>([
  BullErrorCode.JobNotExist,
  BullErrorCode.JobLockNotExist,
  BullErrorCode.JobNotInState,
  BullErrorCode.JobLockMismatch,
]);
// Job.remove() says so in words only (no code).
const LOCKED = /could not be removed because it is locked by another worker/;

/** The 503 for an unreachable Redis (the same for every route, the dashboard's included). */
export function redisUnavailable(): Unavailable {
  return new Unavailable("Redis is not reachable; try again shortly");
}

/** Whether `err` says Redis could not be reached (or cannot serve for now), rather than that a command was wrong. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && SOCKET_CODES.has(code)) return true;
  return CONNECTION_MESSAGES.some((m) => err.message.includes(m)) || TRANSIENT_REPLY.test(err.message);
}

/** Whether `err` is BullMQ refusing a job operation because the job changed state since it was read. */
function isJobStateChange(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return STATE_CODES.has((err as { code?: unknown }).code) || LOCKED.test(err.message);
}

/**
 * Runs queue or Redis work and says what went wrong in the API's terms: an unreachable Redis is a 503 (with
 * Retry-After), a job that changed state under the request (a worker took it up) a 409; the API's own errors pass
 * through, and anything else stays as it is, for the error handler's 500.
 */
export async function fromRedis<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (isConnectionError(err)) throw redisUnavailable();
    if (isJobStateChange(err)) {
      throw new AppError(
        "task_state_changed",
        "the task changed state while this request was handled (a worker took it up or finished it); retry",
      );
    }
    throw err;
  }
}
