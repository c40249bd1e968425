import assert from "node:assert/strict";
import { parseConfig } from "../config.ts";
import { fixture } from "./fixtures.ts";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import {
  dropPrefix,
  killProcesses,
  listDir,
  sparePort,
  sseReader,
  taskFlags,
  testTempDir,
  upload,
  waitForTask,
  waitUntil,
} from "./harness.ts";
import { startContourWorker } from "../worker.ts";

async function startApi(env: Record<string, string>, root: string) {
  const flags = await taskFlags("start");
  const child = new Deno.Command("deno", {
    args: ["run", ...flags, `--allow-write=${root}`, "main.ts"],
    cwd: new URL("..", import.meta.url),
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]).then(([o, e]) =>
    o + e
  );
  return { child, output };
}

/** Reads one HTTP response (head and Content-Length body) without waiting for the connection to close. */
async function readResponse(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buf = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) continue;
    const length = /content-length: (\d+)/i.exec(text.slice(0, end))?.[1];
    if (length !== undefined && text.length >= end + 4 + Number(length)) return text;
    if (/transfer-encoding: chunked/i.test(text.slice(0, end)) && text.endsWith("0\r\n\r\n")) return text;
  }
}

async function waitHealthy(port: number): Promise<void> {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    const up = await fetch(`http://127.0.0.1:${port}/api/v1/health/`).then(async (r) => {
      await r.body?.cancel();
      return r.ok;
    }, () => false);
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the API on port ${port} did not come up within 30 s`);
}

/** An API process of its own (no embedded worker) on `port`, with its folders under `root` and a fresh queue prefix. */
function apiEnv(root: string, port: number): Record<string, string> {
  return {
    PORT: String(port),
    HOST: "127.0.0.1",
    EMBEDDED_WORKER: "false",
    QUEUE_PREFIX: `test-${crypto.randomUUID()}`,
    UPLOAD_DIR: `${root}/uploads`,
    RESULT_DIR: `${root}/results`,
  };
}

Deno.test("SIGTERM on the API: it stops accepting, finishes the upload in flight, and exits 0", async () => {
  const root = testTempDir();
  const port = sparePort();
  const env = apiEnv(root, port);
  const config = parseConfig(env);
  const api = await startApi(env, root);
  let worker: Awaited<ReturnType<typeof startContourWorker>> | undefined;
  try {
    await waitHealthy(port);
    // Half an upload on a raw socket, then SIGTERM, then the other half.
    const png = await fixture("page.png");
    const enc = new TextEncoder();
    const head = enc.encode('--b\r\nContent-Disposition: form-data; name="file"; filename="page.png"\r\n\r\n');
    const tail = enc.encode("\r\n--b--\r\n");
    const length = head.length + png.length + tail.length;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(enc.encode(
      `POST /api/v1/images/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n` +
        `Content-Length: ${length}\r\nConnection: close\r\n\r\n`,
    ));
    await conn.write(head);
    await conn.write(png.subarray(0, 1000));
    api.child.kill("SIGTERM");
    // New requests are refused while the one in flight goes on (raw sockets: a pooled client connection would
    // hold the server open); probed until the signal has been handled.
    let refused = "";
    await waitUntil("new requests refused with 503 after SIGTERM", 10_000, async () => {
      const probe = await Deno.connect({ hostname: "127.0.0.1", port });
      await probe.write(enc.encode("GET /api/v1/health/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      refused = await readResponse(probe);
      probe.close();
      return /^HTTP\/1\.1 503/.test(refused);
    });
    assert.match(refused, /service_unavailable/);
    await conn.write(png.subarray(1000));
    await conn.write(tail);
    const reply = await readResponse(conn);
    conn.close();
    if (!/^HTTP\/1\.1 202/.test(reply)) {
      // What the process ended with, for a failure that is rare and leaves no log line.
      const status = await api.child.status;
      assert.fail(`${reply}\n--- API exit ${JSON.stringify(status)}; output ---\n${await api.output}`);
    }
    const { code } = await api.child.status;
    assert.equal(code, 0, await api.output);
    // The accepted job is in Redis and completes once a worker runs.
    const taskId = /"task_id":"([^"]+)"/.exec(reply)![1];
    assert.equal((await listDir(config.UPLOAD_DIR)).length, 1);
    worker = await startContourWorker(config);
    const api2 = await startApi(env, root);
    try {
      await waitHealthy(port);
      const status = await waitForTask(`http://127.0.0.1:${port}`, taskId, 30_000);
      assert.equal(status.state, "completed");
    } finally {
      api2.child.kill("SIGTERM");
      await api2.child.status;
      await api2.output;
    }
  } finally {
    await killProcesses(api);
    await worker?.close();
    await dropPrefix(config);
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("SIGTERM on the API with a live status stream open: the stream ends and the process exits 0 at once", async () => {
  const root = testTempDir();
  const port = sparePort();
  // No worker anywhere: the task stays queued, so its stream would stay open for as long as the client does.
  const env = apiEnv(root, port);
  const api = await startApi(env, root);
  let events: ReturnType<typeof sseReader> | undefined;
  try {
    await waitHealthy(port);
    const base = `http://127.0.0.1:${port}`;
    const { task_id } = await (await upload(base, await fixture("coins.png"), "coins.png")).json();
    const res = await fetch(`${base}/api/v1/images/status/${task_id}/events`);
    assert.equal(res.status, 200);
    events = sseReader(res);
    assert.equal(JSON.parse((await events.next())!.data).state, "queued");
    api.child.kill("SIGTERM");
    // Well within DRAIN_TIMEOUT_MS (30 s), which the stream must not hold the drain up for.
    const until = Date.now() + 5000;
    let block;
    const seen = [];
    while ((block = await events.next(until - Date.now())) !== null) seen.push(block);
    assert.deepEqual(seen.map((b) => b.retry), ["5000"], JSON.stringify(seen));
    const exited = await withDeadline(api.child.status, until - Date.now());
    assert.notEqual(exited, TIMED_OUT, "the API exits within 5 s of SIGTERM");
    assert.equal(exited === TIMED_OUT ? -1 : exited.code, 0, await api.output);
  } finally {
    await events?.cancel();
    await killProcesses(api);
    await dropPrefix(parseConfig(env));
    await Deno.remove(root, { recursive: true });
  }
});
