import type { Config } from "../config.ts";

/**
 * Redis keys the service owns beside BullMQ's, under the same prefix so one prefix cleans up everything. In Cluster mode
 * the prefix holds a hash tag (config.ts), so these keys share the one slot of the queue's own keys: the transactions
 * that touch several of them (results index and summaries, a job's hash with its state sets) stay legal.
 */
export function serviceKeys(
  config: Pick<Config, "QUEUE_PREFIX" | "QUEUE_NAME">,
): { results: string; summaries: string; idempotency: string; batches: string } {
  const base = `${config.QUEUE_PREFIX}:${config.QUEUE_NAME}`;
  return {
    results: `${base}:results`,
    summaries: `${base}:summaries`,
    idempotency: `${base}:idempotency`,
    // Followed by `:<batch_id>`: one key per batch.
    batches: `${base}:batch`,
  };
}
