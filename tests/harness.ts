import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { type Config, parseConfig } from "../config.ts";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { childArgs } from "../launcher.ts";
import { type Service, startService } from "../main.ts";
import { SPARE_NAME } from "../storage/object_store.ts";

/**
 * A deno.json task's flags without its `--allow-write`: how tests and the bench start the real entry points with the
 * tasks' own permissions, granting write access to their own folders instead. For the tasks that go through
 * launcher.ts, the flags it would give the entry point under `env` (by default, the default configuration).
 */
export async function taskFlags(task: string, env: Record<string, string> = {}): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url))).tasks;
  const words = (tasks[task] as string).split(" ");
  const launcher = words.indexOf("launcher.ts");
  const flags = launcher < 0
    ? words.filter((f) => f.startsWith("--"))
    : childArgs(words.slice(launcher + 1), parseConfig(env)).filter((f) => f.startsWith("--"));
  return flags.filter((f) => !f.startsWith("--allow-write"));
}

/** A free TCP port on loopback (the kernel picks it; nothing listens there once this returns). */
export function sparePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

const TMP = new URL("./.tmp/", import.meta.url).pathname;

/** A fresh folder under tests/.tmp (inside the project, so the test task's narrow --allow-write covers it). */
export function testTempDir(): string {
  Deno.mkdirSync(TMP, { recursive: true });
  return Deno.makeTempDirSync({ dir: TMP, prefix: "bip-" });
}

/** Test configuration: a unique queue prefix, temp folders, ephemeral port. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  const root = testTempDir();
  return parseConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    UPLOAD_DIR: `${root}/uploads`,
    RESULT_DIR: `${root}/results`,
    REDIS_DATA_DIR: `${root}/redis`,
    QUEUE_PREFIX: `test-${crypto.randomUUID()}`,
    REDIS_AUTOSTART: "false",
    ...overrides,
  });
}

/** Deletes every key under the config's queue prefix. */
export async function dropPrefix(config: Config): Promise<void> {
  const redis = new Redis({
    host: config.REDIS_HOST,
    port: config.REDIS_PORT,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${config.QUEUE_PREFIX}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== "0");
  } catch {
    // Redis is gone (a test stopped it): nothing left to clean there.
  } finally {
    // QUIT, not disconnect(): ioredis's disconnect() arms a stream-destroy timer that can outlive the test.
    if (redis.status === "ready") await redis.quit().catch(() => redis.disconnect());
    else redis.disconnect();
  }
}

/** A real service on an ephemeral port with real Redis, OpenCV.js and in-process workers. */
export interface TestService {
  config: Config;
  service: Service;
  base: string;
  close(): Promise<void>;
}

/** Starts the real service for a test; `close` stops it, drops its Redis keys and removes its folders. */
export async function startTestService(overrides: Record<string, string> = {}): Promise<TestService> {
  const config = testConfig(overrides);
  const service = await startService(config);
  return {
    config,
    service,
    base: `http://127.0.0.1:${service.port}`,
    async close() {
      await service.close();
      await dropPrefix(config);
      const root = config.UPLOAD_DIR.replace(/\/uploads$/, "");
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Starts `deno run worker.ts` with the worker task's own flags against the test service's Redis, queue and folders;
 * `output` resolves to its stdout and stderr once it exits.
 */
export async function spawnWorker(
  svc: TestService,
  extraEnv: Record<string, string> = {},
): Promise<{ child: Deno.ChildProcess; output: Promise<string> }> {
  const root = svc.config.UPLOAD_DIR.replace(/\/uploads$/, "");
  return spawnDeno(["run", ...await taskFlags("worker"), `--allow-write=${root}`, "worker.ts"], {
    QUEUE_PREFIX: svc.config.QUEUE_PREFIX,
    UPLOAD_DIR: svc.config.UPLOAD_DIR,
    RESULT_DIR: svc.config.RESULT_DIR,
    REDIS_PORT: String(svc.config.REDIS_PORT),
    ...extraEnv,
  });
}

/**
 * Whole seconds of CPU the analysis threads of process `pid` have used (the pool's Web Workers, named worker-N), from
 * ps: whether an analysis is under way, as the status (which says active before the analysis thread starts) cannot
 * tell.
 */
export async function analysisCpuSeconds(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-L", "-o", "comm=,time=", "-p", String(pid)], stdout: "piped" })
    .output();
  let seconds = 0;
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = /^worker-\S*\s+(?:(\d+)-)?(\d+):(\d+):(\d+)$/.exec(line.trim());
    if (m) seconds += Number(m[1] ?? 0) * 86_400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
  }
  return seconds;
}

/** Runs `deno <args>` in the project with `env` added; `output` resolves to its stdout and stderr once it exits. */
export function spawnDeno(
  args: string[],
  env: Record<string, string>,
): { child: Deno.ChildProcess; output: Promise<string> } {
  const child = new Deno.Command("deno", {
    args,
    cwd: new URL("..", import.meta.url),
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
    .then(([out, err]) => out + err);
  return { child, output };
}

/** Kills processes started by spawnDeno or spawnWorker (those still running) and waits for each to end. */
export async function killProcesses(...workers: ({ child: Deno.ChildProcess; output: Promise<string> } | undefined)[]) {
  for (const w of workers) {
    if (!w) continue;
    try {
      w.child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await w.child.status;
    await w.output;
  }
}

/**
 * Polls `check` every `intervalMs` until it holds, failing with `what` once `timeoutMs` have passed: what a test waits
 * for, it polls for, rather than sleeping for a time that is too long on a quiet machine and too short on a busy one.
 *
 * @example
 * ```ts
 * await waitUntil("the upload removed", 5000, async () => (await listDir(dir)).length === 0);
 * ```
 */
export async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => boolean | Promise<boolean>,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Polls a task until it reaches `completed` or `failed`, failing the test after `timeoutMs`. */
export async function waitForTask(
  base: string,
  taskId: string,
  timeoutMs = 30_000,
  headers: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const until = Date.now() + timeoutMs;
  let last: Record<string, unknown> = {};
  while (Date.now() < until) {
    const res = await fetch(`${base}/api/v1/images/status/${taskId}`, { headers });
    last = await res.json();
    if (last.state === "completed" || last.state === "failed") return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`task ${taskId} did not finish within ${timeoutMs} ms; last status ${JSON.stringify(last)}`);
}

/**
 * Reads an SSE response one block at a time (comments skipped; `retry` set by a block carrying that field), each within
 * a deadline; null once it has ended.
 */
export function sseReader(res: Response) {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    async next(timeoutMs = 10_000): Promise<{ event: string; data: string; retry: string } | null> {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const lines = buffer.slice(0, end).split("\n");
          buffer = buffer.slice(end + 2);
          const field = (name: string) =>
            lines.filter((l) => l.startsWith(`${name}: `)).map((l) => l.slice(name.length + 2)).join("\n");
          if (lines.every((l) => l.startsWith(":"))) continue;
          return { event: field("event"), data: field("data"), retry: field("retry") };
        }
        const chunk = await withDeadline(reader.read(), until - Date.now());
        if (chunk === TIMED_OUT) {
          throw new Error(`no SSE event within ${timeoutMs} ms; unread: ${JSON.stringify(buffer)}`);
        }
        if (chunk.done) return null;
        buffer += chunk.value;
      }
    },
    cancel: () => reader.cancel().catch(() => {}),
  };
}

/** Uploads bytes as the multipart field `file`. */
export function upload(base: string, bytes: Uint8Array, name: string, field = "file"): Promise<Response> {
  const form = new FormData();
  form.append(field, new File([bytes as Uint8Array<ArrayBuffer>], name));
  return fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
}

/** Uploads with extra form fields; the task id of the 202. */
export async function uploadWith(base: string, bytes: Uint8Array, name: string, fields: Record<string, string>) {
  const form = new FormData();
  form.append("file", new File([bytes as Uint8Array<ArrayBuffer>], name));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
  assert.equal(res.status, 202, await res.clone().text());
  return (await res.json()).task_id as string;
}

/** Names of the files in a folder (empty when it does not exist). */
export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return names;
}

/**
 * Names of the files in an uploads folder, without the empty spare files a worker keeps to write over
 * (storage/object_store.ts); fails if a spare holds any bytes.
 */
export async function listUploads(dir: string): Promise<string[]> {
  const names = await listDir(dir);
  for (const spare of names.filter((n) => SPARE_NAME.test(n))) {
    assert.equal((await Deno.stat(`${dir}/${spare}`)).size, 0, `${spare} is empty`);
  }
  return names.filter((n) => !SPARE_NAME.test(n));
}

/**
 * Runs a Playwright script from tests/browser/ under Node (Playwright probes /proc at import, which Deno allows only
 * with -A) and returns its JSON report, its last line of output. Null when Chromium is missing: a skip with a warning
 * on a developer's machine, a failure under CI, which installs Chromium (.ci/run).
 */
export async function runBrowserScript<T>(script: string, args: string[]): Promise<T | null> {
  const out = await new Deno.Command("node", {
    args: [new URL(`./browser/${script}`, import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const report = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
  if (report.missing) {
    assert.ok(!Deno.env.get("CI"), `Chromium is not installed at ${report.missing}`);
    console.warn(`skipped: no Chromium at ${report.missing} (apt-get install chromium)`);
    return null;
  }
  return report as T;
}

/**
 * Sends a chunked multipart upload (boundary `x`) over a raw socket, `pieces` one chunk each, until the server answers:
 * the test controls the framing and sees how much of the body went out before the answer. Writes block once the server
 * stops reading, so they run beside the wait for it. Returns the answer's start and the body bytes sent by then.
 */
export async function uploadChunkedUntilAnswered(
  port: number,
  pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<{ text: string; sent: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const enc = new TextEncoder();
  const writeAll = async (data: Uint8Array) => {
    for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
  };
  let sent = 0;
  let answered = false;
  try {
    await writeAll(enc.encode(
      "POST /api/v1/images/upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n" +
        "Content-Type: multipart/form-data; boundary=x\r\n\r\n",
    ));
    const buf = new Uint8Array(4096);
    const reply = conn.read(buf);
    const writing = (async () => {
      for await (const piece of pieces) {
        if (answered) break;
        await writeAll(enc.encode(`${piece.length.toString(16)}\r\n`));
        await writeAll(piece);
        await writeAll(enc.encode("\r\n"));
        sent += piece.length;
      }
      if (!answered) await writeAll(enc.encode("0\r\n\r\n"));
    })().catch(() => {/* the socket closed under a blocked write */});
    const n = await reply;
    answered = true;
    conn.close();
    await writing;
    return { text: new TextDecoder().decode(buf.subarray(0, n ?? 0)), sent };
  } finally {
    try {
      conn.close();
    } catch {
      // closed above
    }
  }
}
