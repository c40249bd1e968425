import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { log } from "../log.ts";
import { closeRedis, createRedis } from "./connection.ts";
import { type ContourQueue, formatFailure } from "./contour_queue.ts";

/** The failure reason of a cancelled task, as GET /status reads it back (`error.code = "cancelled"`). */
export const CANCELLED_FAILURE: string = formatFailure("cancelled", "the task was cancelled at the client's request");

/** What a cancel request found, and did. */
export type CancelOutcome =
  /** No such task. */
  | "missing"
  /** The task had already completed: nothing to cancel. */
  | "completed"
  /** The task had already failed, for a reason other than a cancellation. */
  | "failed"
  /** The task was queued: it is now failed as cancelled. */
  | "cancelled"
  /** The task had been cancelled before (a repeated request changes nothing). */
  | "already_cancelled"
  /** The task is being processed (or was marked before): the worker running it has been told to stop. */
  | "stopping";

/** The job hash field that marks a task whose cancellation was asked for while it ran (ms since the epoch). */
export const CANCEL_FIELD = "cancelRequested";

// BullMQ has no call that fails a job nobody holds (moveToFailed needs the active job's lock), so a queued job is taken
// out of every list a queued job can be in and failed here, in one script, the way moveToFinished records a failure:
// the reason and finishedOn in the job's hash, the id in the failed set scored by that time, a "failed" event on the
// queue's stream (which QueueEvents, hence the live status stream, reads). Any other job is left in place and marked;
// the worker holding it stops it. One script, so a worker taking the job meanwhile sees either the failure or the mark.
const CANCEL_SCRIPT = `
local jobKey, waitKey, pausedKey, prioritizedKey, delayedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local completedKey, failedKey, eventsKey, metaKey = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local id, now, reason, field, cancelledPrefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call("EXISTS", jobKey) == 0 then return "missing" end
if redis.call("ZSCORE", completedKey, id) then return "completed" end
if redis.call("ZSCORE", failedKey, id) then
  local failedReason = redis.call("HGET", jobKey, "failedReason") or ""
  if string.sub(failedReason, 1, #cancelledPrefix) == cancelledPrefix then return "already_cancelled" end
  return "failed"
end
local removed = redis.call("LREM", waitKey, 0, id) + redis.call("LREM", pausedKey, 0, id)
  + redis.call("ZREM", prioritizedKey, id) + redis.call("ZREM", delayedKey, id)
if removed > 0 then
  redis.call("HSET", jobKey, "failedReason", reason, "finishedOn", now)
  redis.call("ZADD", failedKey, now, id)
  local maxEvents = tonumber(redis.call("HGET", metaKey, "opts.maxLenEvents")) or 10000
  redis.call("XADD", eventsKey, "MAXLEN", "~", maxEvents, "*", "event", "failed", "jobId", id,
    "failedReason", reason, "prev", "waiting")
  return "cancelled"
end
redis.call("HSETNX", jobKey, field, now)
return "stopping"
`;

/**
 * The pub/sub channel cancellations of running tasks are announced on, under the service's prefix. Plain (not sharded)
 * pub/sub: on a Redis Cluster a PUBLISH reaches the subscribers of every node, so a worker may subscribe through
 * whichever node its client picks and keep its subscription across resharding; SSUBSCRIBE would tie each subscriber to
 * the node owning the channel's slot and need Redis 7. Cancellations are rare, so the cluster-wide broadcast costs
 * nothing that matters.
 */
export function cancelChannel(config: Pick<Config, "QUEUE_PREFIX" | "QUEUE_NAME">): string {
  return `${config.QUEUE_PREFIX}:${config.QUEUE_NAME}:cancel`;
}

/**
 * Cancels a task: a queued one is failed as cancelled at once; a running one is marked and its worker (whichever
 * process has it) is told through the cancel channel. The mark is what counts: a worker that missed the message (its
 * subscription was reconnecting) finds it before it records a result, and one taking the task up again finds it first.
 */
export async function cancelTask(
  queue: ContourQueue,
  redis: Redis,
  config: Pick<Config, "QUEUE_PREFIX" | "QUEUE_NAME">,
  taskId: string,
  now = Date.now(),
): Promise<CancelOutcome> {
  const keys = [taskId, "wait", "paused", "prioritized", "delayed", "completed", "failed", "events", "meta"]
    .map((k) => queue.toKey(k));
  const outcome = await redis.eval(
    CANCEL_SCRIPT,
    keys.length,
    ...keys,
    taskId,
    String(now),
    CANCELLED_FAILURE,
    CANCEL_FIELD,
    formatFailure("cancelled", ""),
  ) as CancelOutcome;
  if (outcome === "stopping") await redis.publish(cancelChannel(config), taskId);
  return outcome;
}

/** Where a job's cancellation mark is kept: the job's hash. */
export function jobKey(job: { queueQualifiedName: string; id?: string }): string {
  return `${job.queueQualifiedName}:${job.id}`;
}

/**
 * Whether a cancellation of the job's task was asked for while an earlier attempt was under way (it has waited for a
 * retry since, or a worker that stopped had it). Only a job being processed is ever marked (a queued one is failed at
 * once), so a job on its first attempt cannot carry a mark, and that is known without a round trip.
 */
export async function cancelledBefore(
  redis: Redis,
  job: { queueQualifiedName: string; id?: string; attemptsStarted: number },
): Promise<boolean> {
  if (job.attemptsStarted <= 1) return false;
  return await redis.hexists(jobKey(job), CANCEL_FIELD) === 1;
}

/** A subscription to the cancel channel, and how to end it. */
export interface CancelSubscription {
  /** Resolves once the subscription is in place (or the first attempt failed: it is retried on reconnect). */
  ready: Promise<void>;
  close(): Promise<void>;
}

/**
 * Calls `onCancel` with the id of every task whose cancellation is announced, on a connection of its own (a subscribed
 * connection can do nothing else). ioredis subscribes again after each reconnect.
 */
export function subscribeCancellations(config: Config, onCancel: (taskId: string) => void): CancelSubscription {
  const subscriber = createRedis(config, "worker");
  const channel = cancelChannel(config);
  subscriber.on("message", (from: string, taskId: string) => {
    if (from === channel) onCancel(taskId);
  });
  const ready = subscriber.subscribe(channel).then(
    () => {},
    (err) => log("warn", "could not subscribe to cancellations", { error: String(err) }),
  );
  return {
    ready,
    async close() {
      await closeRedis(subscriber);
    },
  };
}
