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
    APP_NAME: z.string().min(1).default("Background Image Processor")
      .describe("shown in `/info` and the docs"),
    VERSION: z.string().min(1).default("1.0.0")
      .describe("shown in `/info` and the docs"),
    DEBUG: bool.default(false)
      .describe(
        "readable (non-JSON) log lines with debug events, and auto-reload: `deno task start` hands over " +
          "to `deno task dev` (Deno's `--watch`)",
      ),
    LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).optional()
      .describe(
        "the least severe events written: `info` (the default; `debug` with `DEBUG`) writes a line per request " +
          "and per job, `warn` only what needs attention",
      ),
    HOST: z.string().min(1).default("0.0.0.0")
      .describe("listen address"),
    PORT: port.default(8000)
      .describe("listen port (`0`: any free port)"),
    RELOAD: bool.default(false)
      .describe("auto-reload on source changes (as with `DEBUG`) while keeping JSON logs"),
    // Read by Deno itself, which takes only these two words; the service reads it to add its own tracing on top.
    OTEL_DENO: z.stringbool({ truthy: ["true"], falsy: ["false"], error: "must be true or false (as Deno reads it)" })
      .default(false)
      .describe(
        "`true`: OpenTelemetry traces, one per upload across the queue, exported over OTLP by Deno with the " +
          "standard `OTEL_*` variables ([tracing](tracing.md)); only `true` or `false`, the words Deno reads",
      ),
    // Connection limits of the HTTP server (http_server.ts): silent sockets and slow-header (slowloris) clients give
    // their descriptor back.
    HEADER_TIMEOUT_MS: decimal(number().int().min(100).max(600_000)).default(10_000)
      .describe(
        "a request head must be complete within this long of the connection opening, or of a kept-alive " +
          "connection's first byte of its next request; else the connection is closed (silent sockets, " +
          "slow-header clients)",
      ),
    IDLE_TIMEOUT_MS: decimal(number().int().min(100).max(3_600_000)).default(75_000)
      .describe(
        "a kept-alive connection without a request is closed after this long. Keep it above a fronting " +
          "proxy's idle timeout for its upstream connections (AWS ALB: 60 s; nginx `keepalive_timeout` in " +
          "an `upstream`: 60 s), or the proxy may send a request on a connection being closed (a 502)",
      ),
    BODY_IDLE_TIMEOUT_MS: decimal(number().int().min(100).max(3_600_000)).default(30_000)
      .describe(
        "an upload whose body sends nothing for this long → `408 request_timeout`, and its partial file " +
          "is removed",
      ),
    MAX_CONNECTIONS: decimal(number().int().min(1).max(1_000_000)).optional()
      .meta({
        description: "open client connections at most; more get a bare `503` with `Retry-After: 1` and are closed at " +
          "once. Unset: (soft open-file limit − 128) / 4, at most 4096 (a connection can hold 4 " +
          "descriptors: its socket, both ends of the loopback hop, a file), 224 when the limit cannot be " +
          "read. The `open-file limit` log line at start says which, and warns when a set value is above " +
          "what the limit affords",
        defaultText: "from the open-file limit",
      }),
    // The connection guard enforces HEADER_TIMEOUT_MS, IDLE_TIMEOUT_MS and MAX_CONNECTIONS on connections it accepts
    // itself (http_server.ts). Behind a proxy that enforces them (nginx, Envoy, a cloud load balancer), false serves with
    // Deno.serve alone; BODY_IDLE_TIMEOUT_MS and surviving accept errors stay.
    CONNECTION_GUARD: bool.default(true)
      .describe(
        "`false`: Deno.serve alone, without the accept loop that enforces the connection limits, for " +
          "deployments behind a proxy that enforces header/idle deadlines and a connection cap; " +
          "`HEADER_TIMEOUT_MS`, `IDLE_TIMEOUT_MS` and `MAX_CONNECTIONS` then do not apply, accept errors " +
          "are still survived ([operations](operations.md#operating-it))",
      ),
    STORAGE: z.enum(["local", "s3"]).default("local")
      .describe(
        "`local`: uploads and results are files in `UPLOAD_DIR` and `RESULT_DIR`, which API and workers " +
          "must share; `s3`: objects `<S3_PREFIX>uploads/<task id>.<ext>` and `<S3_PREFIX>results/<task " +
          "id>.{json,png,jpg,polygons}` in one bucket, and no process needs a shared or persistent disk " +
          "([operations](operations.md#object-storage-storages3))",
      ),
    S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional()
      .meta({
        description: "the S3 API's URL: `http://minio:9000`, `https://<account>.r2.cloudflarestorage.com`, a Ceph " +
          "RGW's address",
        defaultText: "AWS's regional endpoint",
      }),
    S3_REGION: z.string().min(1).default("us-east-1")
      .describe("signing region (`auto` for R2)"),
    S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "an S3 bucket name (3-63 of a-z 0-9 . -)")
      .optional()
      .describe("required with `STORAGE=s3`; must exist: a missing bucket stops the start with one line"),
    S3_PREFIX: z.string().regex(/^(?:[A-Za-z0-9!_.*'()-]+\/)*$/, "path segments each ending in /").default("")
      .describe(
        "prepended to every key (`bip/` → `bip/uploads/<id>.png`), so deployments can share a bucket; " +
          "path segments each ending in `/`",
      ),
    S3_ACCESS_KEY_ID: z.string().min(1).optional()
      .describe("access key (required with `STORAGE=s3`); never shown by `/info`"),
    S3_SECRET_ACCESS_KEY: z.string().min(1).optional()
      .describe("secret key (required with `STORAGE=s3`); never shown by `/info`"),
    S3_SESSION_TOKEN: z.string().min(1).optional()
      .describe("session token of temporary credentials; never shown by `/info`"),
    S3_FORCE_PATH_STYLE: bool.default(false)
      .describe(
        "address the bucket as `endpoint/bucket/key` (MinIO, Ceph RGW, most self-hosted stores) rather " +
          "than `bucket.endpoint/key` (AWS, R2)",
      ),
    S3_PRESIGNED_RESULTS: bool.default(false)
      .describe(
        "answer `/static/results/…` with `307` to a presigned GET URL valid `S3_PRESIGNED_EXPIRY_SECONDS` " +
          "(`Cache-Control: no-store`), so the bucket serves the bytes; else the API streams them from the " +
          "bucket",
      ),
    S3_PRESIGNED_EXPIRY_SECONDS: decimal(number().int().min(1).max(604_800)).default(300)
      .describe("how long a presigned result URL stays valid, in seconds"),
    S3_MULTIPART_THRESHOLD_MB: decimal(number().int().min(5).max(5_000)).default(8)
      .describe(
        "an upload larger than this goes to the bucket as a multipart upload in parts of this size (at " +
          "least 5, S3's smallest part), one part in memory at a time",
      ),
    UPLOAD_DIR: z.string().min(1).default("uploads")
      .describe(
        "where uploads are written (`STORAGE=local`); with `STORAGE=s3` it only holds uploads over 1 MiB " +
          "while they arrive, private to each API process",
      ),
    RESULT_DIR: z.string().min(1).default("result_images")
      .describe("where results are written (`STORAGE=local`)"),
    FILE_IO_SYNC_MAX_KIB: decimal(number().int().min(0).max(65_536)).default(1024)
      .describe(
        "`STORAGE=local`: files up to this size (KiB) are read and written on the calling thread, with their " +
          "renames and removals, which on a local disk costs less CPU than handing each operation to a thread " +
          "pool; larger files go through the pool; `0` sends every file operation there (for a network " +
          "filesystem, where one may take milliseconds)",
      ),
    REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional()
      .describe(
        "`redis://[user:password@]host:port/db` (or `rediss://`); wins over `REDIS_HOST`, `REDIS_PORT`, " +
          "`REDIS_DB` and `REDIS_PASSWORD`",
      ),
    REDIS_HOST: z.string().min(1).default("127.0.0.1")
      .describe("Redis host"),
    REDIS_PORT: port.default(6379)
      .describe("Redis port"),
    REDIS_DB: decimal(number().int().min(0).max(15)).default(0)
      .describe("Redis database number"),
    REDIS_PASSWORD: z.string().optional()
      .describe("Redis password"),
    REDIS_DATA_DIR: z.string().min(1).default(".redis")
      .describe("the private `redis-server`'s files (append-only file, log), with `REDIS_AUTOSTART`"),
    REDIS_AUTOSTART: bool.default(true)
      .describe("start a private `redis-server` when none answers on a loopback address"),
    REDIS_SENTINELS: hostPortList.optional()
      .describe(
        "Redis behind Sentinel: the sentinels (`host:port,host:port`). The client asks them for the " +
          "primary, and again after a failover (a primary demoted to replica answers `READONLY`, which " +
          "makes it reconnect). Credentials, database and TLS (`rediss://`) come from `REDIS_URL` (its host " +
          "is not dialled) or `REDIS_PASSWORD`/`REDIS_DB`; `REDIS_AUTOSTART` does not apply",
      ),
    REDIS_SENTINEL_NAME: z.string().min(1).default("mymaster")
      .describe("the name of the primary the sentinels watch"),
    REDIS_SENTINEL_PASSWORD: z.string().optional()
      .describe(
        "only when the sentinels themselves ask for a password (the data nodes take `REDIS_URL`'s or " +
          "`REDIS_PASSWORD`)",
      ),
    REDIS_CLUSTER_NODES: hostPortList.optional()
      .describe(
        "Redis Cluster: some of its nodes (`host:port,…`); the client learns the rest. Database 0 only. " +
          "`QUEUE_PREFIX` must hold a hash tag so every key of the service sits in one slot: a plain prefix " +
          "is wrapped (`bip` → `{bip}`), one with other braces (`bip{`, `{}x`) stops the start with one " +
          "line ([operations](operations.md#redis-sentinel-and-cluster))",
      ),
    MAX_FILE_SIZE: decimal(number().int().positive()).default(10 * 1024 * 1024)
      .meta({ description: "largest accepted upload, in bytes", defaultText: "`10485760` (10 MiB)" }),
    // Each file of a batch is one row of the answer, one job read per status poll and one entry of its ZIP, and the
    // body may be this many times MAX_FILE_SIZE: 100 keeps all of these small (100 × 10 MiB is 1 GiB at most on disk
    // while a batch arrives) and is more images than a person picks at once in the browser.
    MAX_BATCH_FILES: decimal(number().int().min(1).max(10_000)).default(100)
      .describe(
        "most files one batch upload (`POST /api/v1/images/batch`) takes; one more is refused with 400 " +
          "too_many_files ([batches](batches.md))",
      ),
    MAX_PIXELS: decimal(number().int().positive()).default(50_000_000)
      .describe(
        "largest image (width × height) decoded; read from the header before decoding, at upload and " +
          "again in the worker (a decompression-bomb guard: a tiny file can declare a huge image)",
      ),
    // Most contours one result document keeps (the largest by area; the result says `truncated` and how many were
    // found). A 3000×3000 noise image has 66,388 contours, a 33.6 MB document (about 500 bytes each) that a member
    // builds, the worker writes and a lazy drawing or an export parses again; 32 of them took the service to 2.4 GiB.
    // 20,000 keeps a document near 10 MB and is far above what a photo or a scan yields (hundreds to a few thousand).
    MAX_CONTOURS_STORED: decimal(number().int().min(1).max(1_000_000)).default(20_000)
      .describe(
        "most contours a result keeps, the largest by area (as `max_contours`, children of dropped ones " +
          "hang from their nearest kept ancestor); the result then says `truncated: true` and " +
          "`contours_found`, `contour_count` and every total are of the kept ones, and the annotated image " +
          "shows the kept ones (eager and lazy drawings alike). A 3000×3000 noise PNG has 66,603 contours, " +
          "33.6 MB of JSON; 20,000 is about 10 MB",
      ),
    WORKER_CONCURRENCY: decimal(number().int().min(1).max(64)).default(navigator.hardwareConcurrency || 1)
      .meta({
        description: "images one worker process analyses at once; each slot is a Web Worker with its own OpenCV.js",
        defaultText: "number of cores",
      }),
    WORKER_NICE: decimal(number().int().min(0).max(19)).default(19)
      .describe(
        "nice value of the analysis threads (`0`: the process's own priority): analysis gets the CPU the " +
          "API, the thread renewing job locks and Redis leave, so uploads are answered promptly while every " +
          "core is analysing. Linux only (elsewhere the call would lower the whole process): on other " +
          "systems analysis keeps the normal priority and a warning says so. See " +
          "[why](performance.md#why-uploads-stay-fast-while-every-core-is-busy)",
      ),
    EMBEDDED_WORKER: bool.default(true)
      .describe("run workers inside the API process; `false` when workers run separately"),
    // In Cluster mode every key must sit in one hash slot: a plain prefix is wrapped in {…}, a Redis hash tag (see the
    // object's transform below).
    QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_:.{}-]+$/, "letters, digits, _ : . - { } only").default("bip")
      .describe(
        "Redis key prefix (separate deployments on one Redis use different prefixes); in Cluster mode a " +
          "plain prefix is wrapped in `{…}`, a hash tag",
      ),
    QUEUE_NAME: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, _ . - only").default("contours")
      .describe("queue name"),
    WORKER_GRACE_MS: decimal(number().int().min(0).max(3_600_000)).default(10_000)
      .describe(
        "on SIGTERM/SIGINT a worker lets the analyses under way finish for up to this long (jobs not yet " +
          "being analysed go back to the queue at once), then stops them, returns them to the queue without " +
          "using an attempt, and exits 0",
      ),
    LOCK_DURATION_MS: decimal(number().int().min(1000).max(3_600_000)).default(30_000)
      .describe(
        "BullMQ job lock; a job whose worker died (SIGKILL, lost machine) is taken up again after about " +
          "1.5× this",
      ),
    ANALYSIS_TIMEOUT_MS: decimal(number().int().min(100).max(3_600_000)).default(30_000)
      .describe(
        "deadline of one analysis (or drawing) on a pool member: past it the job fails with `timeout` (no " +
          "retry) and the member is replaced. Sized from a `MAX_PIXELS` image (50 MP JPEG, 5.7 MB) analysed " +
          "and drawn here in 3.0–8.6 s on one member of 2 shared cores (3.1–5.2 s each with two at once): " +
          "about 3.5× the slowest",
      ),
    ANALYSIS_MEMBER_MAX_MIB: decimal(number().int().min(64).max(65_536)).default(384)
      .describe(
        "memory a pool member may keep between jobs (its JS heap plus its WASM memories, neither of which " +
          "shrinks): a member holding more after a job is replaced by a fresh one, which costs about 0.5 s " +
          "of one core. A member holds ~210 MiB idle and ~260 MiB after a 12-megapixel photo, so photos " +
          "never trigger it; a 3000×3000 noise image leaves ~400 MiB",
      ),
    // Retention: finished jobs, their results and their index entries are removed after RESULT_TTL_HOURS; uploads of
    // finished (failed) jobs after UPLOAD_TTL_HOURS; a sweep every RETENTION_SWEEP_MINUTES also removes orphan files.
    RESULT_TTL_HOURS: decimal(number().positive()).default(168)
      .describe(
        "finished jobs, completed or failed (records, result files, uploads, results-list entries), are " +
          "removed by the first sweep after this long",
      ),
    UPLOAD_TTL_HOURS: decimal(number().positive()).default(24)
      .describe(
        "uploads kept from finished jobs (failed ones, or all with `KEEP_UPLOADS`) are removed after this " +
          "long, or with their job at `RESULT_TTL_HOURS` if that comes first; an undrawn result's upload " +
          "(`RENDER=lazy`) is kept as long as the result",
      ),
    RETENTION_SWEEP_MINUTES: decimal(number().positive()).default(10)
      .describe(
        "how often the deployment sweeps (one sweep per interval, taken by one of the worker processes): an " +
          "expired job goes together with its result files and " +
          "upload, so nothing is served past `RESULT_TTL_HOURS` plus one interval; the sweep also removes " +
          "files whose job is unknown (older than 10 minutes), and never touches a queued or running job or " +
          "a file it needs",
      ),
    KEEP_UPLOADS: bool.default(false)
      .describe(
        "keep each upload after its job succeeded (by default it is deleted once the annotated image " +
          "exists: at the end of the job with `RENDER=eager`, after the image's first request with " +
          "`RENDER=lazy`; failed jobs keep theirs)",
      ),
    RENDER: z.enum(["lazy", "eager"]).default("eager")
      .describe(
        "when the annotated image is drawn, unless an upload's `render` field says otherwise: `eager` by " +
          "the worker before the task completes (what a client that downloads the image needs), `lazy` on " +
          "its first request (`result_url` still always serves it; the upload is kept until then; for " +
          "clients that want only the contour data)",
      ),
    JOB_ATTEMPTS: decimal(number().int().min(1).max(20)).default(3)
      .describe("tries for transient failures"),
    DISK_FULL_RETRY_SECONDS: decimal(number().int().min(1).max(86_400)).default(300)
      .describe(
        "a job that finds its disk full tries again after this long, without using an attempt (the usual " +
          "backoff would fail it within seconds, before anyone can make room)",
      ),
    DISK_MIN_FREE_MB: decimal(number().min(0)).default(100)
      .describe(
        "`/api/v1/health/full` fails the component `disk` when `UPLOAD_DIR` or `RESULT_DIR` has less free " +
          "space (read with `--allow-sys=statfs`; `null` without it)",
      ),
    REQUIRE_REDIS_PERSISTENCE: bool.default(false)
      .describe(
        "refuse to start (exit 1) on a Redis with neither AOF nor RDB snapshots, whose restart loses " +
          "every queued task",
      ),
    API_KEYS: z
      .string()
      .default("")
      .transform((s) => s.split(",").map((k) => k.trim()).filter(Boolean))
      .describe(
        "comma-separated keys; when set, `/api/v1/images/*`, `/api/v1/batches/*`, `/api/v1/health/full` " +
          "and `/admin/*` need " +
          "one as `X-API-Key`, `Authorization: Bearer` or the password of `Authorization: Basic` (compared " +
          "in constant time) → `401` otherwise (for `/admin/*` with a Basic challenge, so browsers ask for " +
          "it)",
      ),
    RATE_LIMIT: decimal(number().int().min(0)).default(1000)
      .describe(
        "uploads per client (API key, else IP) per `RATE_LIMIT_WINDOW`, counted in Redis so the limit " +
          "holds across API processes; `429 rate_limited` with `Retry-After` past it; `0` = off. Reads are " +
          "not limited. The default lets one script send a folder of several hundred images in a minute, " +
          "keys or not",
      ),
    RATE_LIMIT_WINDOW: decimal(number().int().min(1).max(86_400)).default(60)
      .describe("the rate limit's window, in seconds"),
    TRUST_PROXY: z.string().default("off").transform((text, ctx) => {
      try {
        return parseTrustProxy(text);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    })
      .describe(
        "proxies whose `X-Forwarded-For` (else `Forwarded`) names the client, for the rate limit and the " +
          "request log: `off`, the number of proxies in front (`1` behind one load balancer), or their " +
          "addresses/CIDRs (`10.0.0.0/8,fd00::/8`). A proxy that sets only `Forwarded` must drop a client's " +
          "`X-Forwarded-For`",
      ),
    CALLBACK_SECRET: z.string().min(16, "must be at least 16 characters").optional()
      .describe(
        "HMAC-SHA256 key (16+ characters) for callback signatures; without it `callback_url` is refused " +
          "(`400 callbacks_disabled`)",
      ),
    CALLBACK_ALLOWED_HOSTS: z
      .string()
      .default("")
      .transform((s) => s.split(",").map((h) => h.trim().toLowerCase()).filter(Boolean))
      .describe(
        "hosts callbacks may reach even if they are internal (loopback, private, link-local); by default " +
          "only public addresses",
      ),
    CALLBACK_ATTEMPTS: decimal(number().int().min(1).max(20)).default(5)
      .describe("delivery tries, exponential backoff from 1 s"),
    // Each entry: `*`, a host name or IP address (matched exactly, in any spelling of the address), or `*.domain`
    // (any name below it, not the domain itself). Only an entry that names the host exactly lets it be internal: an
    // operator who lists 10.0.0.5 or images.internal means it, a wildcard never reaches a private network.
    SOURCE_ALLOWED_HOSTS: z
      .string()
      .default("")
      .transform((s) => s.split(",").map((h) => h.trim().toLowerCase()).filter(Boolean))
      .refine((hosts) => hosts.every((h) => /^(?:\*|(?:\*\.)?[a-z0-9_.-]+|\[?[0-9a-f:.]+\]?)$/.test(h)), {
        message: "comma-separated hosts: `*`, a name, `*.domain` or an IP address (no scheme, port or path)",
      })
      .describe(
        "hosts an upload's `source_url` may name (the worker downloads it); empty: `source_url` is refused " +
          "(`400 source_urls_disabled`). `*` = any public host; `*.example.com` = any name below example.com; " +
          "a name or IP address = that host, which may then be internal (loopback, private); wildcards reach " +
          "public addresses only",
      ),
    SOURCE_TIMEOUT_MS: decimal(number().int().min(100).max(600_000)).default(30_000)
      .describe(
        "deadline of one `source_url` download (every redirect, the headers and the whole body); past it the task " +
          "fails with `source_timeout`",
      ),
    CORS_ORIGINS: z
      .string()
      .default("*")
      .transform((s) => s.split(",").map((o) => o.trim()).filter(Boolean))
      .describe("comma-separated allowed origins"),
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
    file_io_sync_max_kib: config.FILE_IO_SYNC_MAX_KIB,
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
    max_batch_files: config.MAX_BATCH_FILES,
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
    source_urls: {
      enabled: config.SOURCE_ALLOWED_HOSTS.length > 0,
      allowed_hosts: config.SOURCE_ALLOWED_HOSTS,
      timeout_ms: config.SOURCE_TIMEOUT_MS,
    },
  };
}
