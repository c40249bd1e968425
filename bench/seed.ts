import { Redis } from "ioredis";
import { sparePort } from "../tests/harness.ts";
import { type EndToEndReport, endToEndReport, type EndToEndSettings, uploadAll } from "./e2e.ts";
import { cpuPerImage, cpuTimes } from "./stats.ts";

const PYTHON = "/usr/bin/python3";
const SEED_DIR = new URL("./seed/", import.meta.url);
/** The seed's broker lives in a Redis database of its own, so Celery's fixed key names meet nothing of ours. */
const SEED_DB = 15;

/** Whether the seed's stack can run here: Debian's python3 with cv2, FastAPI, Celery, uvicorn, multipart, redis. */
export async function seedAvailable(): Promise<boolean> {
  const probe = await new Deno.Command(PYTHON, {
    args: ["-c", "import cv2, fastapi, celery, uvicorn, multipart, redis"],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => null);
  return probe?.success ?? false;
}

/**
 * The same end-to-end run as benchEndToEnd, against a reconstruction of the seed's stack (bench/seed/seed.py: FastAPI
 * on uvicorn, Celery prefork ×2, native OpenCV, every image drawn and written as PNG) on the same Redis server.
 * Completion times come from the Celery tasks themselves (epoch ms pushed to a Redis list).
 */
export async function benchSeed(
  s: EndToEndSettings,
  redisHost: string,
  redisPort: number,
): Promise<EndToEndReport> {
  const port = sparePort();
  const queue = `seedbench-${crypto.randomUUID()}`;
  await Deno.mkdir(s.scratch, { recursive: true });
  const env = {
    SEED_REDIS_URL: `redis://${redisHost}:${redisPort}/${SEED_DB}`,
    SEED_QUEUE: queue,
    SEED_DIR: await Deno.realPath(s.scratch),
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
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
  ]);
  const logs = [api, workers].map((p) => new Response(p.stderr).text());
  const base = `http://127.0.0.1:${port}`;
  let failed = false;
  try {
    await redis.connect();
    const until = Date.now() + 60_000;
    const up = async () =>
      (await redis.llen(`${queue}:ready`)) >= s.workers &&
      await fetch(`${base}/health`).then((r) => (r.body?.cancel(), r.ok), () => false);
    while (!(await up())) {
      if (Date.now() > until) throw new Error("the seed's stack did not come up within 60 s (its output follows)");
      await new Promise((r) => setTimeout(r, 200));
    }

    /** Waits for `count` tasks to finish; their finish times as performance.now() values, and the failures. */
    const collect = async (count: number) => {
      const finished = new Map<string, number>();
      let failures = 0;
      const deadline = Date.now() + 600_000;
      while (finished.size < count) {
        const popped = await redis.blpop(`${queue}:done`, 1);
        if (popped) {
          const done = JSON.parse(popped[1]) as { id: string; t: number; ok: boolean };
          // Epoch milliseconds from Python, on this machine's clock.
          finished.set(done.id, done.t - performance.timeOrigin);
          if (!done.ok) failures++;
        }
        if (Date.now() > deadline) throw new Error(`only ${finished.size} of ${count} seed tasks finished`);
      }
      return { finished, failures };
    };
    if (s.warmup) {
      const warm = await uploadAll(base, { ...s, uploads: s.warmup }, () => {});
      await collect(s.warmup - warm.refused);
    }
    const started = new Map<string, number>();
    const cpu = cpuTimes();
    const run = await uploadAll(base, s, (id, begin) => started.set(id, begin));
    const { finished, failures } = await collect(started.size);
    return endToEndReport(s, run, started, finished, failures, cpuPerImage(cpu, cpuTimes(), s.uploads));
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    for (const p of [api, workers]) {
      try {
        p.kill("SIGTERM");
      } catch {
        // already gone
      }
      await p.status;
    }
    // The processes' own words, read to the end once they have exited; shown when the run did not get through.
    const output = (await Promise.all(logs)).join("\n");
    if (failed) console.error(output.slice(-4000));
    const keys = [queue, `${queue}:done`, `${queue}:ready`, `_kombu.binding.${queue}`];
    await redis.del(...keys).catch(() => {});
    redis.disconnect();
    await Deno.remove(s.scratch, { recursive: true }).catch(() => {});
  }
}
