import { Cluster, Redis, type RedisOptions } from "ioredis";
import { type Config, redisOptions, redisTopology } from "../config.ts";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { log } from "../log.ts";

/** Connection roles: BullMQ workers need blocking commands that wait forever; producers must fail fast. */
export type ConnectionRole = "producer" | "worker";

// Reconnect with a capped backoff so both sides recover by themselves after a Redis restart or a failover.
const retryStrategy = (times: number) => Math.min(200 * times, 2000);

/**
 * Opens an ioredis connection for a role (lazily: nothing connects until first use): to one server, to the primary
 * Sentinel names (found again after a failover), or to a Cluster. A Cluster client is typed as Redis: it takes the same
 * commands, and the service sends only commands whose keys share one hash slot (config.ts's QUEUE_PREFIX rule), so
 * every module works with one client type.
 */
export function createRedis(config: Config, role: ConnectionRole, extra: RedisOptions = {}): Redis {
  const { host, port, ...credentials } = redisOptions(config);
  const common: RedisOptions = {
    ...credentials,
    lazyConnect: true,
    connectTimeout: 2000,
    retryStrategy,
    ...(role === "worker"
      ? { maxRetriesPerRequest: null }
      // An upload during an outage must get a 503 now, not hang until Redis returns.
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false }),
    ...extra,
  };
  const topology = redisTopology(config);
  let redis: Redis;
  if (topology.mode === "cluster") {
    const { lazyConnect, enableOfflineQueue, db: _db, retryStrategy: _r, ...redisOptions } = common;
    redis = new Cluster(topology.nodes, {
      lazyConnect,
      enableOfflineQueue,
      clusterRetryStrategy: retryStrategy,
      // A node that answers MOVED/ASK during a resharding or failover is followed, a few times, not forever.
      maxRedirections: 16,
      redisOptions,
    }) as unknown as Redis;
  } else if (topology.mode === "sentinel") {
    redis = new Redis({
      ...common,
      sentinels: topology.sentinels,
      name: topology.name,
      sentinelPassword: topology.sentinelPassword,
      sentinelRetryStrategy: retryStrategy,
      // rediss://: TLS to the sentinels and to the primary they name (ioredis applies `tls` there only with this flag).
      ...(credentials.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      // A primary demoted by a failover answers writes with READONLY: reconnect, which asks the sentinels again.
      reconnectOnError: (err) => err.message.startsWith("READONLY") ? 2 : false,
    });
  } else {
    redis = new Redis({ ...common, host, port });
  }
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
