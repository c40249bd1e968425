import assert from "node:assert/strict";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { fixture } from "./fixtures.ts";
import { startTestService } from "./harness.ts";

Deno.test("request ids, metrics and API keys", async (t) => {
  const svc = await startTestService({ API_KEYS: "k-one,k-two", RENDER: "lazy" });
  const key = { "x-api-key": "k-two" };
  try {
    await t.step("a client's X-Request-Id is echoed and carried into the job", async () => {
      const form = new FormData();
      form.append("file", new File([await fixture("coins.png") as Uint8Array<ArrayBuffer>], "coins.png"));
      const res = await fetch(`${svc.base}/api/v1/images/upload`, {
        method: "POST",
        body: form,
        headers: { ...key, "x-request-id": "trace-abc-123" },
      });
      assert.equal(res.status, 202);
      assert.equal(res.headers.get("x-request-id"), "trace-abc-123");
      const { task_id } = await res.json();
      const redis = new Redis({ port: svc.config.REDIS_PORT, maxRetriesPerRequest: 1 });
      const queue = new Queue(svc.config.QUEUE_NAME, { connection: redis, prefix: svc.config.QUEUE_PREFIX });
      try {
        assert.equal((await queue.getJob(task_id))?.data.request_id, "trace-abc-123");
      } finally {
        await queue.close();
        await redis.quit();
      }
      const other = await fetch(`${svc.base}/api/v1/health/`);
      assert.match(other.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/, "one is made when none is sent");
      await other.body?.cancel();
    });
    await t.step("API keys: images and /health/full need one (header or Bearer); /health/ stays open", async () => {
      const none = await fetch(`${svc.base}/api/v1/images/results`);
      assert.equal(none.status, 401);
      assert.equal((await none.json()).error.code, "unauthorized");
      const wrong = await fetch(`${svc.base}/api/v1/images/results`, { headers: { "x-api-key": "k-on" } });
      assert.equal(wrong.status, 401);
      await wrong.body?.cancel();
      const bearer = await fetch(`${svc.base}/api/v1/images/results`, { headers: { authorization: "Bearer k-one" } });
      assert.equal(bearer.status, 200);
      await bearer.body?.cancel();
      const full = await fetch(`${svc.base}/api/v1/health/full`);
      assert.equal(full.status, 401);
      await full.body?.cancel();
      const open = await fetch(`${svc.base}/api/v1/health/`);
      assert.equal(open.status, 200);
      await open.body?.cancel();
    });
    await t.step("/metrics: requests by route template, queue, workers, job stages, memory", async () => {
      // The job from the first step feeds the stage histogram once it has completed.
      const until = Date.now() + 20_000;
      let finished = 0;
      while (finished === 0 && Date.now() < until) {
        finished = (await (await fetch(`${svc.base}/api/v1/images/results`, { headers: key })).json()).items.length;
        if (finished === 0) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(finished, 1, "the upload did not complete within 20 s");
      await fetch(`${svc.base}/api/v1/images/status/${crypto.randomUUID()}`, { headers: key }).then((r) =>
        r.body?.cancel()
      );
      const text = await (await fetch(`${svc.base}/metrics`)).text();
      assert.match(text, /bip_http_requests_total\{method="POST",route="\/api\/v1\/images\/upload",status="202"\} 1/);
      assert.match(
        text,
        /bip_http_requests_total\{method="GET",route="\/api\/v1\/images\/status\/:task_id",status="404"\} 1/,
      );
      assert.match(text, /bip_http_request_duration_seconds_bucket\{le="0\.005"/);
      assert.match(text, /bip_queue_jobs\{state="completed"\} 1/);
      assert.match(text, /bip_workers [1-9]/);
      assert.match(text, /bip_job_stage_duration_seconds_count\{stage="decode"\} 1/);
      // Drawn on request (RENDER=lazy), not by the worker: no draw or encode sample of 0 s.
      assert.doesNotMatch(text, /bip_job_stage_duration_seconds_count\{stage="(draw|encode)"\}/);
      assert.match(text, /bip_process_memory_bytes\{kind="rss"\} [1-9]/);
    });
  } finally {
    await svc.close();
  }
});
