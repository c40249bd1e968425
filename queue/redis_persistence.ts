import type { Redis } from "ioredis";
import { type Config, redisOptions } from "../config.ts";
import { log } from "../log.ts";

/** What Redis keeps across a restart, and whether it may evict keys; "unknown" when Redis would not say. */
export interface RedisPersistence {
  /** "none": a restart loses every job; "unknown": neither CONFIG nor INFO told (a managed Redis may hide both). */
  persistence: "aof" | "rdb" | "aof+rdb" | "none" | "unknown";
  maxmemory_policy: string;
  /** What an operator should fix; empty when nothing. */
  warnings: string[];
  checked_at: string;
}

/**
 * Reads the persistence and eviction settings: CONFIG GET where allowed, else INFO (which shows AOF and the eviction
 * policy, but not whether RDB snapshots are configured).
 */
export async function checkRedisPersistence(redis: Redis): Promise<RedisPersistence> {
  let aof: boolean | undefined;
  let rdb: boolean | undefined;
  let policy: string | undefined;
  try {
    const [appendonly, save, maxmemory] = await Promise.all(
      ["appendonly", "save", "maxmemory-policy"].map((k) => redis.config("GET", k) as Promise<string[]>),
    );
    aof = appendonly[1] === "yes";
    rdb = (save[1] ?? "").trim() !== "";
    policy = maxmemory[1];
  } catch {
    // CONFIG is often renamed or disabled on managed Redis.
    try {
      const info = await redis.info();
      const field = (name: string) => new RegExp(`^${name}:(.*)$`, "m").exec(info)?.[1]?.trim();
      const enabled = field("aof_enabled");
      if (enabled !== undefined) aof = enabled === "1";
      policy = field("maxmemory_policy");
    } catch {
      // Neither answered: reported as unknown.
    }
  }
  const persistence = aof && rdb
    ? "aof+rdb"
    : aof
    ? "aof"
    : rdb
    ? "rdb"
    : aof === false && rdb === false
    ? "none"
    : "unknown";
  const warnings: string[] = [];
  if (persistence === "none") {
    warnings.push("Redis persists nothing (appendonly no, no save points): a restart loses every queued task");
  } else if (persistence === "unknown") {
    warnings.push("Redis persistence could not be read (CONFIG and INFO refused): a restart may lose queued tasks");
  }
  if (policy === undefined) warnings.push("Redis maxmemory-policy could not be read; BullMQ needs noeviction");
  else if (policy !== "noeviction") {
    warnings.push(`Redis maxmemory-policy is ${policy}: under memory pressure it evicts job keys; set noeviction`);
  }
  return { persistence, maxmemory_policy: policy ?? "unknown", warnings, checked_at: new Date().toISOString() };
}

/** The latest persistence report of a connection, renewed on every (re)connect. */
export interface PersistenceWatch {
  /** Undefined until the first check has answered. */
  readonly current: RedisPersistence | undefined;
  /** Checks now (also the first check); resolves with the report. */
  check(): Promise<RedisPersistence>;
  close(): void;
}

/**
 * Watches a connection's Redis: checked now and after every reconnect (ioredis "ready"), since a Redis that came back
 * may be another server or the same with other settings. Each report with warnings is logged once per change.
 */
export function watchRedisPersistence(redis: Redis): PersistenceWatch {
  let current: RedisPersistence | undefined;
  let logged = "";
  const check = async () => {
    const report = await checkRedisPersistence(redis);
    current = report;
    const key = report.warnings.join("|");
    if (key !== logged) {
      logged = key;
      if (report.warnings.length) {
        log("warn", "Redis settings put queued tasks at risk", {
          persistence: report.persistence,
          maxmemory_policy: report.maxmemory_policy,
          warnings: report.warnings,
        });
      }
    }
    return report;
  };
  const onReady = () => void check().catch(() => {});
  redis.on("ready", onReady);
  return {
    get current() {
      return current;
    },
    check,
    close: () => void redis.off("ready", onReady),
  };
}

/** REQUIRE_REDIS_PERSISTENCE at start-up: throws, naming the fix, when Redis keeps nothing across a restart. */
export async function requireRedisPersistence(config: Config, watch: PersistenceWatch): Promise<void> {
  const { persistence } = await watch.check();
  if (!config.REQUIRE_REDIS_PERSISTENCE || persistence !== "none") return;
  const { host, port } = redisOptions(config);
  throw new Error(
    `Redis at ${host}:${port} persists nothing (appendonly no, no save points) and REQUIRE_REDIS_PERSISTENCE=true: ` +
      `enable AOF (appendonly yes) or RDB snapshots`,
  );
}
