import assert from "node:assert/strict";
import { createApp } from "../app.ts";
import { AnalysisOptionsSchema } from "../imaging/options.ts";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue, enqueueContourJob } from "../queue/contour_queue.ts";
import { registerAdminRoutes } from "../routes/admin.ts";
import type { AppDeps } from "../routes/deps.ts";
import { dropPrefix, runBrowserScript, testConfig } from "./harness.ts";

const KEY = "k1";

/** An `Authorization: Basic` value, as a browser sends it after its login prompt. */
const basic = (user: string, password: string) => `Basic ${btoa(`${user}:${password}`)}`;

Deno.test("queue dashboard at /admin/queues: local-only page, queue API, API key, read-only", async (t) => {
  const config = testConfig({ API_KEYS: KEY });
  const redis = createRedis(config, "producer");
  await connectRedis(redis);
  const queue = createContourQueue(config, redis);
  const deps: AppDeps = { config, redis, queue };
  // createApp applies the API-key middleware to /admin/*; registering again is a no-op once app.ts mounts the board.
  const app = createApp(deps);
  registerAdminRoutes(app, deps);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}/admin/queues`;
  const get = (path: string, headers: HeadersInit = { "X-API-Key": KEY }) => fetch(base + path, { headers });
  const send = (method: string, path: string, body: unknown = {}) =>
    fetch(base + path, {
      method,
      headers: { "X-API-Key": KEY, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  try {
    await t.step("without a valid key: 401 for the page, its assets and its API, asking browsers for it", async () => {
      for (const path of ["", "/", "/static/images/logo.svg", "/api/queues"]) {
        const wrong = [{}, { "X-API-Key": "wrong" }, { Authorization: "Bearer k2" }, {
          Authorization: basic("me", "k2"),
        }];
        for (const headers of [...wrong, { Authorization: "Basic not*base64" }] as HeadersInit[]) {
          const res = await get(path, headers);
          assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}`);
          // A Basic challenge is what makes a browser show its login prompt (the key is the password).
          assert.match(res.headers.get("www-authenticate") ?? "", /^Basic realm="admin"/);
          assert.equal((await res.json()).error.code, "unauthorized");
        }
      }
    });

    let html = "";
    await t.step("with the key: 200 HTML whose every reference is local", async () => {
      const ways: HeadersInit[] = [
        { "X-API-Key": KEY },
        { Authorization: `Bearer ${KEY}` },
        { Authorization: basic("anyone", KEY) },
      ];
      for (const headers of ways) {
        const res = await get("", headers);
        assert.equal(res.status, 200);
        assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
        html = await res.text();
      }
      assert.match(html, /<base href="\/admin\/queues\/"/);
      // The stock template links Google Fonts; nothing outside the app may remain, in any form.
      assert.doesNotMatch(html, /https?:|(src|href)="\/\//i, html);
      const res = await get("");
      const csp = res.headers.get("content-security-policy") ?? "";
      await res.body?.cancel();
      for (const directive of ["default-src 'self'", "script-src 'self'", "connect-src 'self'", "font-src 'self'"]) {
        assert.ok(csp.includes(directive), `CSP lacks ${directive}: ${csp}`);
      }
      const slash = await fetch(`${base}/`, { headers: { "X-API-Key": KEY }, redirect: "manual" });
      assert.equal(slash.status, 302);
      assert.equal(slash.headers.get("location"), "/admin/queues");
      await slash.body?.cancel();
      // Deep links into the single-page app render the same page.
      const deep = await get(`/queue/${config.QUEUE_NAME}`);
      assert.equal(deep.status, 200);
      assert.match(await deep.text(), /<div id="root">/);
    });

    await t.step("every asset the page references loads from the app", async () => {
      const refs = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]).filter((r) =>
        r !== "/admin/queues/"
      );
      const scripts = refs.filter((r) => r.endsWith(".js"));
      const styles = refs.filter((r) => r.endsWith(".css"));
      assert.ok(scripts.length >= 1 && styles.length >= 1, refs.join(" "));
      for (const ref of refs) {
        // Relative to <base href="/admin/queues/">.
        assert.match(ref, /^static\//, ref);
        const res = await get(`/${ref}`);
        assert.equal(res.status, 200, ref);
        const body = new Uint8Array(await res.arrayBuffer());
        assert.ok(body.length > 0, ref);
        const type = res.headers.get("content-type") ?? "";
        if (ref.endsWith(".js")) assert.match(type, /javascript/, ref);
        if (ref.endsWith(".css")) assert.match(type, /^text\/css/, ref);
      }
      const missing = await get("/static/js/no-such-file.js");
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
      // Static serving stays inside the UI's folder.
      for (
        const escape of ["/static/../package.json", "/static/%2e%2e/package.json", "/static/..%2f..%2fpackage.json"]
      ) {
        const res = await get(escape);
        assert.notEqual(res.status, 200, escape);
        await res.body?.cancel();
      }
    });

    const taskId = crypto.randomUUID();
    await t.step("the JSON API lists the service's queue with its counts and jobs", async () => {
      await enqueueContourJob(queue, config, {
        task_id: taskId,
        upload_path: `${config.UPLOAD_DIR}/${taskId}.png`,
        filename: "coins.png",
        format: "png",
        size: 1234,
        submitted_at: new Date().toISOString(),
        options: AnalysisOptionsSchema.parse({}),
      });
      const res = await get("/api/queues");
      assert.equal(res.status, 200);
      const { queues } = await res.json();
      assert.deepEqual(queues.map((q: { name: string }) => q.name), [config.QUEUE_NAME]);
      const [q] = queues;
      // No worker runs in this test, so the job stays waiting.
      assert.equal(q.counts.waiting, 1);
      assert.equal(q.counts.active, 0);
      assert.equal(q.counts.failed, 0);
      assert.equal(q.readOnlyMode, true);
      assert.equal(q.allowRetries, false);

      const list = await get(`/api/queues?activeQueue=${config.QUEUE_NAME}&status=waiting&page=1&jobsPerPage=10`);
      assert.equal(list.status, 200);
      const jobs = (await list.json()).queues[0].jobs;
      assert.equal(jobs.length, 1);
      assert.equal(jobs[0].id, taskId);
      assert.equal(jobs[0].data.filename, "coins.png");

      const one = await get(`/api/queues/${config.QUEUE_NAME}/${taskId}`);
      assert.equal(one.status, 200);
      assert.equal((await one.json()).job.data.task_id, taskId);
    });

    await t.step(
      "in headless Chromium: asked for the key; with it typed into the login prompt the board renders",
      async () => {
        const report = await runBrowserScript<{ without_key: string; with_key: string; failed: string[] }>(
          "admin.mjs",
          [base, KEY, config.QUEUE_NAME],
        );
        if (!report) return;
        assert.equal(report.without_key, "asked for credentials", JSON.stringify(report));
        assert.equal(report.with_key, "rendered", JSON.stringify(report));
        // The page's assets and its API calls all carried the credentials.
        assert.deepEqual(report.failed, []);
      },
    );

    await t.step("read-only: every mutating call is refused and the queue is left as it was", async () => {
      const q = `/api/queues/${config.QUEUE_NAME}`;
      // Valid bodies, so a refusal is the read-only check and not the request validation that runs before it.
      const refused: [string, string, unknown?][] = [
        ["PUT", `${q}/${taskId}/clean`],
        ["PUT", `${q}/${taskId}/retry`],
        ["PUT", `${q}/${taskId}/promote`],
        ["PATCH", `${q}/${taskId}/update-data`, { jobData: { filename: "evil.png" } }],
        ["PATCH", `${q}/${taskId}/priority`, { priority: 1 }],
        ["PUT", `${q}/clean/completed`],
        ["PUT", `${q}/retry/failed`],
        ["PUT", `${q}/promote`],
        ["PUT", `${q}/empty`],
        ["PUT", `${q}/obliterate`],
        ["PUT", `${q}/pause`],
        ["PUT", `${q}/concurrency`, { concurrency: 1 }],
        ["POST", `${q}/add`, { name: "contours", data: {} }],
      ];
      for (const [method, path, body] of refused) {
        const res = await send(method, path, body);
        assert.equal(res.status, 405, `${method} ${path}`);
        // The service's error shape, with bull-board's key kept for its page.
        const { error } = await res.json();
        assert.equal(error.code, "read_only");
        assert.match(error.message, /^the dashboard is read-only/);
        assert.equal(error.key, "ERRORS.QUEUE_READ_ONLY");
      }
      // "Pause all" answers 200 but skips read-only queues.
      const all = await send("PUT", "/api/queues/pause");
      await all.body?.cancel();
      assert.equal(await queue.isPaused(), false);
      assert.ok(await queue.getJob(taskId), "the job was removed");
      assert.equal((await queue.getJobCounts("waiting")).waiting, 1);
      assert.equal((await queue.getJob(taskId))?.data.filename, "coins.png");
    });
  } finally {
    await server.shutdown();
    await queue.close().catch(() => {});
    await closeRedis(redis);
    await dropPrefix(config);
    await Deno.remove(config.UPLOAD_DIR.replace(/\/uploads$/, ""), { recursive: true }).catch(() => {});
  }
});
