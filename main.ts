import { type Config, ConfigError, loadConfig } from "./config.ts";
import { createApp } from "./app.ts";
import type { Lifecycle } from "./routes/deps.ts";
import { startDraining, waitForRequests } from "./routes/lifecycle.ts";
import { withDeadline } from "./deadline.ts";
import { configureLog, log } from "./log.ts";
import { createConnectionStats, serveHttp } from "./http_server.ts";
import { connectionCap } from "./open_file_limit.ts";
import { closeRedis, connectRedis, createRedis } from "./queue/connection.ts";
import { createContourQueue, openQueueEvents } from "./queue/contour_queue.ts";
import { requireRedisPersistence, watchRedisPersistence } from "./queue/redis_persistence.ts";
import { ensureRedis, type OwnRedis } from "./queue/redis_probe.ts";
import { createObjectStore } from "./storage/object_store.ts";
import { createApiRenderer } from "./rendering/render_on_demand.ts";
import { type ContourWorker, startContourWorker } from "./worker.ts";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);
// How long a shutdown waits for requests in flight (an upload being received) before closing the server.
const DRAIN_TIMEOUT_MS = 30_000;

/** A running service: HTTP server, queue, optional embedded workers and private Redis. */
export interface Service {
  /** The port the server listens on (useful with PORT=0). */
  port: number;
  close(): Promise<void>;
}

/**
 * The private redis-server of `deno task start` on a machine with none (REDIS_AUTOSTART): a development convenience,
 * loaded only when no Redis answers.
 */
async function startDevRedis(config: Config): Promise<OwnRedis> {
  const { startConfiguredRedis } = await import("./dev/private_redis.ts");
  return await startConfiguredRedis(config);
}

/** Starts the whole service: Redis check, queue, HTTP server and (when EMBEDDED_WORKER) the worker pool. */
export async function startService(config: Config): Promise<Service> {
  const privateRedis = await ensureRedis(config, startDevRedis);
  const store = await createObjectStore(config);
  // A missing bucket or folder stops the start with its one line, before anything is accepted.
  await store.prepare().catch(async (err) => {
    await privateRedis?.stop();
    throw err;
  });
  // Uploads arrive on this process's own disk before they go to the store (and stay there with STORAGE=local).
  await Deno.mkdir(config.UPLOAD_DIR, { recursive: true });
  const redis = createRedis(config, "producer");
  await connectRedis(redis);
  const redisPersistence = watchRedisPersistence(redis);
  await requireRedisPersistence(config, redisPersistence).catch(async (err) => {
    redisPersistence.close();
    await closeRedis(redis);
    await privateRedis?.stop();
    throw err;
  });
  const queue = createContourQueue(config, redis);
  const eventsRedis = createRedis(config, "worker");
  const events = await openQueueEvents(config, eventsRedis);
  let workers: ContourWorker | undefined;
  const versions: Record<string, string> = {};
  if (config.EMBEDDED_WORKER) {
    workers = await startContourWorker(config, store);
    versions.opencv = workers.opencvVersion;
  }
  const renderer = createApiRenderer(config, store, workers?.pool);
  const lifecycle: Lifecycle = { draining: false, inFlight: 0 };
  const connections = createConnectionStats();
  const app = createApp({
    config,
    redis,
    queue,
    events,
    versions,
    lifecycle,
    renderer,
    connections,
    redisPersistence,
    store,
  });
  const server = serveHttp({
    hostname: config.HOST,
    port: config.PORT,
    maxConnections: await connectionCap(config.MAX_CONNECTIONS),
    headerTimeoutMs: config.HEADER_TIMEOUT_MS,
    idleTimeoutMs: config.IDLE_TIMEOUT_MS,
    guard: config.CONNECTION_GUARD,
    stats: connections,
  }, app.fetch);
  const port = server.port;
  log("info", "service listening", {
    url: `http://${config.HOST}:${port}`,
    docs: `http://${LOOPBACK.has(config.HOST) || config.HOST === "0.0.0.0" ? "localhost" : config.HOST}:${port}/docs`,
    embedded_worker: config.EMBEDDED_WORKER,
    concurrency: config.WORKER_CONCURRENCY,
  });
  return {
    port,
    async close() {
      // Reverse order of start: stop taking requests, let in-flight ones finish, then workers, queue, Redis. Event
      // streams end at once: server.shutdown() would otherwise wait for as long as their clients stay.
      startDraining(lifecycle);
      await waitForRequests(lifecycle, () => server.pending, DRAIN_TIMEOUT_MS);
      await server.shutdown();
      await workers?.close();
      await renderer.close();
      // QueueEvents.close() waits on its blocking connection, which may be gone with Redis.
      await withDeadline(events.close(), 2000).catch(() => {});
      await closeRedis(eventsRedis);
      await queue.close().catch(() => {});
      redisPersistence.close();
      await closeRedis(redis);
      await privateRedis?.stop();
    },
  };
}

if (import.meta.main) {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : String(err));
    Deno.exit(2);
  }
  configureLog({ pretty: config.DEBUG, tracing: config.OTEL_DENO, level: config.LOG_LEVEL });
  // Development only: DEBUG/RELOAD re-run the service under `deno task dev` (Deno's --watch), which marks its
  // process with BIP_WATCHED; the module that does so is loaded only then.
  const dev = config.DEBUG || config.RELOAD || Deno.env.get("BIP_WATCHED") ? await import("./dev/watch.ts") : undefined;
  if (dev && !dev.watched()) Deno.exit(await dev.runUnderWatch());
  // Listened for before the service starts: its embedded worker takes jobs before the rest is up, and a signal then
  // must still hand them back or let them finish, not end the process under them.
  let starting: Promise<Service> | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log("info", "shutting down", { signal });
    const service = await starting?.catch(() => undefined);
    await service?.close();
    dev?.endWatched();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  try {
    starting = startService(config);
    await starting;
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
