import { join, resolve } from "node:path";
import { type Config, redisOptions } from "../config.ts";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { log } from "../log.ts";
import { redisAnswers } from "../queue/redis_probe.ts";

/** A private redis-server this process started, and how to stop it. */
export interface PrivateRedis {
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts the private redis-server `deno task start` runs when no Redis answers at the configured loopback address
 * (REDIS_AUTOSTART): one command on a fresh machine. Says how to install Redis when redis-server is missing.
 */
export async function startConfiguredRedis(config: Config): Promise<PrivateRedis> {
  const { host, port } = redisOptions(config);
  const where = `${host}:${port}`;
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

/** Starts `redis-server` on 127.0.0.1:port with its files under `dataDir`, and waits until it answers. */
export async function startPrivateRedis(port: number, dir: string, deadlineMs = 10_000): Promise<PrivateRedis> {
  // redis-server changes into --dir before it opens --logfile, so a relative REDIS_DATA_DIR (".redis", the default)
  // would name the log file twice over (.redis/.redis/redis.log) and the server would refuse to start.
  const dataDir = resolve(dir);
  await Deno.mkdir(dataDir, { recursive: true });
  const child = new Deno.Command("redis-server", {
    args: [
      "--bind",
      "127.0.0.1",
      "--port",
      String(port),
      "--dir",
      dataDir,
      // Append-only so jobs survive a restart of this private server; BullMQ needs noeviction.
      "--appendonly",
      "yes",
      "--save",
      "",
      "--maxmemory-policy",
      "noeviction",
      "--logfile",
      join(dataDir, "redis.log"),
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (await redisAnswers("127.0.0.1", port, 500)) {
      log("info", "started a private redis-server", { port, data_dir: dataDir });
      child.stderr.cancel();
      return {
        port,
        async stop() {
          try {
            child.kill("SIGTERM");
          } catch {
            // already gone
          }
          await child.status;
        },
      };
    }
    const exited = await withDeadline(child.status, 100);
    if (exited !== TIMED_OUT) {
      const err = await new Response(child.stderr).text();
      throw new Error(
        `redis-server exited with code ${exited.code}: ${err.trim() || "see " + join(dataDir, "redis.log")}`,
      );
    }
  }
  child.kill("SIGKILL");
  await child.status;
  throw new Error(`redis-server did not answer on port ${port} within ${deadlineMs} ms`);
}
