import { type Config, redisOptions, redisTopology } from "../config.ts";
import { withDeadline } from "../deadline.ts";

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

/** A Redis the process started for itself, and how to stop it. */
export interface OwnRedis {
  stop(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

/**
 * Makes sure the configured Redis answers, else throws saying how to get one. With REDIS_AUTOSTART and a loopback
 * address, `startPrivate` (the development convenience in dev/private_redis.ts, which the caller passes in so that
 * this module does not carry it) starts one instead, and the Redis it returns is the caller's to stop.
 */
export async function ensureRedis(
  config: Config,
  startPrivate?: (config: Config) => Promise<OwnRedis>,
): Promise<OwnRedis | undefined> {
  // Sentinel and Cluster are someone's deployment, never started here; the client finds the nodes that answer.
  if (redisTopology(config).mode !== "standalone") return undefined;
  const { host, port } = redisOptions(config);
  if (await redisAnswers(host, port)) return undefined;
  if (!config.REDIS_AUTOSTART || !LOOPBACK.has(host) || !startPrivate) {
    throw new Error(`Redis is not reachable at ${host}:${port}; start one or point REDIS_URL / REDIS_HOST at one`);
  }
  return await startPrivate(config);
}
