import type { Redis } from "ioredis";
import { CANCEL_FIELD } from "./cancel.ts";
import type { ContourSummary } from "./job.ts";

/** Keys of the index of finished results. */
export interface ResultKeys {
  results: string;
  summaries: string;
}

// The job's hash and the index share one slot (the prefix's hash tag on a Cluster), so one script may touch all three.
const RECORD_RESULT_LUA = `
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call("HSET", KEYS[2], ARGV[2], ARGV[3])
redis.call("ZADD", KEYS[3], ARGV[4], ARGV[2])
return 1`;

type RecordingClient = Redis & {
  recordResult(job: string, summaries: string, results: string, ...args: (string | number)[]): Promise<number>;
};

/**
 * Records a completed job's summary, newest-first by finish time, unless the job's hash (at `jobKey`) holds its
 * cancellation mark: checked and written in one script, so a cancellation is either seen here or comes after the
 * result is kept, and it costs the worker one round trip. Idempotent for a retried job. Whether it was recorded.
 */
export async function recordResult(
  redis: Redis,
  keys: ResultKeys,
  summary: ContourSummary,
  jobKey: string,
): Promise<boolean> {
  if (!("recordResult" in redis)) redis.defineCommand("recordResult", { numberOfKeys: 3, lua: RECORD_RESULT_LUA });
  const recorded = await (redis as RecordingClient).recordResult(
    jobKey,
    keys.summaries,
    keys.results,
    CANCEL_FIELD,
    summary.task_id,
    JSON.stringify(summary),
    Date.parse(summary.finished_at),
  );
  return recorded === 1;
}

/** Removes a task from the results index (when its job is deleted). */
export async function forgetResult(redis: Redis, keys: ResultKeys, taskId: string): Promise<void> {
  await redis.multi().hdel(keys.summaries, taskId).zrem(keys.results, taskId).exec();
}

/** Opaque pagination position: the last item's score and id. */
interface Cursor {
  s: number;
  id: string;
}

/** Encodes a cursor for the client. */
export function encodeCursor(c: Cursor): string {
  return btoa(JSON.stringify(c)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

/** Decodes a client's cursor, or returns undefined when it is not one of ours. */
export function decodeCursor(text: string): Cursor | undefined {
  try {
    const c = JSON.parse(atob(text.replace(/-/g, "+").replace(/_/g, "/")));
    if (typeof c?.s === "number" && typeof c?.id === "string") return c;
  } catch {
    // fall through: not a cursor
  }
  return undefined;
}

/** One page of summaries, newest first, and the cursor of the next page (if any). */
export async function listResults(
  redis: Redis,
  keys: ResultKeys,
  limit: number,
  cursor?: Cursor,
): Promise<{ items: ContourSummary[]; next_cursor: string | null }> {
  let start = 0;
  if (cursor) {
    const rank = await redis.zrevrank(keys.results, cursor.id);
    if (rank !== null) start = rank + 1;
    else {
      // The cursor's item is gone: continue from its score, which sorts at least as far.
      start = await redis.zcount(keys.results, `(${cursor.s}`, "+inf");
    }
  }
  const ids = await redis.zrevrange(keys.results, start, start + limit, "WITHSCORES");
  const pairs: [string, number][] = [];
  for (let i = 0; i < ids.length; i += 2) pairs.push([ids[i], Number(ids[i + 1])]);
  const page = pairs.slice(0, limit);
  const raw = page.length ? await redis.hmget(keys.summaries, ...page.map(([id]) => id)) : [];
  const items = raw.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as ContourSummary);
  const last = page.at(-1);
  const next_cursor = pairs.length > limit && last ? encodeCursor({ s: last[1], id: last[0] }) : null;
  return { items, next_cursor };
}
