import { z } from "@hono/zod-openapi";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { type ContourQueue, getTaskStatus } from "./contour_queue.ts";
import { serviceKeys } from "./keys.ts";

/** What a batch is made of, written once when it is accepted: its tasks and the files it refused, in form order. */
export const BatchRecordSchema = z.object({
  batch_id: z.uuid(),
  created_at: z.iso.datetime(),
  tasks: z.array(z.object({ index: z.number().int(), task_id: z.uuid(), filename: z.string() })),
  rejected: z.array(z.object({
    index: z.number().int(),
    filename: z.string(),
    error: z.object({ code: z.string(), message: z.string() }),
  })),
});

/** A batch's membership. */
export type BatchRecord = z.infer<typeof BatchRecordSchema>;

/** The state of one of a batch's tasks: the API's four, or `removed` once its job is gone (deleted, expired). */
export type BatchTaskState = "queued" | "active" | "completed" | "failed" | "removed";

const batchKey = (config: Pick<Config, "QUEUE_PREFIX" | "QUEUE_NAME">, batchId: string) =>
  `${serviceKeys(config).batches}:${batchId}`;

/**
 * Stores a batch's membership as one value under the service's prefix (so in Cluster mode it shares the queue's hash
 * slot), kept as long as results (RESULT_TTL_HOURS): every API process reads the same record.
 */
export async function recordBatch(redis: Redis, config: Config, record: BatchRecord): Promise<void> {
  const ttl = Math.max(1, Math.round(config.RESULT_TTL_HOURS * 3600));
  await redis.set(batchKey(config, record.batch_id), JSON.stringify(BatchRecordSchema.parse(record)), "EX", ttl);
}

/** A batch's membership, or undefined when there is no such batch (never was, or expired). */
export async function readBatch(
  redis: Redis,
  config: Pick<Config, "QUEUE_PREFIX" | "QUEUE_NAME">,
  batchId: string,
): Promise<BatchRecord | undefined> {
  const text = await redis.get(batchKey(config, batchId));
  return text === null ? undefined : BatchRecordSchema.parse(JSON.parse(text));
}

/** The current status of each of a batch's tasks (undefined for a task whose job is gone), in the record's order. */
export function readBatchTasks(queue: ContourQueue, record: BatchRecord) {
  // Sent together: ioredis writes each command as it is issued, so the reads share round trips.
  return Promise.all(record.tasks.map((t) => getTaskStatus(queue, t.task_id)));
}

/** How many of a batch's tasks are in each state. */
export function countStates(states: BatchTaskState[]): Record<BatchTaskState, number> {
  const counts = { queued: 0, active: 0, completed: 0, failed: 0, removed: 0 };
  for (const s of states) counts[s]++;
  return counts;
}
