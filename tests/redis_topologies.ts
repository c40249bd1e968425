import { Redis } from "ioredis";
import { join } from "node:path";
import { sparePort, testTempDir, waitUntil } from "./harness.ts";

/** A redis-server process a test started, and how to stop it. */
export interface RedisProcess {
  port: number;
  child: Deno.ChildProcess;
  /** SIGKILL by default: a crashed server, as a failover test wants it. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** A set of servers a test started: a Cluster, or a primary, replica and sentinel; `close` ends them all. */
export interface RedisTopology {
  dir: string;
  servers: RedisProcess[];
  close(): Promise<void>;
}

// Nothing is persisted: each topology lives for one test.
const EPHEMERAL = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"];

function spawnServer(port: number, dir: string, args: string[]): RedisProcess {
  const child = new Deno.Command("redis-server", {
    args: [...args, "--port", String(port), "--dir", dir, "--logfile", join(dir, `redis-${port}.log`)],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    port,
    child,
    async stop(signal: Deno.Signal = "SIGKILL") {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
      await child.status;
    },
  };
}

/** Runs `command` on a fresh connection to 127.0.0.1:port (null when the server does not answer). */
export async function redisCommand(port: number, ...command: string[]): Promise<unknown> {
  const redis = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: null });
  redis.on("error", () => {});
  try {
    await redis.connect();
    return await redis.call(command[0], ...command.slice(1));
  } catch {
    return null;
  } finally {
    if (redis.status === "ready") await redis.quit().catch(() => redis.disconnect());
    else redis.disconnect();
  }
}

/** harness.ts's waitUntil with the 20 s these servers may take to start, sync or fail over. */
export function pollUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  return waitUntil(what, timeoutMs, check, 100);
}

async function closeAll(dir: string, servers: RedisProcess[]) {
  for (const s of servers) await s.stop();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/**
 * Three masters on loopback ports, joined by `redis-cli --cluster create`, each slot covered: resolves once every node
 * reports `cluster_state:ok`.
 */
export async function startRedisCluster(): Promise<RedisTopology> {
  const dir = testTempDir();
  const servers: RedisProcess[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const port = sparePort();
      // The bus port is given explicitly: the default, port + 10000, may be out of range or taken.
      servers.push(spawnServer(port, dir, [
        ...EPHEMERAL,
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dir, `nodes-${port}.conf`),
        "--cluster-port",
        String(sparePort()),
        "--cluster-node-timeout",
        "2000",
      ]));
    }
    for (const s of servers) {
      await pollUntil(`redis ${s.port} answers`, async () => await redisCommand(s.port, "PING") === "PONG");
    }
    const out = await new Deno.Command("redis-cli", {
      args: ["--cluster", "create", ...servers.map((s) => `127.0.0.1:${s.port}`), "--cluster-yes"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`redis-cli --cluster create: ${new TextDecoder().decode(out.stdout)}`);
    for (const s of servers) {
      await pollUntil(`cluster node ${s.port} ok`, async () => {
        const info = await redisCommand(s.port, "CLUSTER", "INFO");
        return typeof info === "string" && info.includes("cluster_state:ok");
      });
    }
  } catch (err) {
    await closeAll(dir, servers);
    throw err;
  }
  return { dir, servers, close: () => closeAll(dir, servers) };
}

/** One primary, one replica of it and one sentinel watching it under `name` (quorum 1, failover after 1 s down). */
export async function startRedisSentinel(name = "bip-primary"): Promise<RedisTopology & { sentinelPort: number }> {
  const dir = testTempDir();
  const servers: RedisProcess[] = [];
  try {
    const primary = spawnServer(sparePort(), dir, EPHEMERAL);
    servers.push(primary);
    await pollUntil("primary answers", async () => await redisCommand(primary.port, "PING") === "PONG");
    const replica = spawnServer(sparePort(), dir, [...EPHEMERAL, "--replicaof", "127.0.0.1", String(primary.port)]);
    servers.push(replica);
    await pollUntil("replica in sync", async () => {
      const info = await redisCommand(replica.port, "INFO", "replication");
      return typeof info === "string" && info.includes("master_link_status:up");
    });
    const sentinelPort = sparePort();
    // A sentinel rewrites its configuration file, so it has one of its own.
    const conf = join(dir, "sentinel.conf");
    await Deno.writeTextFile(
      conf,
      [
        `sentinel monitor ${name} 127.0.0.1 ${primary.port} 1`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 10000`,
        `sentinel parallel-syncs ${name} 1`,
        "",
      ].join("\n"),
    );
    const sentinel = new Deno.Command("redis-server", {
      args: [conf, "--sentinel", "--port", String(sentinelPort), "--bind", "127.0.0.1", "--dir", dir],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    servers.push({
      port: sentinelPort,
      child: sentinel,
      async stop(signal: Deno.Signal = "SIGKILL") {
        try {
          sentinel.kill(signal);
        } catch {
          // already gone
        }
        await sentinel.status;
      },
    });
    await pollUntil("sentinel knows the replica", async () => {
      const replicas = await redisCommand(sentinelPort, "SENTINEL", "REPLICAS", name);
      return Array.isArray(replicas) && replicas.length === 1;
    });
    return { dir, servers, sentinelPort, close: () => closeAll(dir, servers) };
  } catch (err) {
    await closeAll(dir, servers);
    throw err;
  }
}
