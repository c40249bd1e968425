import { Redis, type RedisOptions } from "ioredis";
import { type Config, redisOptions } from "../config.ts";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { log } from "../log.ts";

/** Connection roles: BullMQ workers need blocking commands that wait forever; producers must fail fast. */
export type ConnectionRole = "producer" | "worker";

/** Opens an ioredis connection for a role (lazily: nothing connects until first use). */
export function createRedis(config: Config, role: ConnectionRole, extra: RedisOptions = {}): Redis {
  const redis = new Redis({
    ...redisOptions(config),
    lazyConnect: true,
    connectTimeout: 2000,
    // Reconnect with a capped backoff so both sides recover by themselves after a Redis restart.
    retryStrategy: (times) => Math.min(200 * times, 2000),
    ...(role === "worker"
      ? { maxRetriesPerRequest: null }
      // An upload during an outage must get a 503 now, not hang until Redis returns.
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false }),
    ...extra,
  });
  // ioredis reconnects by itself; without a listener each failed attempt would print an "Unhandled error event".
  let lastLogged = 0;
  redis.on("error", (err: Error) => {
    if (Date.now() - lastLogged < 10_000) return;
    lastLogged = Date.now();
    log("warn", "Redis connection error", { role, error: err.message });
  });
  return redis;
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function connectRedis(redis: Redis, timeoutMs = 5000): Promise<void> {
  if (redis.status === "ready") return;
  const ready = redis.status === "wait"
    ? redis.connect()
    : new Promise<void>((resolve) => redis.once("ready", () => resolve()));
  if (await withDeadline(ready, timeoutMs) === TIMED_OUT) {
    throw new Error(`Redis did not answer within ${timeoutMs} ms`);
  }
}

/** Closes a connection, falling back to a hard disconnect when QUIT cannot get through. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === "end") return;
  if (redis.status !== "ready") {
    redis.disconnect();
    return;
  }
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}
