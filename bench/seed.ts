import { Redis } from "ioredis";
import { sparePort } from "../tests/harness.ts";
import { type ClientSettings, type SideReport, sideReport, type Target, warmAndRun } from "./e2e.ts";

const PYTHON = "/usr/bin/python3";
const SEED_DIR = new URL("./seed/", import.meta.url);
/** The original's broker and results live in a Redis database of their own, so Celery's key names meet none of ours. */
const SEED_DB = 15;

/** Whether the original's stack can run here: Debian's python3 with cv2, FastAPI, Celery, uvicorn, multipart, redis. */
export async function seedAvailable(): Promise<boolean> {
  const probe = await new Deno.Command(PYTHON, {
    args: ["-c", "import cv2, fastapi, celery, uvicorn, multipart, redis"],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => null);
  return probe?.success ?? false;
}

/** How a client reads the original's status answers (Celery's states through AsyncResult). */
function readSeedStatus(status: unknown): ReturnType<Target["read"]> {
  const s = status as { status?: string; result_url?: string; error?: string };
  if (s.status === "SUCCESS") return { state: "completed", url: s.result_url! };
  if (s.status === "FAILURE") return { state: "failed", reason: `task failed: ${s.error ?? "unknown"}` };
  return { state: "pending" };
}

/**
 * Runs the client against the original's stack rebuilt in bench/seed/seed.py (FastAPI on uvicorn, Celery prefork with
 * `workers` processes, native OpenCV writing the annotated image as JPEG or PNG) on the same Redis server. The kernel's
 * CPU is what each task measured on its own thread from imread to imwrite, read back from the result backend.
 */
export async function benchSeed(
  s: ClientSettings & { workers: number; scratch: string },
  format: "jpeg" | "png",
  redisHost: string,
  redisPort: number,
): Promise<SideReport> {
  const port = sparePort();
  const queue = `seedbench-${crypto.randomUUID()}`;
  await Deno.mkdir(s.scratch, { recursive: true });
  const dir = await Deno.realPath(s.scratch);
  const env = {
    SEED_REDIS_URL: `redis://${redisHost}:${redisPort}/${SEED_DB}`,
    SEED_QUEUE: queue,
    SEED_DIR: dir,
    SEED_FORMAT: format === "jpeg" ? "jpg" : "png",
    PYTHONDONTWRITEBYTECODE: "1",
  };
  const spawn = (args: string[]) =>
    new Deno.Command(PYTHON, { args, cwd: SEED_DIR, env, stdout: "null", stderr: "piped" }).spawn();
  const redis = new Redis({ host: redisHost, port: redisPort, db: SEED_DB, lazyConnect: true });
  redis.on("error", () => {});
  const api = spawn([
    "-m",
    "uvicorn",
    "seed:api",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--log-level",
    "warning",
  ]);
  const workers = spawn([
    "-m",
    "celery",
    "-A",
    "seed",
    "worker",
    "--pool",
    "prefork",
    "--concurrency",
    String(s.workers),
    "--loglevel",
    "WARNING",
    // Worker-to-worker chatter, idle with a single worker; off as in the earlier runs, so the broker carries tasks only.
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
  ]);
  const logs = [api, workers].map((p) => new Response(p.stderr).text());
  const base = `http://127.0.0.1:${port}`;
  const target: Target = { base, fields: {}, fetched: format, read: readSeedStatus };
  const taskIds: string[] = [];
  let failed = false;
  try {
    await redis.connect();
    const until = Date.now() + 60_000;
    const up = async () =>
      (await redis.llen(`${queue}:ready`)) >= s.workers &&
      await fetch(`${base}/health`).then((r) => (r.body?.cancel(), r.ok), () => false);
    while (!(await up())) {
      if (Date.now() > until) throw new Error("the original's stack did not come up within 60 s (its output follows)");
      await new Promise((r) => setTimeout(r, 200));
    }
    const deadline = Date.now() + 600_000;
    const measured = await warmAndRun(target, s, deadline, () => Promise.resolve(null));
    const ids = (tasks: { task_id?: string }[]) => tasks.flatMap((t) => t.task_id ? [t.task_id] : []);
    taskIds.push(...ids(measured.warm), ...ids(measured.run.tasks));
    const kernel = await kernelCpu(redis, ids(measured.run.tasks));
    const from = "each task's thread_time, imread to imwrite";
    return sideReport("original", s.workers, target, s, measured, { ms: kernel / s.uploads, from });
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await stop(api, workers);
    // The processes' own words, read to the end once they have exited; shown when the run did not get through.
    const output = (await Promise.all(logs)).join("\n");
    if (failed) console.error(output.slice(-4000));
    await cleanUp(redis, queue, dir, taskIds).catch(() => {});
    redis.disconnect();
    await Deno.remove(s.scratch, { recursive: true }).catch(() => {});
  }
}

/** The kernel CPU (ms) the tasks reported through the result backend, summed. */
async function kernelCpu(redis: Redis, ids: string[]): Promise<number> {
  let sum = 0;
  for (let i = 0; i < ids.length; i += 100) {
    const metas = await redis.mget(...ids.slice(i, i + 100).map((id) => `celery-task-meta-${id}`));
    for (const meta of metas) {
      const ms = meta && JSON.parse(meta).result?.kernel_cpu_ms;
      if (typeof ms === "number") sum += ms;
    }
  }
  return sum;
}

/** SIGTERM, and SIGKILL for whatever has not exited 15 s later (Celery waits for its tasks, which are short here). */
async function stop(...processes: Deno.ChildProcess[]): Promise<void> {
  await Promise.all(processes.map(async (p) => {
    try {
      p.kill("SIGTERM");
    } catch {
      return; // already gone
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), 15_000)));
    if (await Promise.race([p.status, late]) === "late") p.kill("SIGKILL");
    clearTimeout(timer);
    await p.status;
  }));
}

/**
 * Removes the run's keys: the queue, its binding and ready list, and the results Celery keeps for a day, both those of
 * tasks the client knows and any other whose result points into this run's folder (a task whose upload answer was
 * lost). Only this run's: another run may be using the same database.
 */
async function cleanUp(redis: Redis, queue: string, dir: string, taskIds: string[]): Promise<void> {
  const keys = [queue, `${queue}:ready`, `_kombu.binding.${queue}`, ...taskIds.map((id) => `celery-task-meta-${id}`)];
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  let cursor = "0";
  const until = Date.now() + 30_000;
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", "celery-task-meta-*", "COUNT", 1000);
    cursor = next;
    const values = found.length ? await redis.mget(...found) : [];
    const ours = found.filter((_, i) => values[i]?.includes(JSON.stringify(`${dir}/`).slice(1, -1)));
    if (ours.length) await redis.del(...ours);
  } while (cursor !== "0" && Date.now() < until);
}
