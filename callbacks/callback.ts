import { DelayedError, Queue, UnrecoverableError, Worker } from "bullmq";
import { lookup } from "node:dns/promises";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { BadRequest } from "../errors.ts";
import { log } from "../log.ts";
import { isInternalAddress, isIpLiteral } from "./address.ts";
import { postPinned } from "./pinned_request.ts";

/** One notification to deliver. */
export interface CallbackJob {
  task_id: string;
  url: string;
  /** The JSON body, exactly as signed; jobs queued by this version leave it out and send the status at delivery. */
  body?: string;
  request_id?: string;
}

/** The task's status as GET /status shows it (undefined once the task is gone). */
export type StatusReader = (taskId: string) => Promise<{ state: string } | undefined>;

/** Header carrying `sha256=<hex HMAC of the body>`. */
export const SIGNATURE_HEADER = "X-Signature-256";

const TIMEOUT_MS = 10_000;
/**
 * A callback queued before its task ended looks again after a quarter of its age, between these bounds: the usual
 * case (queued by the processor a moment before BullMQ records the end) costs one 100 ms wait, a task waiting for a
 * retry is looked at every few seconds, and after a day the callback gives up.
 */
const FINAL_POLL_MIN_MS = 100;
const FINAL_POLL_MAX_MS = 5000;
const FINAL_WAIT_MS = 24 * 3600_000;

/** Checks a client's callback_url at upload: http(s), no credentials, and not an internal address unless allowed. */
export function validateCallbackUrl(config: Config, raw: string): string {
  if (!config.CALLBACK_SECRET) {
    throw new BadRequest(
      "callbacks_disabled",
      "callback_url: callbacks are not enabled on this server (CALLBACK_SECRET)",
    );
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BadRequest("validation_error", "callback_url: not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new BadRequest("validation_error", "callback_url: only http and https URLs are allowed");
  }
  if (url.username || url.password) {
    throw new BadRequest("validation_error", "callback_url: must not carry credentials");
  }
  if (raw.length > 2048) throw new BadRequest("validation_error", "callback_url: longer than 2048 characters");
  const host = url.hostname;
  if (!isAllowedHost(config, host) && isInternalHost(host)) {
    throw new BadRequest(
      "validation_error",
      `callback_url: ${host} is an internal address (not in CALLBACK_ALLOWED_HOSTS)`,
    );
  }
  return url.href;
}

/** Looks up a host's addresses (empty when it has none). */
export type Resolver = (host: string) => Promise<string[]>;

// The system's resolver (hosts file, search domains), as a connection by name would use.
const resolveAll: Resolver = async (host) => {
  try {
    return (await lookup(host, { all: true })).map((entry) => entry.address);
  } catch (err) {
    // Deno reports a lookup --allow-net forbids as EPERM: not a name that does not resolve.
    if ((err as { code?: string }).code === "EPERM") {
      throw new Error(`--allow-net does not let this process look up ${host}`);
    }
    return [];
  }
};

/**
 * Resolves a host and refuses it when any address is internal (re-checked at send time: DNS can change), then returns
 * the addresses checked: the delivery connects to these and resolves nothing again. Hosts in CALLBACK_ALLOWED_HOSTS
 * are resolved without the check.
 */
export async function assertDeliverable(
  config: Config,
  url: URL,
  resolve: Resolver = resolveAll,
): Promise<string[]> {
  const host = bare(url.hostname);
  const allowed = isAllowedHost(config, url.hostname);
  // Jobs queued before the upload check was tightened carry URLs it would now refuse.
  if (!allowed && isInternalHost(url.hostname)) {
    throw new UnrecoverableError(`callback host ${host} is an internal address`);
  }
  if (isIpLiteral(url.hostname)) return [host];
  const addresses = await resolve(host);
  if (addresses.length === 0) throw new Error(`callback host ${host} does not resolve`);
  const internal = addresses.find(isInternalAddress);
  if (!allowed && internal) {
    throw new UnrecoverableError(`callback host ${host} resolves to internal address ${internal}`);
  }
  return addresses;
}

/** Whether a URL's hostname names loopback or is an internal IP literal (names are resolved at send time). */
function isInternalHost(hostname: string): boolean {
  // "localhost." is the same name as "localhost" to any resolver.
  const name = hostname.replace(/\.+$/, "");
  return name === "localhost" || name.endsWith(".localhost") || (isIpLiteral(hostname) && isInternalAddress(hostname));
}

/** Whether CALLBACK_ALLOWED_HOSTS lists a URL's hostname. */
function isAllowedHost(config: Config, hostname: string): boolean {
  const host = canonical(hostname);
  return config.CALLBACK_ALLOWED_HOSTS.some((allowed) => canonical(allowed) === host);
}

/**
 * A host as the URL parser writes it, without brackets, so that "::1", "[::1]" and "[0:0::1]" in
 * CALLBACK_ALLOWED_HOSTS all match the same callback URL, at upload and at send time alike.
 */
function canonical(host: string): string {
  const name = bare(host);
  try {
    return bare(new URL(`http://${name.includes(":") ? `[${name}]` : name}/`).hostname);
  } catch {
    return name;
  }
}

function bare(host: string): string {
  return host.replace(/^\[|\]$/g, "");
}

/**
 * Sends one notification: the send-time address check, then the signed POST to exactly the addresses checked (never
 * a second lookup), within TIMEOUT_MS; resolves to the answer's status. `resolve` looks the host up (a stub in tests).
 */
export async function deliverCallback(
  config: Config,
  url: URL,
  body: string,
  requestId: string,
  resolve: Resolver = resolveAll,
): Promise<number> {
  const addresses = await assertDeliverable(config, url, resolve);
  const signature = await sign(config.CALLBACK_SECRET ?? "", body);
  // A timer of our own rather than AbortSignal.timeout(), whose timer outlives a quick answer.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`callback timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  try {
    return await postPinned(url, addresses, body, {
      "content-type": "application/json",
      [SIGNATURE_HEADER]: `sha256=${signature}`,
      "x-request-id": requestId,
      "user-agent": "background-image-processor-callback",
    }, abort.signal);
  } finally {
    clearTimeout(timer);
  }
}

/** HMAC-SHA256 of `body` with `secret`, as lowercase hex. */
export async function sign(secret: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body)));
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The queue that holds notifications, beside the contour queue. */
export function createCallbackQueue(config: Config, connection: Redis): Queue<CallbackJob> {
  const queue = new Queue<CallbackJob>(`${config.QUEUE_NAME}-callbacks`, { connection, prefix: config.QUEUE_PREFIX });
  queue.on("error", () => {});
  return queue;
}

/**
 * Queues a task's notification, once: the job id is the task id, so queueing it again (a retried task, or the
 * failure handler after the processor) changes nothing. Delivery retries with exponential backoff
 * (CALLBACK_ATTEMPTS).
 */
export async function enqueueCallback(queue: Queue<CallbackJob>, config: Config, job: CallbackJob): Promise<void> {
  await queue.add("callback", job, {
    jobId: job.task_id,
    attempts: config.CALLBACK_ATTEMPTS,
    backoff: { type: "exponential", delay: 1000 },
    removeOnComplete: { age: 24 * 3600 },
  });
}

/**
 * Delivers notifications: the task's final status as JSON, signed, 10 s timeout; any non-2xx answer is retried. A
 * notification queued before its task ended waits for the end (without spending an attempt).
 */
export function startCallbackWorker(config: Config, connection: Redis, statusOf: StatusReader): Worker<CallbackJob> {
  const worker = new Worker<CallbackJob>(
    `${config.QUEUE_NAME}-callbacks`,
    async (job, token) => {
      let body = job.data.body;
      if (body === undefined) {
        const status = await statusOf(job.data.task_id);
        if (!status) {
          log("info", "callback dropped: the task no longer exists", { task_id: job.data.task_id });
          return;
        }
        if (status.state !== "completed" && status.state !== "failed") {
          const age = Date.now() - job.timestamp;
          if (age > FINAL_WAIT_MS) throw new UnrecoverableError(`task ${job.data.task_id} did not end within a day`);
          const wait = Math.min(FINAL_POLL_MAX_MS, Math.max(FINAL_POLL_MIN_MS, age / 4));
          await job.moveToDelayed(Date.now() + wait, token);
          throw new DelayedError();
        }
        body = JSON.stringify(status);
      }
      const status = await deliverCallback(
        config,
        new URL(job.data.url),
        body,
        job.data.request_id ?? job.data.task_id,
      );
      if (status < 200 || status > 299) throw new Error(`callback answered ${status}`);
      log("info", "callback delivered", {
        task_id: job.data.task_id,
        request_id: job.data.request_id,
        status,
      });
    },
    { connection, prefix: config.QUEUE_PREFIX, concurrency: 4 },
  );
  worker.on("error", () => {});
  worker.on("failed", (job, err) => {
    log("warn", "callback failed", { task_id: job?.data.task_id, attempts: job?.attemptsMade, error: err.message });
  });
  return worker;
}
