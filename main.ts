import { type Config, ConfigError, loadConfig, redisOptions, redisTopology } from "./config.ts";
import { createApp } from "./app.ts";
import type { Lifecycle } from "./routes/deps.ts";
import { startDraining } from "./routes/lifecycle.ts";
import { withDeadline } from "./deadline.ts";
import { configureLog, log } from "./log.ts";
import { createConnectionStats, serveHttp } from "./http_server.ts";
import { connectionCap } from "./open_file_limit.ts";
import { closeRedis, connectRedis, createRedis } from "./queue/connection.ts";
import { QueueEvents } from "bullmq";
import { createContourQueue } from "./queue/contour_queue.ts";
import { watchRedisPersistence } from "./queue/redis_persistence.ts";
import { type PrivateRedis, redisAnswers, startPrivateRedis } from "./queue/redis_server.ts";
import { createObjectStore } from "./storage/object_store.ts";
import { createOnDemandRenderer } from "./storage/render_on_demand.ts";
import { type AnalysisPool, createAnalysisPool } from "./imaging/pool.ts";
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

/** Makes sure Redis answers: starts a private redis-server when none does and one is installed, else throws. */
export async function ensureRedis(config: Config): Promise<PrivateRedis | undefined> {
  // Sentinel and Cluster are someone's deployment, never started here; the client finds the nodes that answer.
  if (redisTopology(config).mode !== "standalone") return undefined;
  const { host, port } = redisOptions(config);
  if (await redisAnswers(host, port)) return undefined;
  const where = `${host}:${port}`;
  if (!config.REDIS_AUTOSTART || !LOOPBACK.has(host)) {
    throw new Error(`Redis is not reachable at ${where}; start one or point REDIS_URL / REDIS_HOST at one`);
  }
  try {
    log("warn", "no Redis answers; starting a private redis-server", {
      address: where,
      data_dir: config.REDIS_DATA_DIR,
    });
    return await startPrivateRedis(port, config.REDIS_DATA_DIR);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        `Redis is not reachable at ${where} and redis-server is not installed: install Redis ` +
          `(apt-get install redis-server, brew install redis) or set REDIS_URL to a running one`,
      );
    }
    throw err;
  }
}

/** Starts the whole service: Redis check, queue, HTTP server and (when EMBEDDED_WORKER) the worker pool. */
export async function startService(config: Config): Promise<Service> {
  const privateRedis = await ensureRedis(config);
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
  const { persistence } = await redisPersistence.check();
  if (config.REQUIRE_REDIS_PERSISTENCE && persistence === "none") {
    redisPersistence.close();
    await closeRedis(redis);
    await privateRedis?.stop();
    const { host, port } = redisOptions(config);
    throw new Error(
      `Redis at ${host}:${port} persists nothing (appendonly no, no save points) and REQUIRE_REDIS_PERSISTENCE=true: ` +
        `enable AOF (appendonly yes) or RDB snapshots`,
    );
  }
  const queue = createContourQueue(config, redis);
  const eventsRedis = createRedis(config, "worker");
  const events = new QueueEvents(config.QUEUE_NAME, { connection: eventsRedis, prefix: config.QUEUE_PREFIX });
  events.on("error", () => {}); // the connection logs its own errors and reconnects
  // One subscription serves every live stream, each adding its own listeners.
  events.setMaxListeners(0);
  await events.waitUntilReady();
  let workers: ContourWorker | undefined;
  const versions: Record<string, string> = {};
  if (config.EMBEDDED_WORKER) {
    workers = await startContourWorker(config, store);
    versions.opencv = workers.opencvVersion;
  }
  // Lazily drawn images are rendered on the embedded workers' pool, or on a one-member pool started on first use.
  let ownPool: Promise<AnalysisPool> | undefined;
  const renderer = createOnDemandRenderer(
    config,
    () =>
      workers ? Promise.resolve(workers.pool) : (ownPool ??= createAnalysisPool(1, config.WORKER_NICE, {
        timeoutMs: config.ANALYSIS_TIMEOUT_MS,
        memberMaxBytes: config.ANALYSIS_MEMBER_MAX_MIB * 2 ** 20,
      })),
    workers ? config.WORKER_CONCURRENCY : 1,
    store,
  );
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
      const until = Date.now() + DRAIN_TIMEOUT_MS;
      // Looks only after a turn of the event loop, so bytes that had arrived are read first: a request whose head is
      // still on its way through the HTTP server counts as in flight (server.pending) rather than being cut off.
      do {
        await new Promise((r) => setTimeout(r, 20));
      } while ((lifecycle.inFlight > 0 || server.pending > 0) && Date.now() < until);
      await server.shutdown();
      await workers?.close();
      (await ownPool?.catch(() => undefined))?.close();
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

/** Whether this process already runs under `deno task dev` (Deno's --watch). */
function watched(): boolean {
  return Deno.env.get("BIP_WATCHED") === "1";
}

/**
 * DEBUG/RELOAD: hands over to `deno task dev`, the same service under Deno's --watch (restarts on source changes), and
 * returns its exit code. A process cannot put itself under --watch, hence the child.
 */
async function runUnderWatch(): Promise<number> {
  log("info", "DEBUG/RELOAD: restarting under `deno task dev` (auto-reload on file changes)");
  const child = new Deno.Command("deno", {
    args: ["task", "dev"],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  })
    .spawn();
  let forwarded = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      forwarded = true;
      child.kill(signal);
    });
  }
  const { code } = await child.status;
  // The watched service ends itself with SIGKILL after its graceful close (see `stop`): that is a clean stop.
  return forwarded && code === 128 + 9 ? 0 : code;
}

if (import.meta.main) {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : String(err));
    Deno.exit(2);
  }
  configureLog({ pretty: config.DEBUG });
  if ((config.DEBUG || config.RELOAD) && !watched()) Deno.exit(await runUnderWatch());
  let service: Service;
  try {
    service = await startService(config);
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(1);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log("info", "shutting down", { signal });
    await service.close();
    // Under --watch this process is also the watcher, which outlives Deno.exit() waiting for file changes: after the
    // graceful close above, end the whole process so that `deno task start` with DEBUG=true stops on a signal too.
    if (watched()) Deno.kill(Deno.pid, "SIGKILL");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
