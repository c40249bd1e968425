import { DelayedError, type Job, UnrecoverableError, WaitingError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { type Config, loadConfig, redisSeeds } from "./config.ts";
import { TIMED_OUT, withDeadline } from "./deadline.ts";
import { ImageError } from "./imaging/image_error.ts";
import {
  AnalysisCancelledError,
  type AnalysisPool,
  AnalysisTimeoutError,
  createAnalysisPool,
  PoolClosedError,
} from "./imaging/pool.ts";
import { createCallbackQueue, enqueueCallback, startCallbackWorker } from "./callbacks/callback_queue.ts";
import { configureLog, log } from "./log.ts";
import { CANCELLED_FAILURE, cancelledBefore, jobKey, subscribeCancellations } from "./queue/cancel.ts";
import { closeRedis, createRedis } from "./queue/connection.ts";
import { type ContourJob, ContourJobSchema, type ContourSummary } from "./queue/job.ts";
import { createContourQueue, formatFailure, getTaskStatus } from "./queue/contour_queue.ts";
import { serviceKeys } from "./queue/keys.ts";
import { redisAnswers } from "./queue/redis_probe.ts";
import { recordResult } from "./queue/results_index.ts";
import { isDiskFull, withoutPaths } from "./storage/disk.ts";
import { resultNames } from "./storage/files.ts";
import { createLocalStore, createObjectStore, type ObjectStore, StorageUnavailable } from "./storage/object_store.ts";
import { removeResults } from "./storage/results.ts";
import { scheduleRetention } from "./storage/retention.ts";
import { storeSource } from "./sources/fetch_source.ts";
import { queueTelemetry, recordStageSpans } from "./tracing.ts";

/** Jobs a worker process holds per pool member: one being analysed, one around it in I/O. */
const JOBS_PER_MEMBER = 2;

/** A running worker pool and how to stop it. */
export interface ContourWorker {
  worker: Worker<ContourJob, ContourSummary>;
  /** The OpenCV.js version the pool runs. */
  opencvVersion: string;
  /** The analysis pool (the API renders lazily drawn images on it when the worker is embedded). */
  pool: AnalysisPool;
  /**
   * Hands jobs not yet being analysed back to the queue at once, waits for analyses under way up to `graceMs`, then
   * cuts them off and hands them back too; never hangs on an unreachable Redis.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Processes one contour job: decode → contours → annotated PNG + JSON in the store (RESULT_DIR or the bucket). Throws
 * AnalysisCancelledError once `signal` is aborted or the task's cancellation is found in Redis.
 */
export async function processContourJob(
  config: Config,
  redis: Redis,
  pool: AnalysisPool,
  job: Job<ContourJob, ContourSummary>,
  store: ObjectStore = createLocalStore(config),
  signal?: AbortSignal,
): Promise<ContourSummary> {
  const started = performance.now();
  const parsed = ContourJobSchema.safeParse(job.data);
  // A payload of another shape (a producer of another version, a job added by hand) fails alike on every attempt.
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.join(".") || "payload";
    throw new UnrecoverableError(
      formatFailure("invalid_job", `the job's payload is not valid: ${field}: ${issue.message}`),
    );
  }
  let data = parsed.data;
  let bytes: Uint8Array | null;
  // An upload by source_url is downloaded here, once, then stored and processed as any upload.
  if (data.upload_path) bytes = await store.readAt(data.upload_path);
  else ({ data, bytes } = await storeSource(config, store, job, data, { signal }));
  if (!bytes) throw new UnrecoverableError(formatFailure("upload_missing", "the uploaded file no longer exists"));
  log("debug", "job started", { request_id: data.request_id, task_id: data.task_id, attempt: job.attemptsMade + 1 });
  let analysed;
  try {
    // The upload route checked the header too, but this worker may be the only check (an older API, a bad header).
    analysed = await pool.analyse(
      bytes,
      data.options,
      config.MAX_PIXELS,
      { task_id: data.task_id, filename: data.filename },
      renderEagerly(config, data),
      signal,
    );
  } catch (err) {
    // The same bytes would fail the same way again: no retries.
    if (err instanceof ImageError) throw new UnrecoverableError(formatFailure(err.code, err.message));
    // Nor would the image that stuck (or slowed) a member finish the next time.
    if (err instanceof AnalysisTimeoutError) {
      const reason = `the analysis took longer than ANALYSIS_TIMEOUT_MS (${err.timeoutMs} ms) and was stopped`;
      throw new UnrecoverableError(formatFailure("timeout", reason));
    }
    throw err;
  }
  if (signal?.aborted) throw new AnalysisCancelledError();
  const { report, image, document, polygons } = analysed;
  recordStageSpans(config, analysed.startedAt, report.timings_ms);
  const names = resultNames(data.task_id, data.options.output_format);
  const finishedAt = new Date().toISOString();
  // Named after the task id and overwritten, so a retried job writes the same files, never a second result.
  // Lazily rendered images are drawn on their first request (routes/static.ts), from the upload and the document (or
  // the packed polygons a large result keeps); those are written before the document, whose presence tells the task's
  // result is there.
  if (image) await store.write("results", names.image, image);
  if (polygons) await store.write("results", names.polygons, polygons);
  await store.write("results", names.data, document);
  const summary: ContourSummary = {
    task_id: data.task_id,
    filename: data.filename,
    ...(data.source_url ? { source_url: data.source_url } : {}),
    format: report.format,
    width: report.width,
    height: report.height,
    threshold: report.threshold,
    contour_count: report.contour_count,
    contours_found: report.contours_found,
    truncated: report.truncated,
    top_level_count: report.top_level_count,
    total_points: report.total_points,
    total_area: report.total_area,
    mean_area: report.mean_area,
    result_url: `/static/results/${names.image}`,
    data_url: `/static/results/${names.data}`,
    contours_url: `/api/v1/images/contours/${data.task_id}`,
    decode: report.decode,
    options: data.options,
    finished_at: finishedAt,
    timings_ms: { ...report.timings_ms, total: Math.round((performance.now() - started) * 100) / 100 },
  };
  // Cancelled while the files were written: the caller removes them. The cancel message may have been missed (the
  // subscription was reconnecting): the mark it follows is not, and the result is kept only where there is none.
  if (signal?.aborted) throw new AnalysisCancelledError();
  if (!await recordResult(redis, serviceKeys(config), summary, jobKey(job))) throw new AnalysisCancelledError();
  log("info", "job completed", {
    request_id: data.request_id,
    task_id: data.task_id,
    contours: report.contour_count,
    ms: summary.timings_ms.total,
  });
  return summary;
}

/** Whether the worker draws this job's annotated image (else it is drawn on its first request). */
function renderEagerly(config: Config, job: ContourJob): boolean {
  return (job.render ?? config.RENDER) === "eager";
}

/**
 * Starts a BullMQ worker with WORKER_CONCURRENCY slots, each backed by a Web Worker with its own OpenCV.js: the images
 * are processed in parallel on every core, and this thread stays free to renew job locks.
 */
export async function startContourWorker(config: Config, givenStore?: ObjectStore): Promise<ContourWorker> {
  const store = givenStore ?? await createObjectStore(config);
  await store.prepare();
  // Initialised before taking jobs, so the first job does not pay OpenCV's start-up.
  const pool = await createAnalysisPool(config.WORKER_CONCURRENCY, config.WORKER_NICE, {
    timeoutMs: config.ANALYSIS_TIMEOUT_MS,
    maxContours: config.MAX_CONTOURS_STORED,
    memberMaxBytes: config.ANALYSIS_MEMBER_MAX_MIB * 2 ** 20,
  });
  const connection = createRedis(config, "worker");
  const indexRedis = createRedis(config, "worker");
  // Final states notify the client's callback_url (if any) with exactly what GET /status shows.
  const callbackRedis = createRedis(config, "worker");
  const statusQueue = createContourQueue(config, callbackRedis);
  const callbackQueue = createCallbackQueue(config, callbackRedis);
  const callbackConnection = createRedis(config, "worker");
  const callbackWorker = startCallbackWorker(config, callbackConnection, (id) => getTaskStatus(statusQueue, id));
  const queueCallback = async (job: Job<ContourJob, ContourSummary>) => {
    if (!job.data.callback_url || !job.id) return;
    await enqueueCallback(callbackQueue, config, {
      task_id: job.id,
      url: job.data.callback_url,
      request_id: job.data.request_id,
    });
  };
  const queueCallbackLogged = (job: Job<ContourJob, ContourSummary>) =>
    queueCallback(job).catch((err) => log("warn", "could not queue callback", { task_id: job.id, error: String(err) }));
  /** Ends a cancelled job as failed (never retried), without what it had written, and queues its callback. */
  const endCancelled = async (job: Job<ContourJob, ContourSummary>): Promise<never> => {
    // The upload stays as any failed task's does, until UPLOAD_TTL_HOURS.
    await removeResults(store, job.data.task_id ?? job.id).catch((err) =>
      log("warn", "could not remove a cancelled job's files", { task_id: job.id, error: String(err) })
    );
    await queueCallbackLogged(job);
    log("info", "job cancelled", { request_id: job.data.request_id, task_id: job.id });
    throw new UnrecoverableError(CANCELLED_FAILURE);
  };
  let stopping = false;
  const worker = new Worker<ContourJob, ContourSummary>(
    config.QUEUE_NAME,
    // Three parameters declared: BullMQ passes the AbortSignal (which cancelJob aborts) only to a processor whose
    // length says it takes one.
    async (job, token, signal) => {
      // The callback is queued before the job's end is recorded, so a worker dying in between cannot lose it: the
      // job is taken up again, and the callback, which waits for the task's final state, is sent once it ends.
      try {
        // Cancelled while it waited for a retry, or while a worker that has stopped since had it.
        if (await cancelledBefore(indexRedis, job)) throw new AnalysisCancelledError();
        // Fetched while the worker was being closed: another worker (or this one restarted) should have it.
        if (stopping) throw new PoolClosedError(false);
        const summary = await processContourJob(config, indexRedis, pool, job, store, signal);
        await queueCallback(job);
        return summary;
      } catch (err) {
        if (err instanceof AnalysisCancelledError || signal?.aborted) return await endCancelled(job);
        if (err instanceof PoolClosedError) return await handBack(job, token, err);
        if (isDiskFull(err)) await waitForRoom(job, token, err as Error, config.DISK_FULL_RETRY_SECONDS);
        // Retried like any transient error; the reason says which, should every attempt meet it.
        if (err instanceof StorageUnavailable) err.message = formatFailure("storage_unavailable", err.message);
        // The reason is shown to clients (GET /status) and callbacks: no server paths in it.
        if (err instanceof Error) err.message = withoutPaths(err.message);
        if (isFinalFailure(job, err as Error)) await queueCallbackLogged(job);
        throw err;
      }
    },
    {
      connection,
      prefix: config.QUEUE_PREFIX,
      // Two jobs per pool member: while one is analysed, the next is read and the last one's files and Redis
      // updates are written, so a member never waits on this thread's I/O (bench: images/s with 1 member).
      concurrency: config.WORKER_CONCURRENCY * JOBS_PER_MEMBER,
      autorun: true,
      lockDuration: config.LOCK_DURATION_MS,
      // Checked twice per lock period, so a dead worker's job is back in the queue within ~1.5 lock durations.
      stalledInterval: Math.max(500, Math.floor(config.LOCK_DURATION_MS / 2)),
      // Each job's `process` span continues the trace of the upload that queued it (OTEL_DENO).
      telemetry: queueTelemetry(config),
    },
  );
  worker.on("error", (err) => {
    if (!reportLostJob(err)) log("warn", "worker connection error", { error: err.message });
  });
  // Whichever process runs a cancelled task hears of it here; for every other one the message is a no-op.
  const cancellations = subscribeCancellations(config, (taskId) => {
    if (worker.cancelJob(taskId, "cancelled")) log("info", "stopping a cancelled job", { task_id: taskId });
  });
  // A cancellation published before the subscription is in place is still found, later, by the mark it follows.
  await withDeadline(cancellations.ready, 5000);
  worker.on("failed", (job, err) => {
    if (reportLostJob(err, job)) return;
    log("warn", "job failed", {
      request_id: job?.data.request_id,
      task_id: job?.id,
      attempts: job?.attemptsMade,
      error: err.message,
    });
  });
  worker.on("completed", async (job) => {
    // The upload is no longer needed once its annotated image exists (unless the operator keeps them); a lazily
    // rendered one needs it until then, and the retention sweep removes it afterwards.
    if (!config.KEEP_UPLOADS && renderEagerly(config, job.data)) {
      if (job.data.upload_path) await store.removeAt(job.data.upload_path, { reuse: true }).catch(() => {});
    }
  });
  // A job failed outside its processor (stalled too often) reaches only this handler; queueing again is a no-op.
  worker.on("failed", async (job, err) => {
    if (job && isFinalFailure(job, err, true)) await queueCallbackLogged(job);
  });
  // One sweep per interval for the whole deployment, taken by whichever worker process is free.
  const retention = scheduleRetention(config, statusQueue, indexRedis, store);
  return {
    worker,
    opencvVersion: pool.opencvVersion,
    pool,
    async close(graceMs = config.WORKER_GRACE_MS) {
      // Jobs still waiting for a pool member go back now, so the grace period is spent only on analyses under way.
      stopping = true;
      pool.stopStarting();
      // Active jobs and deliveries may finish within the grace period; after it, or at once with Redis gone
      // (close() would wait out the whole period for nothing), the workers are forced shut.
      await Promise.all([
        closeWorker(worker, connection.status === "ready" ? graceMs : 0, () => pool.close()),
        closeWorker(callbackWorker, callbackConnection.status === "ready" ? graceMs : 0),
      ]);
      await retention.close();
      await cancellations.close();
      pool.close();
      for (const r of [callbackConnection, callbackRedis, indexRedis, connection]) await closeRedis(r);
    },
  };
}

/**
 * Whether a job's failure is its last: no retries (an UnrecoverableError) or none left. `settled` is true once BullMQ
 * has counted the attempt (in its "failed" event), false inside the processor.
 */
function isFinalFailure(job: Job, err: Error, settled = false): boolean {
  const attempts = job.attemptsMade + (settled ? 0 : 1);
  return err.name === "UnrecoverableError" || attempts >= (job.opts.attempts ?? 1);
}

/**
 * Puts a job this worker stopped before finishing back at the head of the queue, without using up an attempt: it was
 * never analysed to the end, so nothing about the job itself failed.
 */
async function handBack(job: Job<ContourJob>, token: string | undefined, err: PoolClosedError): Promise<never> {
  try {
    if (!token) throw new Error("no lock token");
    // The move checks this worker's lock in the same Redis script, so a job another worker has taken up meanwhile
    // (this one's lock expired) is left alone: never processed twice at once.
    await job.moveToWait(token);
    log("info", "job returned to the queue", {
      request_id: job.data.request_id,
      task_id: job.id,
      cut_off: err.started,
    });
  } catch (moveErr) {
    // Left active, the job is taken up again once its lock expires, as after a crash; failing it would use an attempt.
    log("warn", "could not return a job to the queue", { task_id: job.id, error: String(moveErr) });
  }
  // BullMQ takes this as "already moved": it neither completes nor fails the job.
  throw new WaitingError();
}

/**
 * Delays a job that ran out of disk by `seconds` without using an attempt (BullMQ's moveToDelayed skips the count):
 * the usual exponential backoff would spend every attempt within seconds, long before anyone could make room. Returns
 * (so the error is thrown as a failed attempt) only when the job cannot be moved.
 */
async function waitForRoom(job: Job<ContourJob>, token: string | undefined, err: Error, seconds: number) {
  log("error", "disk full: the job waits for room", {
    request_id: job.data.request_id,
    task_id: job.id,
    retry_in_s: seconds,
    error: withoutPaths(err.message),
  });
  try {
    if (!token) throw new Error("no lock token");
    await job.moveToDelayed(Date.now() + seconds * 1000, token);
  } catch (moveErr) {
    log("warn", "could not delay a job", { task_id: job.id, error: String(moveErr) });
    return;
  }
  // BullMQ takes this as "already moved": it neither completes nor fails the job.
  throw new DelayedError();
}

// BullMQ's words when a job's keys vanished under its worker (a Redis restarted without persistence, a FLUSHALL).
const LOST_JOB = /Missing key for job ([^\s.]+)/;

/**
 * Logs a job whose Redis keys are gone as the error it is, naming the task; false for any other error. The task can
 * neither finish nor be retried: GET /status answers 404 for it.
 */
export function reportLostJob(err: Error, job?: Job<ContourJob>): boolean {
  const lost = LOST_JOB.exec(err.message);
  if (!lost) return false;
  log("error", "job lost: its Redis keys are gone", {
    task_id: job?.id ?? lost[1],
    request_id: job?.data?.request_id,
    error: err.message,
  });
  return true;
}

/**
 * Closes a BullMQ worker, forcing it after `graceMs`; `cutOff` then ends the jobs still running, which are given 1 s to
 * settle. Never waits more than `graceMs` + 1 s in all.
 */
async function closeWorker(worker: Worker, graceMs: number, cutOff?: () => void): Promise<void> {
  if (graceMs > 0 && await withDeadline(worker.close(), graceMs) !== TIMED_OUT) return;
  if (graceMs > 0) log("warn", "worker did not stop within the grace period; forcing", { grace_ms: graceMs });
  cutOff?.();
  // After a graceful close() has begun this is the same close, which ends once the cut-off jobs are handed back.
  await withDeadline(worker.close(true).catch(() => {}), 1000);
}

if (import.meta.main) {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error((err as Error).message);
    Deno.exit(2);
  }
  configureLog({ pretty: config.DEBUG, tracing: config.OTEL_DENO, level: config.LOG_LEVEL });
  // Listened for before the worker starts: it takes jobs before it has finished starting, and a signal then must
  // still hand them back or let them finish, not end the process under them.
  let starting: Promise<ContourWorker> | undefined;
  const stop = async (signal: string) => {
    log("info", "worker stopping", { signal });
    const contourWorker = await starting?.catch(() => undefined);
    await contourWorker?.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  try {
    // A worker may start before Redis and keeps trying to reach it; a Redis --allow-net forbids would never answer.
    const [{ host, port }] = redisSeeds(config);
    await redisAnswers(host, port);
    starting = startContourWorker(config);
    await starting;
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(1);
  }
  log("info", "worker started", {
    queue: config.QUEUE_NAME,
    prefix: config.QUEUE_PREFIX,
    concurrency: config.WORKER_CONCURRENCY,
  });
}
