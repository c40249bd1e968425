import { QueueEvents } from "bullmq";
import { parseConfig } from "../config.ts";
import { closeRedis, createRedis } from "../queue/connection.ts";
import { dropPrefix, sparePort, taskFlags } from "../tests/harness.ts";
import {
  type CpuPerImage,
  cpuPerImage,
  type CpuTimes,
  cpuTimes,
  mean,
  percentile,
  redisCpu,
  round,
  type ThreadCpu,
  threadCpu,
  threadCpuPerImage,
} from "./stats.ts";

/** One end-to-end run's settings. */
export interface EndToEndSettings {
  /** Uploads in all. */
  uploads: number;
  /** Clients uploading at once. */
  concurrency: number;
  /** WORKER_CONCURRENCY of the service (pool members). */
  workers: number;
  /** RENDER of the service: annotated images drawn on request (lazy) or by the worker (eager). */
  render: "lazy" | "eager";
  /** Images to upload, round-robin. */
  images: { name: string; bytes: Uint8Array }[];
  /** Folder for the run's uploads and results (removed afterwards). */
  scratch: string;
  /**
   * Uploads sent, and waited for, before the timed ones (default none): a service that has run a while has its code
   * compiled and its connections and scripts loaded, and without this the first few uploads are the slowest ones.
   */
  warmup?: number;
}

/** What one end-to-end run measured. */
export interface EndToEndReport {
  uploads: number;
  concurrency: number;
  workers: number;
  render: "lazy" | "eager";
  accepted: number;
  failures: number;
  uploads_per_s: number;
  images_per_s: number;
  upload_ms: { p50: number; p95: number; p99: number; mean: number };
  completed_ms: { p50: number; p95: number; p99: number };
  /** The machine's CPU per image over the timed run (every process: service, Redis, this client). */
  cpu: CpuPerImage;
}

const PROJECT = new URL("..", import.meta.url);

/** The service's environment for one run: its own port, queue prefix and folders, no rate limit. */
function serviceEnv(s: EndToEndSettings, port: number): Record<string, string> {
  return {
    HOST: "127.0.0.1",
    PORT: String(port),
    QUEUE_PREFIX: `bench-${crypto.randomUUID()}`,
    UPLOAD_DIR: `${s.scratch}/uploads`,
    RESULT_DIR: `${s.scratch}/results`,
    WORKER_CONCURRENCY: String(s.workers),
    RENDER: s.render,
    RATE_LIMIT: "0",
    REDIS_AUTOSTART: "false",
  };
}

/**
 * Starts the service as `deno task start` does (API plus in-process workers) on a fresh queue prefix, uploads the
 * images through real HTTP at the given concurrency, and times each upload and its task's arrival at `completed`
 * (from BullMQ's own events, so nobody polls).
 */
export async function benchEndToEnd(s: EndToEndSettings): Promise<EndToEndReport> {
  const port = sparePort();
  const env = serviceEnv(s, port);
  const config = parseConfig(env);
  const flags = await taskFlags("start");
  const service = new Deno.Command("deno", {
    args: ["run", ...flags, `--allow-write=${s.scratch}`, "main.ts"],
    cwd: PROJECT,
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(service.stderr).text();
  const connection = createRedis(config, "worker");
  const events = new QueueEvents(config.QUEUE_NAME, { connection, prefix: config.QUEUE_PREFIX });
  const base = `http://127.0.0.1:${port}`;
  try {
    await events.waitUntilReady();
    await waitForWorkers(base, 60_000);

    const started = new Map<string, number>();
    const finished = new Map<string, number>();
    let failed = 0;
    let allDone: () => void = () => {};
    const done = new Promise<void>((resolve) => (allDone = resolve));
    // False while warming up: as many warm-up tasks as timed ones must not end the timed run before it starts.
    let timed = !s.warmup;
    const settle = (id: string, ok: boolean) => {
      if (finished.has(id)) return;
      finished.set(id, performance.now());
      if (!ok) failed++;
      if (timed && finished.size === s.uploads) allDone();
    };
    events.on("completed", ({ jobId }) => settle(jobId, true));
    events.on("failed", ({ jobId }) => settle(jobId, false));

    if (s.warmup) {
      const warm: string[] = [];
      await uploadAll(base, { ...s, uploads: s.warmup }, (id) => warm.push(id));
      await pollUntil(() => warm.every((id) => finished.has(id)), 120_000, "the warm-up uploads did not finish");
      finished.clear();
      failed = 0;
      timed = true;
    }
    const cpu = cpuTimes();
    const run = await uploadAll(base, s, (id, begin) => started.set(id, begin));
    for (let i = 0; i < run.refused; i++) settle(`refused-${i}`, false);
    const deadline = new Promise<"timeout">((resolve) => {
      const timer = setTimeout(() => resolve("timeout"), 600_000);
      done.then(() => clearTimeout(timer));
    });
    if (await Promise.race([done, deadline]) === "timeout") {
      throw new Error(`only ${finished.size} of ${s.uploads} tasks finished within 10 minutes`);
    }
    return endToEndReport(s, run, started, finished, failed, cpuPerImage(cpu, cpuTimes(), s.uploads));
  } finally {
    await events.close();
    await closeRedis(connection);
    service.kill("SIGTERM");
    const status = await service.status;
    const log = await stderr;
    if (!status.success && status.signal !== "SIGTERM") console.error(log);
    await dropPrefix(config);
    await Deno.remove(s.scratch, { recursive: true }).catch(() => {});
  }
}

/** What uploading every image took: the latencies, when it began and ended, and how many were refused. */
export interface UploadRun {
  uploadMs: number[];
  t0: number;
  lastUpload: number;
  refused: number;
}

/**
 * Uploads `s.uploads` images round-robin from `s.concurrency` clients to `base` (our API or the seed's: the same
 * path and form), telling `accepted` each task id and when its upload began (performance.now()).
 */
export async function uploadAll(
  base: string,
  s: EndToEndSettings,
  accepted: (taskId: string, begin: number) => void,
): Promise<UploadRun> {
  const uploadMs: number[] = [];
  let refused = 0;
  let next = 0;
  const t0 = performance.now();
  let lastUpload = t0;
  const forms = s.images.map((image) => multipartBody(image.name, image.bytes));
  const client = async () => {
    for (let i = next++; i < s.uploads; i = next++) {
      const form = forms[i % forms.length];
      const begin = performance.now();
      const res = await fetch(`${base}/api/v1/images/upload`, {
        method: "POST",
        body: form.body,
        headers: { "content-type": form.type },
      });
      const body = await res.json();
      const end = performance.now();
      uploadMs.push(end - begin);
      lastUpload = Math.max(lastUpload, end);
      if (res.status === 202) accepted(body.task_id, begin);
      else refused++;
    }
  };
  await Promise.all(Array.from({ length: s.concurrency }, client));
  return { uploadMs, t0, lastUpload, refused };
}

/**
 * A multipart/form-data body holding `bytes` as the field "file", built whole and sent with its Content-Length, as
 * curl and Python's requests send a file. Deno's fetch streams a FormData body in pieces instead, and on loopback
 * about 5 % of those stall for a delayed ACK (40 ms) before the server has the whole body: a cost of this client,
 * which it would add to every service it measures.
 */
export function multipartBody(name: string, bytes: Uint8Array): { body: Uint8Array<ArrayBuffer>; type: string } {
  const boundary = `----bench${crypto.randomUUID().replaceAll("-", "")}`;
  const encoder = new TextEncoder();
  const head = encoder.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  const body = new Uint8Array(head.length + bytes.length + tail.length);
  body.set(head);
  body.set(bytes, head.length);
  body.set(tail, head.length + bytes.length);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

/** The report of one run from its uploads and each task's start (upload began) and finish (performance.now()). */
export function endToEndReport(
  s: EndToEndSettings,
  run: UploadRun,
  started: Map<string, number>,
  finished: Map<string, number>,
  failed: number,
  cpu: CpuPerImage,
): EndToEndReport {
  const lastFinish = Math.max(...finished.values());
  const toCompleted = [...started].filter(([id]) => finished.has(id)).map(([id, t]) => finished.get(id)! - t);
  const p = (values: number[]) => ({
    p50: round(percentile(values, 50), 1),
    p95: round(percentile(values, 95), 1),
    p99: round(percentile(values, 99), 1),
  });
  return {
    uploads: s.uploads,
    concurrency: s.concurrency,
    workers: s.workers,
    render: s.render,
    accepted: started.size,
    failures: failed,
    uploads_per_s: round(s.uploads / ((run.lastUpload - run.t0) / 1000), 1),
    images_per_s: round((started.size - failed + run.refused) / ((lastFinish - run.t0) / 1000), 1),
    upload_ms: { ...p(run.uploadMs), mean: round(mean(run.uploadMs), 1) },
    completed_ms: p(toCompleted),
    cpu,
  };
}

/** Polls `done` every 20 ms until it holds, or throws `message` after `ms`. */
export async function pollUntil(done: () => boolean, ms: number, message: string): Promise<void> {
  const until = Date.now() + ms;
  while (!done()) {
    if (Date.now() > until) throw new Error(message);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitForWorkers(base: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const health = await fetch(`${base}/api/v1/health/worker`).then((r) => r.json(), () => ({ workers: 0 }));
    if (health.workers >= 1) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the service did not come up within ${ms / 1000} s`);
}

/** What one queue-drain run measured. */
export interface DrainReport {
  images: number;
  workers: number;
  render: "lazy" | "eager";
  images_per_s: number;
  failures: number;
  /** The machine's CPU per image from the first completion to the last. */
  cpu: CpuPerImage;
  /**
   * Over the same span, the worker process's CPU per image by kind of thread (analysis = the pool members, main = the
   * thread running BullMQ, file_io = Deno's blocking pool, v8 = its GC and compiler threads), and the Redis server's;
   * empty where they cannot be read (not Linux, or no `ps`).
   */
  threads_ms: ThreadCpu;
}

/**
 * The workers' own throughput: the API (without workers) queues `uploads` images first, then one `deno task worker`
 * process with `workers` pool members drains the queue. Timed from its first completion to its last, so neither the
 * uploads nor OpenCV's start-up share the clock: this is what adding cores or worker processes buys.
 */
export async function benchDrain(s: EndToEndSettings): Promise<DrainReport> {
  const port = sparePort();
  const env = { ...serviceEnv(s, port), EMBEDDED_WORKER: "false" };
  const config = parseConfig(env);
  const flags = { start: await taskFlags("start"), worker: await taskFlags("worker") };
  const spawn = (task: "start" | "worker", script: string) =>
    new Deno.Command("deno", {
      args: ["run", ...flags[task], `--allow-write=${s.scratch}`, script],
      cwd: PROJECT,
      env,
      stdout: "null",
      stderr: "null",
    }).spawn();
  const api = spawn("start", "main.ts");
  let worker: Deno.ChildProcess | undefined;
  const connection = createRedis(config, "worker");
  const events = new QueueEvents(config.QUEUE_NAME, { connection, prefix: config.QUEUE_PREFIX });
  // Its own connection: the one above is held by the events' blocking reads.
  const info = createRedis(config, "worker");
  const base = `http://127.0.0.1:${port}`;
  try {
    await events.waitUntilReady();
    const until = Date.now() + 60_000;
    while (!(await fetch(`${base}/api/v1/health/`).then((r) => (r.body?.cancel(), r.ok), () => false))) {
      if (Date.now() > until) throw new Error("the API did not come up within 60 s");
      await new Promise((r) => setTimeout(r, 200));
    }
    const { refused } = await uploadAll(base, s, () => {});
    if (refused > 0) throw new Error(`${refused} uploads were refused`);

    const times: number[] = [];
    let failures = 0;
    let allDone: () => void = () => {};
    const done = new Promise<void>((resolve) => (allDone = resolve));
    // Read at the first completion, where the timed part begins.
    let cpu: CpuTimes | undefined;
    let threads: Promise<[ThreadCpu, number]> | undefined;
    const readThreads = () => Promise.all([threadCpu(worker!.pid), redisCpu(info)]);
    const settle = (ok: boolean) => {
      times.push(performance.now());
      cpu ??= cpuTimes();
      threads ??= readThreads();
      if (!ok) failures++;
      if (times.length === s.uploads) allDone();
    };
    events.on("completed", () => settle(true));
    events.on("failed", () => settle(false));
    worker = spawn("worker", "worker.ts");
    const deadline = new Promise<"timeout">((resolve) => {
      const timer = setTimeout(() => resolve("timeout"), 600_000);
      done.then(() => clearTimeout(timer));
    });
    if (await Promise.race([done, deadline]) === "timeout") {
      throw new Error(`only ${times.length} of ${s.uploads} tasks finished within 10 minutes`);
    }
    const cpuUsed = cpuPerImage(cpu!, cpuTimes(), times.length - 1);
    const [[threadsFrom, redisFrom], [threadsTo, redisTo]] = await Promise.all([threads!, readThreads()]);
    return {
      images: s.uploads,
      workers: s.workers,
      render: s.render,
      images_per_s: round((times.length - 1) / ((times[times.length - 1] - times[0]) / 1000), 1),
      failures,
      cpu: cpuUsed,
      threads_ms: Object.keys(threadsTo).length
        ? {
          ...threadCpuPerImage(threadsFrom, threadsTo, times.length - 1),
          redis: round((redisTo - redisFrom) / (times.length - 1)),
        }
        : {},
    };
  } finally {
    await events.close();
    await closeRedis(connection);
    await closeRedis(info);
    for (const p of [worker, api]) {
      if (!p) continue;
      p.kill("SIGTERM");
      await p.status;
    }
    await dropPrefix(config);
    await Deno.remove(s.scratch, { recursive: true }).catch(() => {});
  }
}
