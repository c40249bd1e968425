import assert from "node:assert/strict";
import { parseConfig } from "../config.ts";
import { queueTelemetry } from "../tracing.ts";
import { fixture } from "./fixtures.ts";
import { dropPrefix, killProcesses, sparePort, spawnDeno, taskFlags, testTempDir, waitForTask } from "./harness.ts";

const SECRET = "test-secret-0123456789";

/** One span as Deno's OTLP/HTTP JSON exporter writes it. */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

// OTLP's SpanKind numbers.
const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

/** An OTLP/HTTP JSON collector on a free loopback port: what Deno exports, kept per signal. */
function otlpSink() {
  const spans: OtlpSpan[] = [];
  const posts: Record<string, number> = {};
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const body = await req.json();
    posts[path] = (posts[path] ?? 0) + 1;
    if (path === "/v1/traces") {
      for (const rs of body.resourceSpans ?? []) {
        for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
      }
    }
    return Response.json({});
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, spans, posts, close: () => server.shutdown() };
}

/** A callback receiver that records each delivery's traceparent header. */
function callbackReceiver() {
  const received: { traceparent: string | null; body: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    received.push({ traceparent: req.headers.get("traceparent"), body: await req.text() });
    return new Response("ok");
  });
  return { url: `http://127.0.0.1:${server.addr.port}/hook`, received, close: () => server.shutdown() };
}

/** Polls `ready` every 50 ms until it holds, failing with `what` (and `detail()`) after `timeoutMs`. */
async function until(what: string, ready: () => boolean | Promise<boolean>, timeoutMs: number, detail = () => "") {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms ${detail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function healthy(base: string): Promise<boolean> {
  return await fetch(`${base}/api/v1/health`).then(async (r) => {
    await r.body?.cancel();
    return r.ok;
  }, () => false);
}

/** A trace's spans as `name id←parent` lines, for failure messages. */
const tree = (spans: OtlpSpan[]) => "\n" + spans.map((s) => `${s.name} ${s.spanId}←${s.parentSpanId}`).join("\n");

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value && Object.values(value)[0];
};

Deno.test("tracing: one upload is one trace, from the HTTP request through both queues to the callback", async (t) => {
  const sink = otlpSink();
  const hook = callbackReceiver();
  const root = testTempDir();
  const port = sparePort();
  const env: Record<string, string> = {
    HOST: "127.0.0.1",
    PORT: String(port),
    QUEUE_PREFIX: `test-${crypto.randomUUID()}`,
    UPLOAD_DIR: `${root}/uploads`,
    RESULT_DIR: `${root}/results`,
    REDIS_AUTOSTART: "false",
    WORKER_CONCURRENCY: "1",
    CALLBACK_SECRET: SECRET,
    CALLBACK_ALLOWED_HOSTS: "127.0.0.1",
    OTEL_DENO: "true",
    OTEL_SERVICE_NAME: "bip-tracing-test",
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    // Batches go out after 100 ms rather than Deno's default 1 s (traces) and 1 s (logs).
    OTEL_BSP_SCHEDULE_DELAY: "100",
    OTEL_BLRP_SCHEDULE_DELAY: "100",
  };
  const api = spawnDeno(["run", ...await taskFlags("start", env), `--allow-write=${root}`, "main.ts"], env);
  const base = `http://127.0.0.1:${port}`;
  try {
    await until("the API did not answer", () => healthy(base), 60_000);

    const form = new FormData();
    form.append("file", new File([await fixture("coins.png") as Uint8Array<ArrayBuffer>], "coins.png"));
    form.append("callback_url", hook.url);
    const res = await fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
    assert.equal(res.status, 202, await res.clone().text());
    const taskId = (await res.json()).task_id as string;
    const status = await waitForTask(base, taskId, 60_000);
    assert.equal(status.state, "completed", JSON.stringify(status));
    await until("no callback arrived", () => hook.received.length > 0, 30_000);

    const uploadSpan = () =>
      sink.spans.find((s) => s.name === "POST /api/v1/images/upload" && s.kind === SERVER && !s.parentSpanId);
    const inUploadTrace = () => sink.spans.filter((s) => s.traceId === uploadSpan()?.traceId);
    const named = (name: string) => inUploadTrace().filter((s) => s.name === name);

    await t.step("the spans of the upload, the job, its stages and the callback share one trace", async () => {
      await until(
        "the trace did not reach the collector whole",
        // Spans are exported as they end, parents after their children: wait for every parent too.
        () => {
          const trace = inUploadTrace();
          const ids = new Set(trace.map((s) => s.spanId));
          return named("callback delivery").length > 0 && named("encode").length > 0 &&
            trace.every((s) => !s.parentSpanId || ids.has(s.parentSpanId));
        },
        20_000,
        () => JSON.stringify(sink.spans.map((s) => [s.traceId.slice(0, 8), s.name]), null, 0).slice(0, 3000),
      );
      const trace = inUploadTrace();
      const byId = new Map(trace.map((s) => [s.spanId, s]));
      const rootSpan = uploadSpan()!;
      assert.equal(attribute(rootSpan, "http.route"), "/api/v1/images/upload");
      // Every span of the trace hangs from the upload's server span.
      for (const span of trace) {
        let at: OtlpSpan | undefined = span;
        for (let hops = 0; at && at.parentSpanId && hops < 20; hops++) at = byId.get(at.parentSpanId);
        assert.equal(at, rootSpan, `${span.name} does not descend from the upload's span: ${tree(trace)}`);
      }
      const parentOf = (span: OtlpSpan) => byId.get(span.parentSpanId ?? "");
      const queueName = "contours";
      const enqueue = trace.find((s) => s.kind === PRODUCER && s.name === `add ${queueName}.contours`);
      assert.ok(enqueue, `no enqueue span: ${trace.map((s) => s.name).join(", ")}`);
      const job = trace.find((s) => s.kind === CONSUMER && s.name === `process ${queueName}`);
      assert.ok(job, `no job span: ${trace.map((s) => s.name).join(", ")}`);
      assert.equal(parentOf(job), enqueue, "the job continues the enqueue");
      assert.equal(attribute(job, "bullmq.job.id"), taskId);
      // The stages run back to back within the job, in order.
      let previousEnd = 0n;
      for (const stage of ["decode", "analyse", "measure", "draw", "encode"]) {
        const [span] = named(stage);
        assert.ok(span, `no ${stage} span`);
        assert.equal(parentOf(span), job, `${stage} is not a child of the job`);
        const start = BigInt(span.startTimeUnixNano);
        assert.ok(
          start >= BigInt(job.startTimeUnixNano) && BigInt(span.endTimeUnixNano) <= BigInt(job.endTimeUnixNano),
        );
        assert.ok(start >= previousEnd, `${stage} starts before the stage before it ends`);
        previousEnd = BigInt(span.endTimeUnixNano);
      }
      const callbackEnqueue = trace.find((s) =>
        s.kind === PRODUCER && s.name === `add ${queueName}-callbacks.callback`
      );
      assert.ok(callbackEnqueue, "no callback enqueue span");
      assert.equal(parentOf(callbackEnqueue), job, "the callback is queued from the job");
      const delivery = named("callback delivery")[0];
      assert.equal(delivery.kind, CLIENT);
      assert.equal(attribute(delivery, "http.response.status_code"), 200);
      const callbackJob = parentOf(delivery)!;
      assert.equal(callbackJob.name, `process ${queueName}-callbacks`);
      assert.equal(parentOf(callbackJob), callbackEnqueue);
      // The receiver can continue the trace.
      assert.match(hook.received[0].traceparent ?? "", new RegExp(`^00-${rootSpan.traceId}-${delivery.spanId}-0[01]$`));
    });

    await t.step("server spans are named after the route template", async () => {
      const res = await fetch(`${base}/api/v1/images/status/${taskId}`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      await until(
        "no status span",
        () => sink.spans.some((s) => s.name === "GET /api/v1/images/status/{task_id}" && s.kind === SERVER),
        20_000,
        () => JSON.stringify([...new Set(sink.spans.map((s) => s.name))]),
      );
      const span = sink.spans.find((s) => s.name === "GET /api/v1/images/status/{task_id}")!;
      assert.equal(attribute(span, "http.route"), "/api/v1/images/status/{task_id}");
    });

    await t.step("log lines written inside a span carry its trace id", async () => {
      const traceId = uploadSpan()!.traceId;
      api.child.kill("SIGTERM");
      assert.equal((await api.child.status).code, 0);
      const lines = (await api.output).split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      const line = (msg: string, extra: (l: Record<string, unknown>) => boolean = () => true) =>
        lines.find((l) => l.msg === msg && extra(l));
      const uploadLine = line("request", (l) => l.path === "/api/v1/images/upload");
      assert.equal(uploadLine?.trace_id, traceId, JSON.stringify(uploadLine));
      assert.match(String(uploadLine?.span_id), /^[0-9a-f]{16}$/);
      assert.equal(line("job completed")?.trace_id, traceId);
      assert.equal(line("callback delivered")?.trace_id, traceId);
      // Lines outside any request or job have none.
      assert.equal(line("service listening")?.trace_id, undefined);
      // Deno exported its logs to the collector too.
      assert.ok((sink.posts["/v1/logs"] ?? 0) > 0, JSON.stringify(sink.posts));
    });
  } finally {
    await killProcesses(api);
    await dropPrefix(parseConfig(env));
    await hook.close();
    await sink.close();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

Deno.test("OTEL_DENO takes Deno's two words only, and off leaves BullMQ without telemetry", () => {
  assert.equal(parseConfig({}).OTEL_DENO, false);
  assert.equal(parseConfig({ OTEL_DENO: "TRUE" }).OTEL_DENO, true);
  // Deno ignores "yes" or "1" with a warning: the service would then add its tracing to a runtime that traces nothing.
  assert.throws(() => parseConfig({ OTEL_DENO: "yes" }), /OTEL_DENO.*true or false/);
  assert.equal(queueTelemetry(parseConfig({})), undefined);
  assert.ok(queueTelemetry(parseConfig({ OTEL_DENO: "true" })));
});
