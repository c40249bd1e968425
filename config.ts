import { z } from "zod";
import { parseTrustProxy } from "./routes/client_address.ts";
import { booleanWord, decimal, number } from "./text_values.ts";

const bool = booleanWord();

const port = decimal(number().int().min(0).max(65535));

/** One Redis address. */
export interface RedisNode {
  host: string;
  port: number;
}

/** `host:port,host:port` (IPv6 hosts in brackets) as a list of nodes. */
const hostPortList = z.string().transform((text, ctx): RedisNode[] => {
  const nodes: RedisNode[] = [];
  for (const item of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(item);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(item)} is not host:port` });
      return z.NEVER;
    }
    nodes.push({ host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) });
  }
  if (nodes.length === 0) {
    ctx.addIssue({ code: "custom", message: "needs at least one host:port" });
    return z.NEVER;
  }
  return nodes;
});

/**
 * The Redis Cluster hash tag of a key prefix: the text between its first `{` and the next `}`, when that is not empty.
 * Redis hashes only the tag of a key that has one, so every key starting with such a prefix lands in one slot.
 */
export function hashTag(prefix: string): string | undefined {
  const open = prefix.indexOf("{");
  if (open < 0) return undefined;
  const close = prefix.indexOf("}", open + 1);
  return close > open + 1 ? prefix.slice(open + 1, close) : undefined;
}

/** The variables of the configuration, each checked on its own. */
const ConfigFields = z
  .object({
    APP_NAME: z.string().min(1).default("Background Image Processor"),
    VERSION: z.string().min(1).default("1.0.0"),
    DEBUG: bool.default(false),
    HOST: z.string().min(1).default("0.0.0.0"),
    PORT: port.default(8000),
    RELOAD: bool.default(false),
    // Connection limits of the HTTP server (http_server.ts). A request head must be complete within HEADER_TIMEOUT_MS of
    // the connection opening, or of a kept-alive connection's first byte of its next request: silent sockets and
    // slow-header (slowloris) clients give their descriptor back.
    HEADER_TIMEOUT_MS: decimal(number().int().min(100).max(600_000)).default(10_000),
    // A keep-alive connection without a request is closed after this long. Keep it above a fronting proxy's idle timeout
    // for its upstream connections (AWS ALB: 60 s), or the proxy may send a request on a connection being closed (502).
    IDLE_TIMEOUT_MS: decimal(number().int().min(100).max(3_600_000)).default(75_000),
    // An upload whose body sends nothing for this long is answered 408 request_timeout, and its partial file removed.
    BODY_IDLE_TIMEOUT_MS: decimal(number().int().min(100).max(3_600_000)).default(30_000),
    // Open connections at most; more are answered with a bare 503 and closed at once. Unset: derived from the open-file
    // limit in use (open_file_limit.ts: (soft limit - 128) / 4, at most 4096), 224 when the limit cannot be read.
    MAX_CONNECTIONS: decimal(number().int().min(1).max(1_000_000)).optional(),
    // The connection guard enforces HEADER_TIMEOUT_MS, IDLE_TIMEOUT_MS and MAX_CONNECTIONS by relaying every connection
    // over loopback (about 2 ms of CPU per image in the bench). Behind a proxy that enforces them itself (nginx, Envoy, a
    // cloud load balancer), false serves with Deno.serve alone; BODY_IDLE_TIMEOUT_MS and surviving accept errors stay.
    CONNECTION_GUARD: bool.default(true),
    // Where uploads and results are kept: "local" = UPLOAD_DIR and RESULT_DIR (shared by API and workers); "s3" = one
    // bucket (AWS S3, MinIO, R2, Ceph RGW), and the folders only hold uploads while they arrive.
    STORAGE: z.enum(["local", "s3"]).default("local"),
    // Default: AWS's regional endpoint. MinIO, R2, Ceph RGW: their URL (http:// allowed, for a local MinIO).
    S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
    S3_REGION: z.string().min(1).default("us-east-1"),
    S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "an S3 bucket name (3-63 of a-z 0-9 . -)")
      .optional(),
    // Prepended to every key ("bip/" → bip/uploads/<id>.png), so deployments can share a bucket.
    S3_PREFIX: z.string().regex(/^(?:[A-Za-z0-9!_.*'()-]+\/)*$/, "path segments each ending in /").default(""),
    S3_ACCESS_KEY_ID: z.string().min(1).optional(),
    S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    S3_SESSION_TOKEN: z.string().min(1).optional(),
    // Buckets as a path (endpoint/bucket/key) rather than a host (bucket.endpoint/key): MinIO, Ceph RGW and most
    // self-hosted stores need it; AWS and R2 take either.
    S3_FORCE_PATH_STYLE: bool.default(false),
    // Result files are answered with a redirect to a presigned GET URL (valid S3_PRESIGNED_EXPIRY_SECONDS) rather than
    // streamed through the API: the bucket serves the bytes.
    S3_PRESIGNED_RESULTS: bool.default(false),
    S3_PRESIGNED_EXPIRY_SECONDS: decimal(number().int().min(1).max(604_800)).default(300),
    // Uploads above this size go to the bucket in parts of this size (S3's smallest part is 5 MiB), one part in memory
    // at a time; smaller ones in one PUT.
    S3_MULTIPART_THRESHOLD_MB: decimal(number().int().min(5).max(5_000)).default(8),
    UPLOAD_DIR: z.string().min(1).default("uploads"),
    RESULT_DIR: z.string().min(1).default("result_images"),
    REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
    REDIS_HOST: z.string().min(1).default("127.0.0.1"),
    REDIS_PORT: port.default(6379),
    REDIS_DB: decimal(number().int().min(0).max(15)).default(0),
    REDIS_PASSWORD: z.string().optional(),
    // Where an auto-started private redis-server keeps its files (only used when none answers).
    REDIS_DATA_DIR: z.string().min(1).default(".redis"),
    REDIS_AUTOSTART: bool.default(true),
    // Redis behind Sentinel: the sentinels (host:port, comma-separated) and the name of the primary they watch. The
    // client asks them for the primary and asks again after a failover.
    REDIS_SENTINELS: hostPortList.optional(),
    REDIS_SENTINEL_NAME: z.string().min(1).default("mymaster"),
    // Only when the sentinels themselves want a password (the data nodes take REDIS_URL's or REDIS_PASSWORD).
    REDIS_SENTINEL_PASSWORD: z.string().optional(),
    // Redis Cluster: some of its nodes (host:port, comma-separated); the client learns the rest from them.
    REDIS_CLUSTER_NODES: hostPortList.optional(),
    MAX_FILE_SIZE: decimal(number().int().positive()).default(10 * 1024 * 1024),
    // Decompression-bomb guard: a tiny file can declare a huge image; checked from the header before decoding.
    MAX_PIXELS: decimal(number().int().positive()).default(50_000_000),
    // Most contours one result document keeps (the largest by area; the result says `truncated` and how many were
    // found). A 3000×3000 noise image has 66,388 contours, a 33.6 MB document (about 500 bytes each) that a member
    // builds, the worker writes and a lazy drawing or an export parses again; 32 of them took the service to 2.4 GiB.
    // 20,000 keeps a document near 10 MB and is far above what a photo or a scan yields (hundreds to a few thousand).
    MAX_CONTOURS_STORED: decimal(number().int().min(1).max(1_000_000)).default(20_000),
    // One OpenCV.js Web Worker per slot: by default one per core.
    WORKER_CONCURRENCY: decimal(number().int().min(1).max(64)).default(navigator.hardwareConcurrency || 1),
    // Nice value of the pool's threads (0 = as the rest of the process): analysis takes the CPU that the API, the
    // thread renewing job locks and Redis leave, so uploads are answered promptly while every core is busy.
    WORKER_NICE: decimal(number().int().min(0).max(19)).default(19),
    EMBEDDED_WORKER: bool.default(true),
    // In Cluster mode every key must sit in one hash slot: a plain prefix is wrapped in {…}, a Redis hash tag (see the
    // object's transform below).
    QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_:.{}-]+$/, "letters, digits, _ : . - { } only").default("bip"),
    QUEUE_NAME: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, _ . - only").default("contours"),
    // How long a worker may finish its active jobs after SIGTERM/SIGINT before they are forced to stop.
    WORKER_GRACE_MS: decimal(number().int().min(0).max(3_600_000)).default(10_000),
    // A job whose worker stops renewing its lock (a killed process) is taken up again after this long.
    LOCK_DURATION_MS: decimal(number().int().min(1000).max(3_600_000)).default(30_000),
    // Deadline of one analysis (or drawing) on a pool member; past it the member is ended and replaced and the job
    // fails with code "timeout". A 50-megapixel JPEG (MAX_PIXELS) takes 3-9 s on one member of a 2-core machine.
    ANALYSIS_TIMEOUT_MS: decimal(number().int().min(100).max(3_600_000)).default(30_000),
    // Memory a pool member may keep between jobs (its JS heap and WASM memories, which never shrink): a member holding
    // more is replaced by a fresh one (about 0.5 s of one core). A member holds ~210 MiB idle and ~260 MiB after a
    // 12-megapixel photo; a 3000×3000 noise image leaves ~400 MiB, which would otherwise stay taken for good.
    ANALYSIS_MEMBER_MAX_MIB: decimal(number().int().min(64).max(65_536)).default(384),
    // Retention: finished jobs, their results and their index entries are removed after RESULT_TTL_HOURS; uploads of
    // finished (failed) jobs after UPLOAD_TTL_HOURS; a sweep every RETENTION_SWEEP_MINUTES also removes orphan files.
    RESULT_TTL_HOURS: decimal(number().positive()).default(168),
    UPLOAD_TTL_HOURS: decimal(number().positive()).default(24),
    RETENTION_SWEEP_MINUTES: decimal(number().positive()).default(10),
    // Keep each upload after its job succeeded (by default it is deleted once the annotated image exists).
    KEEP_UPLOADS: bool.default(false),
    // When the annotated image is drawn, unless an upload's `render` field says otherwise: "eager" = by the worker,
    // before the task completes (what a client that fetches the image needs: drawn once, from the pixels the worker
    // already decoded); "lazy" = on its first request (the upload is kept until then; for clients that want the data).
    RENDER: z.enum(["lazy", "eager"]).default("eager"),
    JOB_ATTEMPTS: decimal(number().int().min(1).max(20)).default(3),
    // A job that finds the disk full waits this long and tries again, without using an attempt: time for an operator to
    // make room, where the usual backoff would spend every attempt within seconds and fail the task.
    DISK_FULL_RETRY_SECONDS: decimal(number().int().min(1).max(86_400)).default(300),
    // /api/v1/health/full reports the component "disk" failing when UPLOAD_DIR or RESULT_DIR has less free space.
    DISK_MIN_FREE_MB: decimal(number().min(0)).default(100),
    // Refuse to start on a Redis that persists nothing (no AOF, no RDB snapshots): its restart loses every queued task.
    REQUIRE_REDIS_PERSISTENCE: bool.default(false),
    // Comma-separated; when set, /api/v1/images/*, /api/v1/health/full and /admin/* need one (X-API-Key or Bearer).
    API_KEYS: z
      .string()
      .default("")
      .transform((s) => s.split(",").map((k) => k.trim()).filter(Boolean)),
    // Uploads per client (API key, else IP) per window, shared by every API process through Redis; 0 = no limit.
    // The default lets one client send a folder of several hundred images in a minute; floods still meet the limit.
    RATE_LIMIT: decimal(number().int().min(0)).default(1000),
    RATE_LIMIT_WINDOW: decimal(number().int().min(1).max(86_400)).default(60),
    // Proxies whose X-Forwarded-For/Forwarded name the client (rate limit, request logs): off, a count, or CIDRs.
    TRUST_PROXY: z.string().default("off").transform((text, ctx) => {
      try {
        return parseTrustProxy(text);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    }),
    // HMAC-SHA256 key for callback signatures; callbacks are refused (400) while it is unset.
    CALLBACK_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
    // Hosts callbacks may reach even when they resolve to private or loopback addresses (default: public hosts only).
    CALLBACK_ALLOWED_HOSTS: z
      .string()
      .default("")
      .transform((s) => s.split(",").map((h) => h.trim().toLowerCase()).filter(Boolean)),
    CALLBACK_ATTEMPTS: decimal(number().int().min(1).max(20)).default(5),
    CORS_ORIGINS: z
      .string()
      .default("*")
      .transform((s) => s.split(",").map((o) => o.trim()).filter(Boolean)),
  });

/**
 * The one schema for the service's configuration; every variable is read here and nowhere else. Beyond each variable's
 * own checks: one Redis topology at a time, and in Cluster mode a queue prefix whose keys share one hash slot (BullMQ's
 * Lua scripts touch several keys of a queue at once, which Cluster allows only within a slot; the service's own keys
 * take the same prefix). A plain prefix is wrapped in braces (`bip` → `{bip}`), as BullMQ's documentation advises.
 */
export const ConfigSchema = ConfigFields.transform((c, ctx) => {
  if (c.REDIS_SENTINELS && c.REDIS_CLUSTER_NODES) {
    ctx.addIssue({
      code: "custom",
      path: ["REDIS_CLUSTER_NODES"],
      message: "set either REDIS_SENTINELS or REDIS_CLUSTER_NODES, not both",
    });
    return z.NEVER;
  }
  if (c.STORAGE === "s3") {
    for (const name of ["S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"] as const) {
      if (!c[name]) {
        ctx.addIssue({ code: "custom", path: [name], message: "required with STORAGE=s3" });
        return z.NEVER;
      }
    }
  }
  if (!c.REDIS_CLUSTER_NODES) return c;
  if (c.REDIS_DB !== 0 || (c.REDIS_URL && !/^\/?0?$/.test(new URL(c.REDIS_URL).pathname))) {
    ctx.addIssue({ code: "custom", path: ["REDIS_DB"], message: "Redis Cluster has only database 0" });
    return z.NEVER;
  }
  if (!/[{}]/.test(c.QUEUE_PREFIX)) return { ...c, QUEUE_PREFIX: `{${c.QUEUE_PREFIX}}` };
  if (hashTag(c.QUEUE_PREFIX) === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["QUEUE_PREFIX"],
      message: "in Redis Cluster mode the prefix must hold a non-empty hash tag such as {bip} (or have no braces, " +
        "and it is wrapped in them), so that every key of the service sits in one hash slot",
    });
    return z.NEVER;
  }
  return c;
});

/** Parsed, validated configuration. */
export type Config = z.infer<typeof ConfigSchema>;

/** Names of every variable the service reads (for `--allow-env` and the docs). */
export const CONFIG_VARIABLES = Object.keys(ConfigFields.shape) as (keyof typeof ConfigFields.shape)[];

/** Raised when a variable has a bad value; the message names the variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parses `KEY=value` lines of a .env file (comments, blank lines, optional quotes, `export ` prefix). */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2];
    const quoted = /^(['"])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2];
    else value = value.replace(/\s+#.*$/, "");
    out[m[1]] = value;
  }
  return out;
}

/** Validates a variable map (environment over .env) into a Config, or throws ConfigError naming each bad variable. */
export function parseConfig(vars: Record<string, string | undefined>): Config {
  const input: Record<string, string> = {};
  for (const key of CONFIG_VARIABLES) {
    const v = vars[key];
    // An empty value (FOO= in a .env file, or a compose file's ${FOO} when FOO is unset) counts as not set.
    if (v !== undefined && v !== "") input[key] = v;
  }
  const result = ConfigSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) =>
      `${i.path.join(".")}=${JSON.stringify(input[String(i.path[0])])}: ${i.message}`
    );
    throw new ConfigError(`invalid configuration: ${lines.join("; ")}`);
  }
  return result.data;
}

/** Reads the process environment and an optional `.env` file (environment wins), then validates. */
export function loadConfig(envFile = ".env"): Config {
  let fileVars: Record<string, string> = {};
  try {
    fileVars = parseDotEnv(Deno.readTextFileSync(envFile));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const vars: Record<string, string | undefined> = { ...fileVars };
  for (const key of CONFIG_VARIABLES) {
    const v = Deno.env.get(key);
    if (v !== undefined && v !== "") vars[key] = v;
  }
  return parseConfig(vars);
}

/**
 * The Redis connection options the config describes (REDIS_URL wins over host/port/db/password). With Sentinel or
 * Cluster, only the credentials, database and TLS of these apply (REDIS_URL's host is not dialled).
 */
export function redisOptions(config: Config): {
  host: string;
  port: number;
  db: number;
  password?: string;
  username?: string;
  tls?: Record<string, never>;
} {
  if (config.REDIS_URL) {
    const u = new URL(config.REDIS_URL);
    const db = Number(u.pathname.replace("/", "") || config.REDIS_DB);
    return {
      // The URL keeps an IPv6 host in brackets, which a socket's host must not have.
      host: u.hostname.replace(/^\[|\]$/g, ""),
      port: Number(u.port || 6379),
      db,
      password: u.password ? decodeURIComponent(u.password) : config.REDIS_PASSWORD,
      username: u.username ? decodeURIComponent(u.username) : undefined,
      ...(u.protocol === "rediss:" ? { tls: {} } : {}),
    };
  }
  return { host: config.REDIS_HOST, port: config.REDIS_PORT, db: config.REDIS_DB, password: config.REDIS_PASSWORD };
}

/** How the service reaches Redis: one server, a primary found through Sentinel, or a Cluster. */
export type RedisTopology =
  | { mode: "standalone" }
  | { mode: "sentinel"; sentinels: RedisNode[]; name: string; sentinelPassword?: string }
  | { mode: "cluster"; nodes: RedisNode[] };

/** The topology the config describes (REDIS_SENTINELS or REDIS_CLUSTER_NODES, else one server). */
export function redisTopology(config: Config): RedisTopology {
  if (config.REDIS_CLUSTER_NODES) return { mode: "cluster", nodes: config.REDIS_CLUSTER_NODES };
  if (config.REDIS_SENTINELS) {
    return {
      mode: "sentinel",
      sentinels: config.REDIS_SENTINELS,
      name: config.REDIS_SENTINEL_NAME,
      sentinelPassword: config.REDIS_SENTINEL_PASSWORD,
    };
  }
  return { mode: "standalone" };
}

/**
 * The addresses the service dials first: the server, the sentinels or the cluster's seed nodes (the launcher grants
 * them in --allow-net; a worker probes the first one at start).
 */
export function redisSeeds(config: Config): RedisNode[] {
  const topology = redisTopology(config);
  if (topology.mode === "cluster") return topology.nodes;
  if (topology.mode === "sentinel") return topology.sentinels;
  const { host, port } = redisOptions(config);
  return [{ host, port }];
}

/** Config with secrets removed, for `/info` and logs. */
export function publicConfig(config: Config): Record<string, unknown> {
  const r = redisOptions(config);
  return {
    app_name: config.APP_NAME,
    version: config.VERSION,
    debug: config.DEBUG,
    host: config.HOST,
    port: config.PORT,
    connections: {
      guard: config.CONNECTION_GUARD,
      max: config.MAX_CONNECTIONS ?? "from the open-file limit",
      header_timeout_ms: config.HEADER_TIMEOUT_MS,
      idle_timeout_ms: config.IDLE_TIMEOUT_MS,
      body_idle_timeout_ms: config.BODY_IDLE_TIMEOUT_MS,
    },
    upload_dir: config.UPLOAD_DIR,
    result_dir: config.RESULT_DIR,
    storage: config.STORAGE === "s3"
      ? {
        kind: "s3",
        endpoint: config.S3_ENDPOINT ?? `https://s3.${config.S3_REGION}.amazonaws.com`,
        region: config.S3_REGION,
        bucket: config.S3_BUCKET,
        prefix: config.S3_PREFIX,
        force_path_style: config.S3_FORCE_PATH_STYLE,
        presigned_results: config.S3_PRESIGNED_RESULTS,
      }
      : { kind: "local" },
    redis: {
      mode: redisTopology(config).mode,
      ...(redisTopology(config).mode === "standalone" ? { host: r.host, port: r.port } : {}),
      seeds: redisSeeds(config).map((n) => `${n.host}:${n.port}`),
      db: r.db,
      tls: Boolean(r.tls),
      password_set: Boolean(r.password),
    },
    max_file_size: config.MAX_FILE_SIZE,
    max_pixels: config.MAX_PIXELS,
    max_contours_stored: config.MAX_CONTOURS_STORED,
    worker_concurrency: config.WORKER_CONCURRENCY,
    worker_nice: config.WORKER_NICE,
    embedded_worker: config.EMBEDDED_WORKER,
    queue_prefix: config.QUEUE_PREFIX,
    queue_name: config.QUEUE_NAME,
    job_attempts: config.JOB_ATTEMPTS,
    disk_full_retry_seconds: config.DISK_FULL_RETRY_SECONDS,
    disk_min_free_mb: config.DISK_MIN_FREE_MB,
    require_redis_persistence: config.REQUIRE_REDIS_PERSISTENCE,
    lock_duration_ms: config.LOCK_DURATION_MS,
    analysis_timeout_ms: config.ANALYSIS_TIMEOUT_MS,
    analysis_member_max_mib: config.ANALYSIS_MEMBER_MAX_MIB,
    worker_grace_ms: config.WORKER_GRACE_MS,
    render: config.RENDER,
    keep_uploads: config.KEEP_UPLOADS,
    retention: {
      result_ttl_hours: config.RESULT_TTL_HOURS,
      upload_ttl_hours: config.UPLOAD_TTL_HOURS,
      sweep_minutes: config.RETENTION_SWEEP_MINUTES,
    },
    cors_origins: config.CORS_ORIGINS,
    api_keys_set: config.API_KEYS.length,
    rate_limit: { uploads: config.RATE_LIMIT, window_seconds: config.RATE_LIMIT_WINDOW },
    trust_proxy: "hops" in config.TRUST_PROXY
      ? config.TRUST_PROXY.hops
      : config.TRUST_PROXY.networks.length + " networks",
    callbacks: {
      enabled: Boolean(config.CALLBACK_SECRET),
      allowed_hosts: config.CALLBACK_ALLOWED_HOSTS,
      attempts: config.CALLBACK_ATTEMPTS,
    },
  };
}
