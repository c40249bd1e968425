import assert from "node:assert/strict";
import { startConfiguredRedis, startPrivateRedis } from "../dev/private_redis.ts";
import { ensureRedis } from "../queue/redis_probe.ts";
import { fixture } from "./fixtures.ts";
import {
  listDir,
  listUploads,
  sparePort,
  startTestService,
  testConfig,
  testTempDir,
  upload,
  waitForTask,
} from "./harness.ts";

Deno.test({
  name: "Redis stopped: uploads get 503 with no orphan file, /health/full says which part is down",
  fn: async (t) => {
    const root = testTempDir();
    const port = sparePort();
    let redis = await startPrivateRedis(port, root);
    let stopped = false;
    const svc = await startTestService({ REDIS_PORT: String(port) });
    try {
      await t.step("with Redis up, /health/full is 200 and a job completes", async () => {
        const res = await fetch(`${svc.base}/api/v1/health/full`);
        const body = await res.json();
        assert.equal(res.status, 200, JSON.stringify(body));
        assert.deepEqual(body.failing, []);
        const up = await upload(svc.base, await fixture("coins.png"), "coins.png");
        assert.equal(up.status, 202);
        const status = await waitForTask(svc.base, (await up.json()).task_id);
        assert.equal(status.state, "completed");
      });

      await redis.stop();
      stopped = true;

      await t.step("/health/full → 503 naming redis; /health/redis → 503; /health/ stays 200", async () => {
        const res = await fetch(`${svc.base}/api/v1/health/full`);
        const body = await res.json();
        assert.equal(res.status, 503, JSON.stringify(body));
        assert.ok(body.failing.includes("redis"), JSON.stringify(body));
        assert.equal(body.components.redis.status, "unhealthy");
        const r = await fetch(`${svc.base}/api/v1/health/redis`);
        assert.equal(r.status, 503);
        await r.body?.cancel();
        const api = await fetch(`${svc.base}/api/v1/health/`);
        assert.equal(api.status, 200);
        await api.body?.cancel();
      });

      await t.step("upload → 503 service_unavailable, and the stored file is removed", async () => {
        // Nothing may be added to the folder by a refused upload.
        const before = await listUploads(svc.config.UPLOAD_DIR);
        const res = await upload(svc.base, await fixture("coins.png"), "coins.png");
        const body = await res.json();
        assert.equal(res.status, 503, JSON.stringify(body));
        assert.equal(body.error.code, "service_unavailable");
        assert.deepEqual(await listUploads(svc.config.UPLOAD_DIR), before);
      });

      await t.step("status → 503 rather than a wrong 404, with Retry-After and without ioredis's words", async () => {
        for (const path of [`status/${crypto.randomUUID()}`, crypto.randomUUID(), "results"]) {
          const res = await fetch(`${svc.base}/api/v1/images/${path}`);
          const body = await res.json();
          assert.equal(res.status, 503, `${path}: ${JSON.stringify(body)}`);
          assert.equal(body.error.code, "service_unavailable");
          assert.equal(body.error.message, "Redis is not reachable; try again shortly");
          assert.ok(Number(res.headers.get("retry-after")) > 0, `${path}: Retry-After`);
        }
      });

      await t.step("the dashboard's API → 503 service_unavailable too, not bull-board's 500", async () => {
        const res = await fetch(`${svc.base}/admin/queues/api/queues`);
        const body = await res.json();
        assert.equal(res.status, 503, JSON.stringify(body));
        assert.equal(body.error.code, "service_unavailable");
        assert.match(body.error.message, /^Redis is not reachable/);
      });

      redis = await startPrivateRedis(port, root);
      stopped = false;

      await t.step("after Redis returns, the same API and workers recover without a restart", async () => {
        const until = Date.now() + 15_000;
        let status = 0;
        while (Date.now() < until) {
          const res = await fetch(`${svc.base}/api/v1/health/full`);
          status = res.status;
          await res.body?.cancel();
          if (status === 200) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(status, 200, "/health/full did not recover within 15 s");
        const up = await upload(svc.base, await fixture("coins.png"), "coins.png");
        assert.equal(up.status, 202);
        const done = await waitForTask(svc.base, (await up.json()).task_id);
        assert.equal(done.state, "completed");
      });
    } finally {
      await svc.close();
      if (!stopped) await redis.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("start-up: a private redis-server is started when none answers, else a one-line error", async (t) => {
  await t.step(
    "REDIS_AUTOSTART=true on a silent loopback port starts redis-server with data under REDIS_DATA_DIR",
    async () => {
      const config = testConfig({ REDIS_PORT: String(sparePort()), REDIS_AUTOSTART: "true" });
      const started = await ensureRedis(config, startConfiguredRedis);
      try {
        assert.ok(started, "a private Redis should have been started");
        assert.ok((await listDir(config.REDIS_DATA_DIR)).includes("redis.log"));
      } finally {
        await started?.stop();
        await Deno.remove(config.REDIS_DATA_DIR.replace(/\/redis$/, ""), { recursive: true });
      }
    },
  );
  await t.step("a relative REDIS_DATA_DIR (the default .redis is one) works too", async () => {
    // redis-server changes into its --dir before opening the log file, so the path it gets must be absolute.
    const relative = `tests/.tmp/redis-${crypto.randomUUID()}`;
    const config = testConfig({ REDIS_PORT: String(sparePort()), REDIS_AUTOSTART: "true", REDIS_DATA_DIR: relative });
    const started = await ensureRedis(config, startConfiguredRedis);
    try {
      assert.ok(started, "a private Redis should have been started");
      assert.ok((await listDir(relative)).includes("redis.log"));
    } finally {
      await started?.stop();
      await Deno.remove(relative, { recursive: true });
      await Deno.remove(config.UPLOAD_DIR.replace(/\/uploads$/, ""), { recursive: true });
    }
  });
  await t.step(
    "a Redis host --allow-net does not cover → an error naming the permission, not 'not reachable'",
    async () => {
      // This test process may only reach 127.0.0.1 and localhost (deno.json's test task).
      const config = testConfig({ REDIS_HOST: "127.0.0.2", REDIS_AUTOSTART: "false" });
      await assert.rejects(() => ensureRedis(config, startConfiguredRedis), /add 127\.0\.0\.2 to --allow-net/);
      await Deno.remove(config.UPLOAD_DIR.replace(/\/uploads$/, ""), { recursive: true });
    },
  );
  await t.step("REDIS_AUTOSTART=false → an error that says how to get Redis", async () => {
    const config = testConfig({ REDIS_PORT: String(sparePort()), REDIS_AUTOSTART: "false" });
    await assert.rejects(() => ensureRedis(config, startConfiguredRedis), /Redis is not reachable at 127\.0\.0\.1:\d+/);
    await Deno.remove(config.UPLOAD_DIR.replace(/\/uploads$/, ""), { recursive: true });
  });
  await t.step("a Redis that answers is used as it is", async () => {
    const config = testConfig();
    assert.equal(await ensureRedis(config, startConfiguredRedis), undefined);
    await Deno.remove(config.UPLOAD_DIR.replace(/\/uploads$/, ""), { recursive: true });
  });
});
