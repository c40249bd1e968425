import { join, resolve } from "node:path";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { log } from "../log.ts";

/** A private redis-server this process started, and how to stop it. */
export interface PrivateRedis {
  port: number;
  stop(): Promise<void>;
}

/** True when something accepts TCP connections at host:port within `timeoutMs`; throws when --allow-net forbids it. */
export async function redisAnswers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  const probe = async () => {
    conn = await Deno.connect({ hostname: host, port });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    // "+PONG" or "-NOAUTH ...": either way a Redis is there.
    return n !== null && (buf[0] === 0x2b || buf[0] === 0x2d);
  };
  let denied: Error | undefined;
  const answer = await withDeadline(
    probe().catch((err) => {
      // Not a silent port but Deno's --allow-net: saying "Redis is not reachable" would send the operator astray.
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) denied = err;
      return false;
    }),
    timeoutMs,
  );
  // Closed on every path, including a server that accepted and never answered.
  try {
    (conn as Deno.TcpConn | undefined)?.close();
  } catch {
    // already closed
  }
  if (denied) {
    throw new Error(
      `Deno may not connect to Redis at ${host}:${port}: start it with deno task start or worker (launcher.ts ` +
        `grants the configured Redis host), or add ${host} to --allow-net (${denied.message})`,
    );
  }
  return answer === true;
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
