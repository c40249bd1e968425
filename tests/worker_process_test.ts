import assert from "node:assert/strict";
import { fixture } from "./fixtures.ts";
import { spawnWorker, startTestService, upload, waitForTask } from "./harness.ts";

Deno.test("a dedicated worker process (deno task worker) takes the API's jobs and exits 0 on SIGTERM", async (t) => {
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  const { child, output } = await spawnWorker(svc);
  try {
    await t.step("with no embedded worker, /health/worker reports none until the process connects", async () => {
      const until = Date.now() + 20_000;
      let body: { workers?: number } = {};
      while (Date.now() < until) {
        body = await (await fetch(`${svc.base}/api/v1/health/worker`)).json();
        if (body.workers === 1) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(body.workers, 1, JSON.stringify(body));
    });
    await t.step("an upload completes in the worker process", async () => {
      const res = await upload(svc.base, await fixture("coins.bmp"), "coins.bmp");
      assert.equal(res.status, 202);
      const status = await waitForTask(svc.base, (await res.json()).task_id);
      assert.equal(status.state, "completed");
      assert.equal((status.result as { contour_count: number } | undefined)?.contour_count, 61, JSON.stringify(status));
    });
    await t.step("SIGTERM → the worker closes and exits 0", async () => {
      child.kill("SIGTERM");
      const { code } = await child.status;
      const text = await output;
      assert.equal(code, 0, text);
      assert.match(text, /worker stopping/);
    });
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status;
    await output;
    await svc.close();
  }
});

Deno.test("a worker that cannot start says why in one line and exits 1", async (t) => {
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  try {
    const cases: [string, Record<string, string>, RegExp][] = [
      [
        "a Redis host --allow-net does not cover",
        { REDIS_HOST: "127.0.0.2" },
        /^error: Deno may not connect to Redis at 127\.0\.0\.2:\d+: .* or add 127\.0\.0\.2 to --allow-net/m,
      ],
      [
        "a RESULT_DIR outside --allow-write",
        { RESULT_DIR: "/var/tmp/bip-not-allowed" },
        /^error: Requires write access to "\/var\/tmp\/bip-not-allowed"/m,
      ],
    ];
    for (const [name, env, message] of cases) {
      await t.step(name, async () => {
        const { child, output } = await spawnWorker(svc, env);
        const { code } = await child.status;
        const text = await output;
        assert.equal(code, 1, text);
        assert.match(text, message);
        assert.doesNotMatch(text, /^\s+at /m, "no stack trace");
      });
    }
  } finally {
    await svc.close();
  }
});
