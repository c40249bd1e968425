/**
 * What one job costs the shared parts of a fleet: Redis commands, bytes and CPU, object-storage requests and bytes,
 * and worker CPU. Starts a private redis-server (so INFO counts this run alone), s3rver (STORAGE=s3), one API
 * process and 1..n `worker.ts` processes of one pool member each, uploads `--jobs` images and reads every counter
 * before and after. docs/scaling.md is written from its output.
 *
 * ```sh
 * deno task bench:fleet                   # 1 and 2 workers, 300 jobs each
 * deno task bench:fleet --workers=2 --jobs=100
 * ```
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startPrivateRedis } from "../dev/private_redis.ts";
import { sparePort, taskFlags } from "../tests/harness.ts";
import { startS3rver } from "../tests/s3rver.ts";
import { multipartBody } from "./e2e.ts";
import { cpuTimes, markdownTable, redisCpu, round, threadCpu } from "./stats.ts";

const HERE = new URL(".", import.meta.url).pathname;
const PROJECT = new URL("..", import.meta.url).pathname;

/** One run's counters, per job. */
export interface FleetReport {
  workers: number;
  jobs: number;
  jobs_per_s: number;
  redis: {
    commands: number;
    /** Commands by name (the ten most used). */
    top: Record<string, number>;
    /** Time Redis spent inside the commands (commandstats usec). */
    command_us: number;
    /** The server's own CPU (INFO cpu, user + sys). */
    cpu_us: number;
    bytes_in: number;
    bytes_out: number;
  };
  /** Requests the bucket served, the bytes of its answers, and the bytes written to it. */
  s3: { requests: number; bytes_served: number; bytes_stored: number };
  /** Worker processes' CPU, all threads. */
  worker_cpu_ms: number;
  /** The API process's CPU (upload, checks, enqueue). */
  api_cpu_ms: number;
  /** s3rver's CPU (Node; a real bucket's is not the fleet's). */
  s3rver_cpu_ms: number;
  /** Every core of the machine, busy and in all, per job: what the run had, to compare the sum of the above with. */
  machine_cpu_ms: { busy: number; total: number };
  /** One status read (GET /status): Redis commands, and µs inside them. */
  status_read_commands: number;
  status_read_us: number;
  /** Redis memory each finished job holds until RESULT_TTL_HOURS (job hash, results index, summary, events). */
  memory_bytes: number;
}

async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const m of (await redis.info("commandstats")).matchAll(/^cmdstat_(\S+?):calls=(\d+),usec=(\d+)/gm)) {
    out.set(m[1], { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await redis.info("memory"))?.[1] ?? 0);
}

async function netBytes(redis: Redis): Promise<{ in: number; out: number }> {
  const text = await redis.info("stats");
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(text)?.[1] ?? 0);
  return { in: field("total_net_input_bytes"), out: field("total_net_output_bytes") };
}

const busy = (t: { niced: number; normal: number }) => t.niced + t.normal;
const cpuOf = async (pid: number) => Object.values(await threadCpu(pid)).reduce((a, b) => a + b, 0);

/** Runs `jobs` uploads through one API and `workers` worker processes on s3rver; returns the costs per job. */
export async function benchFleet(workers: number, jobs: number, scratch: string): Promise<FleetReport> {
  await Deno.mkdir(scratch, { recursive: true });
  const redisPort = sparePort();
  const privateRedis = await startPrivateRedis(redisPort, join(scratch, "redis"));
  const s3 = await startS3rver("bip-fleet", { dir: join(scratch, "s3"), count: true });
  const procs: Deno.ChildProcess[] = [];
  const redis = new Redis({ host: "127.0.0.1", port: redisPort, lazyConnect: true });
  try {
    await redis.connect();
    // The private server persists to disk by default; nothing here needs it, and its fsyncs would count as Redis CPU.
    await redis.config("SET", "appendonly", "no");
    const env = (role: string) => ({
      ...s3.env,
      HOST: "127.0.0.1",
      REDIS_PORT: String(redisPort),
      REDIS_AUTOSTART: "false",
      UPLOAD_DIR: join(scratch, role, "uploads"),
      RESULT_DIR: join(scratch, role, "results"),
      EMBEDDED_WORKER: "false",
      WORKER_CONCURRENCY: "1",
      RATE_LIMIT: "0",
    });
    const spawn = async (task: "start" | "worker", script: string, e: Record<string, string>, role: string) => {
      const child = new Deno.Command("deno", {
        args: ["run", ...await taskFlags(task, e), `--allow-write=${join(scratch, role)}`, script],
        cwd: PROJECT,
        env: e,
        stdout: "null",
        stderr: Deno.env.get("FLEET_DEBUG") ? "inherit" : "null",
      }).spawn();
      procs.push(child);
      return child;
    };
    const port = sparePort();
    const api = await spawn("start", "main.ts", { ...env("api"), PORT: String(port) }, "api");
    const workerProcs = [];
    for (let i = 0; i < workers; i++) {
      workerProcs.push(await spawn("worker", "worker.ts", env(`worker-${i}`), `worker-${i}`));
    }
    const base = `http://127.0.0.1:${port}`;
    const until = Date.now() + 120_000;
    while ((await fetch(`${base}/api/v1/health/worker`).then((r) => r.json(), () => ({}))).workers !== workers) {
      if (Date.now() > until) throw new Error("the workers did not connect within 120 s");
      await new Promise((r) => setTimeout(r, 200));
    }
    const image = await Deno.readFile(join(PROJECT, "tests/fixtures/coins.png"));
    const results = "bip:contours:results";
    const run = async (n: number) => {
      const before = await redis.zcard(results);
      let next = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < n) {
          next++;
          const { body, type } = multipartBody("coins.png", image);
          const res = await fetch(`${base}/api/v1/images/upload`, {
            method: "POST",
            body,
            headers: { "content-type": type },
          });
          if (res.status !== 202) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
          await res.body?.cancel();
        }
      }));
      // Completion is read from the results index, one command per 50 ms: the client adds next to nothing.
      const deadline = Date.now() + 600_000;
      while (await redis.zcard(results) < before + n) {
        if (Date.now() > deadline) throw new Error("the jobs did not finish within 10 minutes");
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await run(20);
    const stats0 = await commandStats(redis);
    const [cpu0, net0, s3req0, s3bytes0] = [
      await redisCpu(redis),
      await netBytes(redis),
      s3.served.requests,
      s3.served.bytes,
    ];
    const memory0 = await usedMemory(redis);
    const api0 = await cpuOf(api.pid);
    const s3cpu0 = await cpuOf(s3.pid!);
    const machine0 = cpuTimes();
    const workers0 = await Promise.all(workerProcs.map((w) => cpuOf(w.pid)));
    const t0 = performance.now();
    await run(jobs);
    const seconds = (performance.now() - t0) / 1000;
    const [cpu1, net1, s3req1, s3bytes1] = [
      await redisCpu(redis),
      await netBytes(redis),
      s3.served.requests,
      s3.served.bytes,
    ];
    const stats1 = await commandStats(redis);
    const memory1 = await usedMemory(redis);
    const api1 = await cpuOf(api.pid);
    const s3cpu1 = await cpuOf(s3.pid!);
    const machine1 = cpuTimes();
    const workers1 = await Promise.all(workerProcs.map((w) => cpuOf(w.pid)));
    const delta = [...stats1].map(([name, s]) => ({
      name,
      calls: s.calls - (stats0.get(name)?.calls ?? 0),
      usec: s.usec - (stats0.get(name)?.usec ?? 0),
    })).filter((d) => d.calls > 0).sort((a, b) => b.calls - a.calls);
    // The bench's own reads (ZCARD polls, INFO) are not the service's.
    const own = new Set(["zcard", "info", "config"]);
    const service = delta.filter((d) => !own.has(d.name));
    // What each job writes to the bucket: the upload, then its annotated image and result document.
    const anyId = (await redis.zrevrange(results, 0, 0))[0];
    let stored = image.length;
    for (const name of [`${anyId}.png`, `${anyId}.json`]) {
      stored += (await (await fetch(`${base}/static/results/${name}`)).arrayBuffer()).byteLength;
    }
    const statusBefore = await commandStats(redis);
    for (let i = 0; i < 100; i++) await (await fetch(`${base}/api/v1/images/status/${anyId}`)).body?.cancel();
    const statusAfter = await commandStats(redis);
    const statusDelta = (field: "calls" | "usec") =>
      [...statusAfter].reduce(
        (sum, [name, s]) => sum + (own.has(name) ? 0 : s[field] - (statusBefore.get(name)?.[field] ?? 0)),
        0,
      );
    return {
      workers,
      jobs,
      jobs_per_s: round(jobs / seconds, 1),
      redis: {
        commands: round(service.reduce((a, d) => a + d.calls, 0) / jobs, 1),
        top: Object.fromEntries(service.slice(0, 10).map((d) => [d.name, round(d.calls / jobs, 2)])),
        command_us: round(service.reduce((a, d) => a + d.usec, 0) / jobs, 1),
        cpu_us: round((cpu1 - cpu0) * 1000 / jobs, 0),
        bytes_in: round((net1.in - net0.in) / jobs, 0),
        bytes_out: round((net1.out - net0.out) / jobs, 0),
      },
      s3: {
        requests: round((s3req1 - s3req0) / jobs, 2),
        bytes_served: round((s3bytes1 - s3bytes0) / jobs, 0),
        bytes_stored: stored,
      },
      worker_cpu_ms: round(workers1.reduce((a, c, i) => a + c - workers0[i], 0) / jobs, 2),
      api_cpu_ms: round((api1 - api0) / jobs, 2),
      s3rver_cpu_ms: round((s3cpu1 - s3cpu0) / jobs, 2),
      machine_cpu_ms: {
        busy: round((busy(machine1) - busy(machine0)) / jobs, 1),
        total: round((busy(machine1) + machine1.idle - busy(machine0) - machine0.idle) / jobs, 1),
      },
      status_read_commands: round(statusDelta("calls") / 100, 1),
      status_read_us: round(statusDelta("usec") / 100, 1),
      memory_bytes: round((memory1 - memory0) / jobs, 0),
    };
  } finally {
    for (const p of procs) {
      try {
        p.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
    await Promise.all(procs.map((p) => p.status));
    redis.disconnect();
    await s3.close();
    await privateRedis.stop();
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { workers: { type: "string" }, jobs: { type: "string" } } });
  const jobs = Number(values.jobs ?? 300);
  const counts = values.workers ? [Number(values.workers)] : [1, 2];
  const reports: FleetReport[] = [];
  for (const w of counts) {
    reports.push(await benchFleet(w, jobs, join(HERE, ".tmp", `fleet-${crypto.randomUUID()}`)));
    console.log(JSON.stringify(reports.at(-1)));
  }
  console.log(markdownTable(
    [
      "workers",
      "jobs/s",
      "Redis cmds/job",
      "Redis CPU µs/job",
      "Redis bytes in/out per job",
      "S3 requests/job",
      "worker CPU ms/job",
      "API CPU ms/job",
      "s3rver CPU ms/job",
      "machine busy / all ms/job",
    ],
    reports.map((r) => [
      r.workers,
      r.jobs_per_s,
      r.redis.commands,
      r.redis.cpu_us,
      `${r.redis.bytes_in} / ${r.redis.bytes_out}`,
      r.s3.requests,
      r.worker_cpu_ms,
      r.api_cpu_ms,
      r.s3rver_cpu_ms,
      `${r.machine_cpu_ms.busy} / ${r.machine_cpu_ms.total}`,
    ]),
  ));
}
