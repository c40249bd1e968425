import type { Redis } from "ioredis";
import type { ContourSummary } from "./job.ts";

/** Keys of the index of finished results. */
export interface ResultKeys {
  results: string;
  summaries: string;
}

/** Records a completed job's summary, newest-first by finish time; idempotent for a retried job. */
export async function recordResult(redis: Redis, keys: ResultKeys, summary: ContourSummary): Promise<void> {
  await redis
    .multi()
    .hset(keys.summaries, summary.task_id, JSON.stringify(summary))
    .zadd(keys.results, Date.parse(summary.finished_at), summary.task_id)
    .exec();
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
