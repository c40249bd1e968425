import assert from "node:assert/strict";
import { parseConfig } from "../config.ts";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { ensureOpenFileLimit, maxConnectionsFor } from "../open_file_limit.ts";
import { dropPrefix, listDir, sparePort, startTestService, taskFlags, testTempDir } from "./harness.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Polls `check` until it holds, failing with `what` after `ms`. */
async function until(what: string, ms: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Reads from `conn` until the server closes it (EOF or reset); what it sent and after how long, from `since`. Fails if
 * the connection is still open after `ms`.
 */
async function closedBy(conn: Deno.Conn, ms: number, since = performance.now()): Promise<{ ms: number; text: string }> {
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  const deadline = since + ms;
  for (;;) {
    const n = await withDeadline(conn.read(buffer).catch(() => null), deadline - performance.now());
    if (n === TIMED_OUT) {
      throw new Error(`the connection is still open after ${ms} ms; received ${JSON.stringify(text)}`);
    }
    if (n === null) return { ms: performance.now() - since, text };
    text += dec.decode(buffer.subarray(0, n));
  }
}

/** Reads one response (head and Content-Length body) from `conn`, whether or not the server closes it afterwards. */
async function readResponse(conn: Deno.Conn, ms: number): Promise<string> {
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  const deadline = performance.now() + ms;
  for (;;) {
    const end = text.indexOf("\r\n\r\n");
    const length = end < 0 ? undefined : /content-length: (\d+)/i.exec(text.slice(0, end))?.[1];
    if (length !== undefined && text.length >= end + 4 + Number(length)) return text;
    const n = await withDeadline(conn.read(buffer).catch(() => null), deadline - performance.now());
    if (n === TIMED_OUT) throw new Error(`no complete response within ${ms} ms; received ${JSON.stringify(text)}`);
    if (n === null) return text;
    text += dec.decode(buffer.subarray(0, n));
  }
}

/** One request on a connection of its own (Connection: close); the whole response, or null if none came in time. */
async function exchange(port: number, request: string, ms = 5000): Promise<string | null> {
  let conn: Deno.Conn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(enc.encode(request));
    return (await closedBy(conn, ms)).text;
  } catch {
    return null;
  } finally {
    try {
      conn?.close();
    } catch {
      // closed by the server
    }
  }
}

const HEALTH = "GET /api/v1/health/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

async function healthy(port: number): Promise<boolean> {
  return /^HTTP\/1\.1 200 /.test(await exchange(port, HEALTH) ?? "");
}

/** Opens `count` connections (every other one sending half a request head); stops early when the client runs out. */
async function flood(port: number, count: number): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < count; i++) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      if (i % 2) await conn.write(enc.encode("GET /api/v1/health/ HTTP/1.1\r\nHost: x\r\n")).catch(() => {});
    } catch {
      break;
    }
  }
  return conns;
}

function closeAll(conns: Deno.Conn[]): void {
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // closed by the server
    }
  }
}

/** `deno run main.ts` with the start task's flags under `prlimit --nofile=<nofile>`; its output so far is `output()`. */
async function startApi(nofile: string, env: Record<string, string>) {
  const root = testTempDir();
  const port = sparePort();
  const fullEnv = {
    HOST: "127.0.0.1",
    PORT: String(port),
    REDIS_AUTOSTART: "false",
    QUEUE_PREFIX: `test-${crypto.randomUUID()}`,
    UPLOAD_DIR: `${root}/uploads`,
    RESULT_DIR: `${root}/results`,
    ...env,
  };
  const child = new Deno.Command("prlimit", {
    args: [`--nofile=${nofile}`, "deno", "run", ...await taskFlags("start"), `--allow-write=${root}`, "main.ts"],
    cwd: new URL("..", import.meta.url),
    env: fullEnv,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) output += text;
  };
  const collected = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const alive = async () => await withDeadline(child.status, 0) === TIMED_OUT;
  return {
    port,
    output: () => output,
    alive,
    /** The first log line whose message is `msg`, parsed. */
    logLine(msg: string): Record<string, unknown> | undefined {
      const line = output.split("\n").find((l) => l.includes(`"msg":"${msg}"`));
      return line ? JSON.parse(line) : undefined;
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      const exited = await withDeadline(child.status, 45_000);
      if (exited === TIMED_OUT) child.kill("SIGKILL");
      await child.status;
      await collected;
      await dropPrefix(parseConfig(fullEnv));
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test("connection flood under a low open-file limit: the process and its workers stay up and serve again", async (t) => {
  for (
    const [name, env] of [
      ["the cap derived from nofile 256 refuses what the descriptors cannot hold", {}],
      ["MAX_CONNECTIONS above the limit: accepts fail with EMFILE, are logged, idle connections shed", {
        MAX_CONNECTIONS: "100000",
      }],
    ] as const
  ) {
    await t.step(name, async () => {
      // The embedded worker too: before, the process died, and its workers with it.
      const api = await startApi("256:256", { WORKER_CONCURRENCY: "1", ...env });
      let conns: Deno.Conn[] = [];
      try {
        await until("the API answers", 60_000, () => healthy(api.port));
        conns = await flood(api.port, 320);
        assert.ok(
          conns.length >= 300,
          `only ${conns.length} of 320 connections opened: the listener went away\n${api.output()}`,
        );
        const msg = env.MAX_CONNECTIONS
          ? "accept failed: shedding idle connections and pausing accepts"
          : "connection limit reached: refusing new connections";
        await until(`the log says "${msg}"`, 10_000, () => api.logLine(msg) !== undefined);
        const line = api.logLine(msg)!;
        if (env.MAX_CONNECTIONS) {
          assert.equal(line.code, "EMFILE", api.output());
          assert.equal(line.level, "error");
        } else {
          assert.equal(line.max_connections, 32, api.output());
        }
        assert.ok(await api.alive(), api.output());
        closeAll(conns);
        await until("health answers 200 after the flood", 15_000, () => healthy(api.port));
        assert.ok(await api.alive(), api.output());
        assert.doesNotMatch(api.output(), /Uncaught|Too many open files \(os error 24\)\s+at/);
        // The worker still runs: /health/worker counts it.
        const worker = await exchange(api.port, HEALTH.replace("/health/", "/health/worker"));
        assert.match(worker ?? "", /"workers":[1-9]/, worker ?? "no answer");
      } finally {
        closeAll(conns);
        await api.stop();
      }
    });
  }
});

Deno.test("CONNECTION_GUARD=false: Deno.serve alone, and a flood under a low open-file limit still ends nothing", async () => {
  const api = await startApi("256:256", { WORKER_CONCURRENCY: "1", CONNECTION_GUARD: "false" });
  let conns: Deno.Conn[] = [];
  try {
    await until("the API answers", 60_000, () => healthy(api.port));
    // Without the guard nothing refuses or sheds them: the descriptors run out and Deno.serve's accept fails.
    conns = await flood(api.port, 320);
    const msg = "accept failed: pausing accepts";
    await until(`the log says "${msg}"`, 15_000, () => api.logLine(msg) !== undefined);
    assert.match(String(api.logLine(msg)!.error), /Too many open files/, api.output());
    assert.ok(await api.alive(), api.output());
    closeAll(conns);
    await until("health answers 200 after the flood", 15_000, () => healthy(api.port));
    assert.ok(await api.alive(), api.output());
    assert.doesNotMatch(api.output(), /Uncaught/);
    const worker = await exchange(api.port, HEALTH.replace("/health/", "/health/worker"));
    assert.match(worker ?? "", /"workers":[1-9]/, worker ?? "no answer");
  } finally {
    closeAll(conns);
    await api.stop();
  }
});

Deno.test("deadlines: a silent socket and a slow request head are closed after HEADER_TIMEOUT_MS, an idle keep-alive connection after IDLE_TIMEOUT_MS", async (t) => {
  const svc = await startTestService({ HEADER_TIMEOUT_MS: "1000", IDLE_TIMEOUT_MS: "1000", EMBEDDED_WORKER: "false" });
  const port = svc.service.port;
  const conns: Deno.Conn[] = [];
  const open = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(conn);
    return conn;
  };
  try {
    await t.step("a connection that sends nothing", async () => {
      const since = performance.now();
      const { ms } = await closedBy(await open(), 5000, since);
      assert.ok(ms >= 950, `closed after ${ms} ms`);
    });
    await t.step("half a request head, then a byte every 100 ms: trickling does not extend the deadline", async () => {
      const conn = await open();
      const since = performance.now();
      await conn.write(enc.encode("GET /api/v1/health/ HTTP/1.1\r\nHost: x\r\n"));
      const trickle = setInterval(() => conn.write(enc.encode("X")).catch(() => {}), 100);
      try {
        const { ms, text } = await closedBy(conn, 5000, since);
        assert.ok(ms >= 950, `closed after ${ms} ms`);
        assert.equal(text, "", "no response to a request that never completed");
      } finally {
        clearInterval(trickle);
      }
    });
    await t.step("a kept-alive connection after its response", async () => {
      const conn = await open();
      await conn.write(enc.encode("GET /api/v1/health/ HTTP/1.1\r\nHost: x\r\n\r\n"));
      const buffer = new Uint8Array(4096);
      const n = await conn.read(buffer);
      const since = performance.now();
      assert.match(dec.decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 200 /);
      const { ms } = await closedBy(conn, 5000, since);
      assert.ok(ms >= 800, `closed after ${ms} ms`);
    });
    await t.step(
      "a request that completes in time is answered, on a fresh connection and on a kept-alive one",
      async () => {
        const conn = await open();
        for (let i = 0; i < 2; i++) {
          await conn.write(enc.encode("GET /api/v1/health/ HTTP/1.1\r\nHost: x\r\n"));
          // A client that pauses mid-head, and then between requests, within the deadlines: the pauses are what
          // this step tests, so they are sleeps.
          await new Promise((r) => setTimeout(r, 200));
          await conn.write(enc.encode("\r\n"));
          const buffer = new Uint8Array(4096);
          const n = await conn.read(buffer);
          assert.match(dec.decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 200 /);
          await new Promise((r) => setTimeout(r, 300));
        }
      },
    );
    await t.step("/metrics counts them", async () => {
      const metrics = await exchange(port, HEALTH.replace("/api/v1/health/", "/metrics")) ?? "";
      const header = Number(/bip_http_connections_timed_out_total\{phase="header"\} (\d+)/.exec(metrics)?.[1]);
      const idle = Number(/bip_http_connections_timed_out_total\{phase="idle"\} (\d+)/.exec(metrics)?.[1]);
      assert.ok(header >= 2 && idle >= 1, metrics);
    });
  } finally {
    closeAll(conns);
    await svc.close();
  }
});

Deno.test("an upload whose body stops arriving: 408 request_timeout, and its partial file is removed", async () => {
  const svc = await startTestService({ BODY_IDLE_TIMEOUT_MS: "1000", EMBEDDED_WORKER: "false" });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: svc.service.port });
  try {
    // Over SPILL_BYTES (1 MiB), so the file part is being written to disk when the body stops.
    const head = enc.encode('--b\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n');
    const sent = crypto.getRandomValues(new Uint8Array(65536));
    await conn.write(enc.encode(
      "POST /api/v1/images/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n" +
        `Content-Length: ${3 * 1024 * 1024}\r\n\r\n`,
    ));
    await conn.write(head);
    for (let i = 0; i < 24; i++) await conn.write(sent);
    await until("the partial upload is on disk", 5000, async () => {
      return (await listDir(svc.config.UPLOAD_DIR)).some((name) => name.startsWith(".incoming-"));
    });
    const since = performance.now();
    const text = await readResponse(conn, 5000);
    const ms = performance.now() - since;
    assert.match(text, /^HTTP\/1\.1 408 /, text);
    assert.equal(JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)).error.code, "request_timeout", text);
    assert.ok(ms < 4000, `answered after ${ms} ms`);
    await until("the partial upload is removed", 5000, async () => (await listDir(svc.config.UPLOAD_DIR)).length === 0);
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the server
    }
    await svc.close();
  }
});

Deno.test("connections over MAX_CONNECTIONS are refused at once, and a freed slot is served", async () => {
  const svc = await startTestService({ MAX_CONNECTIONS: "2", EMBEDDED_WORKER: "false" });
  const port = svc.service.port;
  const held = [
    await Deno.connect({ hostname: "127.0.0.1", port }),
    await Deno.connect({ hostname: "127.0.0.1", port }),
  ];
  try {
    // Accepted in order, so the third is over the cap: it gets a bare 503 and is closed, before it sends anything.
    const since = performance.now();
    const third = await Deno.connect({ hostname: "127.0.0.1", port });
    held.push(third);
    const { ms, text } = await closedBy(third, 1000, since);
    assert.match(text, /^HTTP\/1\.1 503 Service Unavailable\r\n(.*\r\n)*Retry-After: \d+\r\n/, text);
    assert.ok(ms < 1000, `refused after ${ms} ms`);
    closeAll(held.splice(0));
    await until("a freed slot is served", 5000, () => healthy(port));
    const metrics = await exchange(port, HEALTH.replace("/api/v1/health/", "/metrics")) ?? "";
    assert.match(metrics, /bip_http_connections_refused_total [1-9]/, metrics);
  } finally {
    closeAll(held);
    await svc.close();
  }
});

Deno.test("open-file limit: the soft limit is raised to the hard one, logged, and sets the connection cap", async (t) => {
  await t.step("a process started at 256 of 2048 runs at 2048, and logs it with the cap it affords", async () => {
    const api = await startApi("256:2048", { EMBEDDED_WORKER: "false" });
    try {
      await until("the open-file limit is logged", 30_000, () => api.logLine("open-file limit") !== undefined);
      const line = api.logLine("open-file limit")!;
      assert.equal(line.soft, 2048, api.output());
      assert.equal(line.hard, 2048);
      assert.equal(line.max_connections, maxConnectionsFor(2048));
      assert.equal(line.max_connections_from, "open-file limit");
    } finally {
      await api.stop();
    }
  });
  await t.step("this process, its soft limit lowered: raised back up by ensureOpenFileLimit", async () => {
    const before = await ensureOpenFileLimit();
    assert.ok(before.limit, before.problem);
    const { hard } = before.limit;
    assert.ok(hard > 512, `hard limit ${hard}`);
    // Lowering the soft limit needs no privilege either; the test puts it back whatever happens.
    const lowered = await new Deno.Command("prlimit", { args: ["--pid", String(Deno.pid), "--nofile=512:"] }).output();
    assert.ok(lowered.success);
    try {
      const report = await ensureOpenFileLimit();
      assert.equal(report.raisedFrom, 512, JSON.stringify(report));
      assert.equal(report.limit?.soft, hard);
    } finally {
      await new Deno.Command("prlimit", { args: ["--pid", String(Deno.pid), `--nofile=${hard}:`] }).output();
    }
  });
});
