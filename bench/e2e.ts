import { QueueEvents } from "bullmq";
import { parseConfig } from "../config.ts";
import { decodeImage, readImageSize } from "../imaging/decode.ts";
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

/**
 * How long a client waits before each status request, the same against both services. A task is seen done up to one
 * interval late, so polling adds half of it on average to each time to image in hand, on both sides alike; 25 ms
 * keeps that well below the time a task waits in the queue at concurrency 8, while 8 clients send at most 320 status
 * requests a second.
 */
export const POLL_MS = 25;
/** The most one task may take from its upload to its image in hand before the client gives up on it. */
const TASK_DEADLINE_MS = 120_000;

/** One service's settings for a run of the queue drain (and the environment of every run of ours). */
export interface EndToEndSettings {
  /** Uploads in all. */
  uploads: number;
  /** Clients uploading at once. */
  concurrency: number;
  /** WORKER_CONCURRENCY of the service (pool members). */
  workers: number;
  /** RENDER of the service; its own default when not given. */
  render?: "lazy" | "eager";
  /** Images to upload, round-robin. */
  images: { name: string; bytes: Uint8Array }[];
  /** Folder for the run's uploads and results (removed afterwards). */
  scratch: string;
  /** More of the service's environment (STORAGE=s3 and its bucket). */
  env?: Record<string, string>;
}

/** One timed run of the client against a service. */
export interface ClientSettings {
  /** Tasks in all, each uploaded, polled and fetched by one client in turn. */
  uploads: number;
  /** Clients at once, each with one task under way at a time. */
  concurrency: number;
  /** Images to upload, round-robin. */
  images: { name: string; bytes: Uint8Array }[];
  /**
   * Tasks run through the same client before the timed ones, and not counted: a service that has run a while has its
   * code compiled and its connections and scripts loaded, and without this the first few are the slowest ones.
   */
  warmup: number;
}

/** What the client fetches once its task completed, and so what the body must be. */
export type Fetched = "png" | "jpeg" | "json";

/** A status response as the client understands it. */
export type TaskState =
  | { state: "pending" }
  | { state: "failed"; reason: string }
  | { state: "completed"; url: string };

/** A service as the client sees it: where it is, what to send with each upload, how to read its status answers. */
export interface Target {
  base: string;
  /** Multipart fields sent beside the file. */
  fields: Record<string, string>;
  /** The task's state from the body of GET /api/v1/images/status/{task_id}. */
  read: (status: unknown) => TaskState;
  fetched: Fetched;
}

/** One task as one client lived it (times in ms of performance.now()). */
export interface TaskRecord {
  task_id?: string;
  begin: number;
  upload_ms: number;
  /** From the upload's start until the fetched body was read whole and checked. */
  in_hand_ms?: number;
  failure?: string;
  polls: number;
}

/** Every task of one timed run, when it began, and the first body fetched for each image. */
export interface ClientRun {
  tasks: TaskRecord[];
  t0: number;
  /** By index in the images uploaded; checked in full after the run, outside the timed part. */
  samples: (Uint8Array | undefined)[];
}

/** What one service gave the client over one timed run. */
export interface SideReport {
  service: "ours" | "original";
  /** Pool members (ours) or Celery processes (the original). */
  workers: number;
  /** Multipart fields sent beside the file. */
  fields: Record<string, string>;
  fetched: Fetched;
  uploads: number;
  concurrency: number;
  warmup: number;
  /** Uploads answered 202. */
  accepted: number;
  /** Tasks whose image (or data) the client had in hand, whole and valid. */
  served: number;
  /** Timed tasks that did not end with their image in hand, for any reason. */
  failures: number;
  failure_reasons: Record<string, number>;
  warmup_failures: number;
  /**
   * For each image uploaded, the first body fetched, checked in full: "ok" when it decodes as the format asked for with
   * the uploaded image's width and height (or, for the contour data, is a result document of that size).
   */
  checked: Record<string, string>;
  /** Tasks with the image in hand per second, from the first upload's start to the last image read. */
  images_per_s: number;
  upload_ms: { p50: number; p95: number; p99: number; mean: number };
  in_hand_ms: { p50: number; p95: number; p99: number; mean: number };
  polls_per_task: number;
  /** The machine's CPU per image over the timed run (every process: service, Redis, this client). */
  cpu: CpuPerImage;
  /**
   * The same CPU per image split into the kernel (decode, analyse, measure, draw, encode) and everything else
   * (`total` − `kernel`), with where the kernel's figure comes from.
   */
  cpu_ms: { kernel: number; other: number; total: number; kernel_from: string };
  /** Ours on Linux: the service process's CPU per image by kind of thread (see threadCpu). */
  threads_ms?: ThreadCpu;
}

const PROJECT = new URL("..", import.meta.url);

/**
 * Runs `script` (main.ts or worker.ts) as `deno task <task>` would, with the given environment and leave to write in
 * `scratch`; its standard error is collected, to be shown when a run fails.
 */
export async function spawnService(
  task: "start" | "worker",
  script: string,
  env: Record<string, string>,
  scratch: string,
): Promise<{ process: Deno.ChildProcess; stderr: Promise<string> }> {
  const process = new Deno.Command("deno", {
    args: ["run", ...await taskFlags(task), `--allow-write=${scratch}`, script],
    cwd: PROJECT,
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return { process, stderr: new Response(process.stderr).text() };
}
const SIGNATURES: Record<Fetched, (b: Uint8Array) => boolean> = {
  // Whole files only: the PNG signature and its IEND chunk, the JPEG SOI and EOI markers, JSON's outer braces.
  png: (b) =>
    b.length > 20 && [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((v, i) => b[i] === v) &&
    new TextDecoder().decode(b.subarray(b.length - 8, b.length - 4)) === "IEND",
  jpeg: (b) =>
    b.length > 4 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff && b[b.length - 2] === 0xff &&
    b[b.length - 1] === 0xd9,
  json: (b) => b.length > 1 && b[0] === 0x7b && b[b.length - 1] === 0x7d,
};

/** The status reader for our service: `state`, and `result.result_url` or (for the contour data) `data_url`. */
export function readOurStatus(data: boolean): (status: unknown) => TaskState {
  return (status) => {
    const s = status as { state?: string; error?: { code?: string }; result?: Record<string, string> };
    if (s.state === "completed") return { state: "completed", url: s.result![data ? "data_url" : "result_url"] };
    if (s.state === "failed") return { state: "failed", reason: `task failed: ${s.error?.code ?? "unknown"}` };
    return { state: "pending" };
  };
}

/**
 * Runs `uploads` tasks through `concurrency` clients, each doing what a user of either service does: upload (the body
 * whole, with its Content-Length), poll the status every POLL_MS until the task completed or failed, then GET the
 * URL it gives and read the body to its end. A task is done only with its image (or data) in hand and checked.
 */
export async function runClients(target: Target, s: ClientSettings, deadline: number): Promise<ClientRun> {
  const forms = s.images.map((image) => multipartBody(image.name, image.bytes, target.fields));
  const tasks: TaskRecord[] = [];
  const samples: (Uint8Array | undefined)[] = s.images.map(() => undefined);
  let next = 0;
  const t0 = performance.now();
  const task = async (image: number): Promise<TaskRecord> => {
    const form = forms[image];
    const begin = performance.now();
    // A lost task (the original's status says PENDING for ever) holds up its client for TASK_DEADLINE_MS at most.
    const until = Math.min(deadline, Date.now() + TASK_DEADLINE_MS);
    const timeout = () => AbortSignal.timeout(Math.max(1, until - Date.now()));
    const record: TaskRecord = { begin, upload_ms: NaN, polls: 0 };
    const fail = (reason: string) => ((record.failure = reason), record);
    try {
      const res = await fetch(`${target.base}/api/v1/images/upload`, {
        method: "POST",
        body: form.body,
        headers: { "content-type": form.type },
        signal: timeout(),
      });
      const answer = await res.json().catch(() => ({}));
      record.upload_ms = performance.now() - begin;
      if (res.status !== 202) return fail(`upload ${res.status} ${answer.error?.code ?? ""}`.trim());
      record.task_id = answer.task_id as string;
      for (;;) {
        if (Date.now() > until) return fail("deadline");
        await new Promise((r) => setTimeout(r, POLL_MS));
        record.polls++;
        const status = await fetch(`${target.base}/api/v1/images/status/${record.task_id}`, { signal: timeout() });
        if (!status.ok) {
          await status.body?.cancel();
          return fail(`status ${status.status}`);
        }
        const state = target.read(await status.json());
        if (state.state === "pending") continue;
        if (state.state === "failed") return fail(state.reason);
        const result = await fetch(new URL(state.url, target.base), { signal: timeout() });
        if (!result.ok) {
          await result.body?.cancel();
          return fail(`result ${result.status}`);
        }
        const body = new Uint8Array(await result.arrayBuffer());
        if (!SIGNATURES[target.fetched](body)) return fail(`result not a whole ${target.fetched}`);
        record.in_hand_ms = performance.now() - begin;
        samples[image] ??= body;
        return record;
      }
    } catch (err) {
      return fail(err instanceof DOMException && err.name === "TimeoutError" ? "deadline" : `error: ${err}`);
    }
  };
  const client = async () => {
    for (let i = next++; i < s.uploads; i = next++) tasks.push(await task(i % forms.length));
  };
  await Promise.all(Array.from({ length: s.concurrency }, client));
  return { tasks, t0, samples };
}

/**
 * The warm-up, then the timed run, with the machine's CPU times read around the timed part and `probe` (the service's
 * own CPU counters) read at both ends. The deadline bounds both parts.
 */
export async function warmAndRun<P>(
  target: Target,
  s: ClientSettings,
  deadline: number,
  probe: () => Promise<P>,
): Promise<{ warm: TaskRecord[]; run: ClientRun; warmupFailures: number; cpu: CpuPerImage; probes: [P, P] }> {
  const warm = s.warmup ? (await runClients(target, { ...s, uploads: s.warmup }, deadline)).tasks : [];
  const from = await probe();
  const cpuFrom = cpuTimes();
  const run = await runClients(target, s, deadline);
  const cpu = cpuPerImage(cpuFrom, cpuTimes(), s.uploads);
  return { warm, run, warmupFailures: warm.filter((t) => t.failure).length, cpu, probes: [from, await probe()] };
}

/** A side's report from its timed run, the kernel's CPU per image where it comes from `kernelFrom`. */
export function sideReport(
  service: SideReport["service"],
  workers: number,
  target: Target,
  s: ClientSettings,
  measured: { run: ClientRun; warmupFailures: number; cpu: CpuPerImage },
  kernel: { ms: number; from: string },
  threads?: ThreadCpu,
): SideReport {
  const { run, warmupFailures, cpu } = measured;
  const served = run.tasks.filter((t) => t.in_hand_ms !== undefined);
  const reasons: Record<string, number> = {};
  for (const t of run.tasks) if (t.failure) reasons[t.failure] = (reasons[t.failure] ?? 0) + 1;
  const lastInHand = Math.max(...served.map((t) => t.begin + t.in_hand_ms!));
  const uploadMs = run.tasks.map((t) => t.upload_ms).filter((v) => !Number.isNaN(v));
  const total = round(cpu.niced_ms + cpu.normal_ms);
  return {
    service,
    workers,
    fields: target.fields,
    fetched: target.fetched,
    uploads: s.uploads,
    concurrency: s.concurrency,
    warmup: s.warmup,
    accepted: run.tasks.filter((t) => t.task_id).length,
    served: served.length,
    failures: s.uploads - served.length,
    failure_reasons: reasons,
    warmup_failures: warmupFailures,
    checked: checkSamples(run.samples, s.images, target.fetched),
    images_per_s: served.length ? round(served.length / ((lastInHand - run.t0) / 1000), 1) : 0,
    upload_ms: latencies(uploadMs),
    in_hand_ms: latencies(served.map((t) => t.in_hand_ms!)),
    polls_per_task: round(mean(run.tasks.map((t) => t.polls)), 1),
    cpu,
    cpu_ms: { kernel: round(kernel.ms), other: round(total - kernel.ms), total, kernel_from: kernel.from },
    ...(threads ? { threads_ms: threads } : {}),
  };
}

/** Checks each sample body in full against the image it was made from (see SideReport.checked). */
function checkSamples(
  samples: (Uint8Array | undefined)[],
  images: { name: string; bytes: Uint8Array }[],
  fetched: Fetched,
): Record<string, string> {
  return Object.fromEntries(images.map(({ name, bytes }, i) => {
    const body = samples[i];
    if (!body) return [name, "never fetched"];
    try {
      const want = readImageSize(bytes);
      let got: { format: string; width: number; height: number };
      if (fetched === "json") {
        const document = JSON.parse(new TextDecoder().decode(body));
        if (!Array.isArray(document.contours)) return [name, "no contours in the result document"];
        got = { format: "json", width: document.width, height: document.height };
      } else {
        const { format, raster } = decodeImage(body);
        got = { format, width: raster.width, height: raster.height };
      }
      if (got.format !== fetched) return [name, `${got.format}, not ${fetched}`];
      if (got.width !== want.width || got.height !== want.height) {
        return [name, `${got.width}×${got.height}, not ${want.width}×${want.height}`];
      }
      return [name, "ok"];
    } catch (err) {
      return [name, `${err instanceof Error ? err.message : err}`];
    }
  }));
}

function latencies(values: number[]) {
  const p = (q: number) => round(percentile(values, q), 1);
  return { p50: p(50), p95: p(95), p99: p(99), mean: round(mean(values), 1) };
}

/** The service's environment for one run: its own port, queue prefix and folders, no rate limit. */
export function serviceEnv(
  s: Pick<EndToEndSettings, "scratch" | "render" | "env"> & { workers?: number },
  port: number,
): Record<string, string> {
  return {
    HOST: "127.0.0.1",
    PORT: String(port),
    QUEUE_PREFIX: `bench-${crypto.randomUUID()}`,
    UPLOAD_DIR: `${s.scratch}/uploads`,
    RESULT_DIR: `${s.scratch}/results`,
    ...(s.workers ? { WORKER_CONCURRENCY: String(s.workers) } : {}),
    ...(s.render ? { RENDER: s.render } : {}),
    RATE_LIMIT: "0",
    REDIS_AUTOSTART: "false",
    // What the original runs at (uvicorn --log-level warning, Celery --loglevel WARNING): no line per request or job.
    LOG_LEVEL: "warn",
    ...s.env,
  };
}

/** What one run of ours asks for: the fields sent with each upload, and whether the image or the data is fetched. */
export interface OurRun {
  fields: Record<string, string>;
  fetched: Fetched;
}

/**
 * Starts our service as `deno task start` does (API plus in-process workers) on a fresh queue prefix and runs the
 * client against it. The kernel's CPU is the pool members' threads (the service's analysis threads, which also draw
 * lazily rendered images on request); where threads cannot be read, the result documents' stage timings (wall time in
 * the members, and without lazy drawing) stand in.
 */
export async function benchOurs(
  s: EndToEndSettings & ClientSettings,
  run: OurRun,
): Promise<SideReport> {
  const port = sparePort();
  const env = serviceEnv(s, port);
  const config = parseConfig(env);
  const { process: service, stderr } = await spawnService("start", "main.ts", env, s.scratch);
  const base = `http://127.0.0.1:${port}`;
  const kernelTimings: number[] = [];
  const ours = readOurStatus(run.fetched === "json");
  const target: Target = {
    base,
    fields: run.fields,
    fetched: run.fetched,
    read: (status) => {
      const state = ours(status);
      const timings = (status as { result?: { timings_ms?: Record<string, number> } }).result?.timings_ms;
      if (state.state === "completed" && timings) {
        const { decode, analyse, measure, draw, encode } = timings;
        kernelTimings.push(decode + analyse + measure + draw + encode);
      }
      return state;
    },
  };
  try {
    await waitForWorkers(base, 60_000);
    const deadline = Date.now() + 600_000;
    const measured = await warmAndRun(target, s, deadline, () => threadCpu(service.pid));
    const [from, to] = measured.probes;
    const threads = Object.keys(to).length ? threadCpuPerImage(from, to, s.uploads) : undefined;
    const kernel = threads
      ? { ms: threads.analysis, from: "pool members' threads (/proc)" }
      : { ms: mean(kernelTimings.slice(-s.uploads)), from: "result timings_ms (wall time in the pool)" };
    return sideReport("ours", s.workers, target, s, measured, kernel, threads);
  } finally {
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
 * A multipart/form-data body holding `fields` and then `bytes` as the field "file", built whole and sent with its
 * Content-Length, as curl and Python's requests send a file. Deno's fetch streams a FormData body in pieces instead,
 * and on loopback about 5 % of those stall for a delayed ACK (40 ms) before the server has the whole body: a cost of
 * this client, which it would add to every service it measures.
 */
export function multipartBody(
  name: string,
  bytes: Uint8Array,
  fields: Record<string, string> = {},
): { body: Uint8Array<ArrayBuffer>; type: string } {
  const boundary = `----bench${crypto.randomUUID().replaceAll("-", "")}`;
  const encoder = new TextEncoder();
  const head = encoder.encode(
    Object.entries(fields).map(([field, value]) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${field}"\r\n\r\n${value}\r\n`
    ).join("") +
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

/** Waits until the service's health reports at least one worker, for up to `ms`. */
export async function waitForWorkers(base: string, ms: number): Promise<void> {
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
 * uploads nor OpenCV's start-up share the clock: this is what adding cores or worker processes buys. It counts the
 * analysis only: nobody fetches anything, and with RENDER=lazy nothing is drawn either.
 */
export async function benchDrain(s: EndToEndSettings & { render: "lazy" | "eager" }): Promise<DrainReport> {
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
