// What one request of each kind costs in CPU: the API process (by kind of thread), Redis and the client. The end-to-end
// runs give the CPU per task as a whole; this splits the part outside the kernel by what the client asks for, so a
// change to the request path shows up here before it is lost in the noise of a whole run.
import process from "node:process";
import { parseConfig } from "../config.ts";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";
import { dropPrefix, sparePort } from "../tests/harness.ts";
import { multipartBody, serviceEnv, spawnService, waitForWorkers } from "./e2e.ts";
import { redisCpu, round, threadCpu } from "./stats.ts";

/** One kind of request and what it cost, in CPU ms per request. */
export interface RequestCost {
  kind: string;
  requests: number;
  /** The API process's main thread: the HTTP server, Hono, ioredis, BullMQ. */
  main_ms: number;
  /** Its V8 helper threads (garbage collection, compilation). */
  v8_ms: number;
  /** Its blocking pool (file operations). */
  file_io_ms: number;
  redis_ms: number;
  /** This process: the client's fetch calls. */
  client_ms: number;
  total_ms: number;
}

export interface RequestSettings {
  scratch: string;
  image: { name: string; bytes: Uint8Array };
  /** Requests per kind (uploads: see `uploads`), sent by `concurrency` clients. */
  requests: number;
  uploads: number;
  concurrency: number;
  /** CONNECTION_GUARD: the relay with the connection limits, or Deno.serve on the public address. */
  guard: boolean;
}

/**
 * Starts the API alone (EMBEDDED_WORKER=false) and a worker process to complete one task, stops the worker, then sends
 * each kind of request: the liveness probe, the completed task's status, its annotated image (JPEG) and uploads (queued
 * only, nothing analyses them). Every response must succeed, or the run fails.
 */
export async function benchRequests(s: RequestSettings): Promise<RequestCost[]> {
  const port = sparePort();
  const env = serviceEnv({
    scratch: s.scratch,
    env: { EMBEDDED_WORKER: "false", CONNECTION_GUARD: String(s.guard) },
  }, port);
  const config = parseConfig(env);
  const redis = createRedis(config, "producer");
  const api = await spawnService("start", "main.ts", env, s.scratch);
  const worker = await spawnService("worker", "worker.ts", env, s.scratch);
  const base = `http://127.0.0.1:${port}`;
  const form = multipartBody(s.image.name, s.image.bytes, { output_format: "jpeg" });
  const upload = async () => {
    const res = await fetch(`${base}/api/v1/images/upload`, {
      method: "POST",
      body: form.body,
      headers: { "content-type": form.type },
    });
    const body = await res.json();
    if (res.status !== 202) throw new Error(`upload answered ${res.status}: ${JSON.stringify(body)}`);
    return body.task_id as string;
  };
  const get = async (path: string) => {
    const res = await fetch(new URL(path, base));
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`GET ${path} answered ${res.status}`);
  };
  try {
    await connectRedis(redis);
    await waitForWorkers(base, 60_000);
    const taskId = await upload();
    let resultUrl: string | undefined;
    for (const until = Date.now() + 60_000; !resultUrl;) {
      if (Date.now() > until) throw new Error("the first task did not complete within 60 s");
      await new Promise((r) => setTimeout(r, 25));
      const status = await (await fetch(`${base}/api/v1/images/status/${taskId}`)).json();
      if (status.state === "failed") throw new Error(`the first task failed: ${JSON.stringify(status.error)}`);
      if (status.state === "completed") resultUrl = status.result.result_url;
    }
    // From here on the API is alone: uploads queue and stay queued.
    worker.process.kill("SIGTERM");
    await worker.process.status;
    const kinds: [string, number, () => Promise<unknown>][] = [
      ["liveness (GET /health/)", s.requests, () => get("/api/v1/health/")],
      ["status of a completed task", s.requests, () => get(`/api/v1/images/status/${taskId}`)],
      ["annotated image (JPEG)", s.requests, () => get(resultUrl!)],
      [`upload (${s.image.name}, queued)`, s.uploads, upload],
    ];
    const costs: RequestCost[] = [];
    for (const [kind, requests, send] of kinds) {
      await drive(Math.min(50, requests), s.concurrency, send);
      const before = await reading(api.process.pid, redis);
      await drive(requests, s.concurrency, send);
      const after = await reading(api.process.pid, redis);
      const per = (a: number | undefined, b: number | undefined) => round(((b ?? 0) - (a ?? 0)) / requests, 3);
      const cost = {
        kind,
        requests,
        main_ms: per(before.threads.main, after.threads.main),
        v8_ms: per(before.threads.v8, after.threads.v8),
        file_io_ms: per(before.threads.file_io, after.threads.file_io),
        redis_ms: per(before.redis, after.redis),
        client_ms: per(before.client, after.client),
      };
      const total = cost.main_ms + cost.v8_ms + cost.file_io_ms + cost.redis_ms + cost.client_ms;
      costs.push({ ...cost, total_ms: round(total, 3) });
    }
    return costs;
  } finally {
    for (const p of [worker, api]) {
      try {
        p.process.kill("SIGTERM");
      } catch {
        // already stopped
      }
      await p.process.status;
    }
    await Promise.all([worker.stderr, api.stderr]);
    await dropPrefix(config);
    await closeRedis(redis);
    await Deno.remove(s.scratch, { recursive: true }).catch(() => {});
  }
}

/** Sends `n` requests from `concurrency` clients, each waiting for its answer before the next. */
async function drive(n: number, concurrency: number, send: () => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < n) await send();
  }));
}

async function reading(pid: number, redis: Parameters<typeof redisCpu>[0]) {
  const [threads, redisMs] = await Promise.all([threadCpu(pid), redisCpu(redis)]);
  const { user, system } = process.cpuUsage();
  return { threads, redis: redisMs, client: (user + system) / 1000 };
}
