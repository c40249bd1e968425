import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { checkRedisPersistence } from "../queue/redis_persistence.ts";
import { redisAnswers } from "../queue/redis_probe.ts";
import { reportLostJob } from "../worker.ts";
import { sparePort, startTestService, taskFlags, testTempDir } from "./harness.ts";

/** A redis-server of the test's own on `port`, with `args` deciding what it persists. */
async function startRedis(port: number, dir: string, args: string[]) {
  await Deno.mkdir(dir, { recursive: true });
  const child = new Deno.Command("redis-server", {
    args: ["--bind", "127.0.0.1", "--port", String(port), "--dir", dir, "--maxmemory-policy", "noeviction", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const until = Date.now() + 10_000;
  while (!(await redisAnswers("127.0.0.1", port, 500))) {
    if (Date.now() > until) throw new Error(`redis-server did not answer on ${port} within 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    async stop() {
      child.kill("SIGKILL");
      await child.status;
    },
  };
}

const NO_PERSISTENCE = ["--save", "", "--appendonly", "no"];
const AOF = ["--save", "", "--appendonly", "yes"];

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

Deno.test("Redis without persistence: health and /info warn (200), and again after a restart with AOF", async (t) => {
  const root = testTempDir();
  const port = sparePort();
  let redis = await startRedis(port, `${root}/redis`, NO_PERSISTENCE);
  const svc = await startTestService({ REDIS_PORT: String(port), EMBEDDED_WORKER: "false" });
  try {
    await t.step("persisting nothing: health/redis 200 degraded with a warning; /info says none", async () => {
      const res = await fetch(`${svc.base}/api/v1/health/redis`);
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.status, "degraded");
      assert.equal(body.persistence, "none");
      assert.match(body.warnings.join(" "), /restart loses every queued task/);
      const full = await (await fetch(`${svc.base}/api/v1/health/full`)).json();
      assert.equal(full.components.redis.status, "degraded");
      assert.ok(!full.failing.includes("redis"));
      const info = await (await fetch(`${svc.base}/info`)).json();
      assert.equal(info.redis_persistence.persistence, "none");
    });

    await t.step("restarted with AOF: checked again on reconnect, healthy", async () => {
      await redis.stop();
      redis = await startRedis(port, `${root}/redis`, AOF);
      const body = await until("health/redis says aof", 15_000, async () => {
        const b = await (await fetch(`${svc.base}/api/v1/health/redis`)).json();
        return b.persistence === "aof" ? b : undefined;
      });
      assert.equal(body.status, "healthy");
      assert.equal(body.warnings, undefined);
    });

    await t.step("an evicting maxmemory-policy is a warning too", async () => {
      const conn = new Redis({ port, maxRetriesPerRequest: 1 });
      try {
        await conn.config("SET", "maxmemory-policy", "allkeys-lru");
        const report = await checkRedisPersistence(conn);
        assert.equal(report.maxmemory_policy, "allkeys-lru");
        assert.match(report.warnings.join(" "), /evicts job keys/);
      } finally {
        await conn.quit();
      }
    });
  } finally {
    await svc.close();
    await redis.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

Deno.test("CONFIG disabled (managed Redis): INFO tells AOF; else the persistence is unknown, with a warning", async () => {
  const root = testTempDir();
  for (const [args, expected] of [[AOF, "aof"], [NO_PERSISTENCE, "unknown"]] as const) {
    const port = sparePort();
    const redis = await startRedis(port, `${root}/redis-${expected}`, [...args, "--rename-command", "CONFIG", ""]);
    const conn = new Redis({ port, maxRetriesPerRequest: 1 });
    try {
      const report = await checkRedisPersistence(conn);
      assert.equal(report.persistence, expected);
      assert.equal(report.maxmemory_policy, "noeviction");
      assert.equal(report.warnings.length, expected === "aof" ? 0 : 1, report.warnings.join("; "));
    } finally {
      await conn.quit();
      await redis.stop();
    }
  }
  await Deno.remove(root, { recursive: true }).catch(() => {});
});

Deno.test("REQUIRE_REDIS_PERSISTENCE=true: a Redis that persists nothing → one-line error, exit 1", async () => {
  const root = testTempDir();
  const port = sparePort();
  const redis = await startRedis(port, `${root}/redis`, NO_PERSISTENCE);
  try {
    const flags = await taskFlags("start");
    const run = (require: string) =>
      new Deno.Command("deno", {
        args: ["run", ...flags, `--allow-write=${root}`, "main.ts"],
        cwd: new URL("..", import.meta.url),
        env: {
          PORT: "0",
          HOST: "127.0.0.1",
          REDIS_PORT: String(port),
          REDIS_AUTOSTART: "false",
          EMBEDDED_WORKER: "false",
          UPLOAD_DIR: `${root}/uploads`,
          RESULT_DIR: `${root}/results`,
          QUEUE_PREFIX: `test-${crypto.randomUUID()}`,
          REQUIRE_REDIS_PERSISTENCE: require,
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    const out = await run("true");
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 1, stderr);
    const lines = stderr.split("\n").filter((l) => !l.startsWith("{"));
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0], /^error: .*persists nothing.*REQUIRE_REDIS_PERSISTENCE/);
  } finally {
    await redis.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

Deno.test("a job whose Redis keys are gone is logged as an error naming the task", () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => lines.push(line);
  try {
    const taskId = crypto.randomUUID();
    // BullMQ's message when moveToFinished finds the job's hash gone.
    assert.ok(reportLostJob(new Error(`Missing key for job ${taskId}. moveToFinished`)));
    assert.ok(!reportLostJob(new Error("connect ECONNREFUSED 127.0.0.1:6379")));
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]);
    assert.equal(entry.level, "error");
    assert.equal(entry.msg, "job lost: its Redis keys are gone");
    assert.equal(entry.task_id, taskId);
  } finally {
    console.error = original;
  }
});
