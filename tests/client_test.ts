import assert from "node:assert/strict";
import { ContourApiError, type ContourClient, createContourClient } from "../client/mod.ts";
import { ErrorSchema } from "../routes/schemas.ts";
import { fixture, nativeReference } from "./fixtures.ts";
import { startTestService, type TestService, testTempDir } from "./harness.ts";
import { type PrismProxy, startPrism } from "./openapi_tools.ts";

const KEYS = ["key-one", "key-two"];

/** The real service behind Prism's validating proxy, and a fetch that sends each request the right way. */
interface Checked {
  svc: TestService;
  prism: PrismProxy;
  /**
   * Uploads and the binary images go to the service directly: Prism re-encodes multipart bodies and reads every body
   * it forwards as text. Everything else goes through Prism, and any violation it reports fails the request.
   */
  fetch(request: Request): Promise<Response>;
  /** `METHOD /path` of each request sent through `fetch`, in order. */
  requests: string[];
  close(): Promise<void>;
}

async function startChecked(overrides: Record<string, string>): Promise<Checked> {
  const svc = await startTestService(overrides);
  const dir = testTempDir();
  let prism: PrismProxy | undefined;
  try {
    const documentPath = `${dir}/openapi.json`;
    await Deno.writeTextFile(documentPath, await (await fetch(`${svc.base}/openapi.json`)).text());
    prism = await startPrism(documentPath, svc.base);
  } catch (err) {
    await svc.close();
    throw err;
  }
  const proxy = prism;
  const requests: string[] = [];
  return {
    svc,
    prism: proxy,
    requests,
    async fetch(request) {
      const url = new URL(request.url);
      requests.push(`${request.method} ${url.pathname}`);
      if (request.method === "POST" || /\.(png|jpg)$/.test(url.pathname)) {
        return fetch(new Request(svc.base + url.pathname + url.search, request));
      }
      const res = await fetch(request);
      const violations = res.headers.get("sl-violations");
      if (violations !== null || res.headers.get("content-type")?.startsWith("application/problem+json")) {
        const body = await res.text();
        throw new Error(
          `Prism: ${request.method} ${url.pathname}${url.search} → ${res.status} ${violations ?? ""}\n${body}\n` +
            proxy.output().slice(-3000),
        );
      }
      return res;
    },
    async close() {
      await proxy.close();
      await svc.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Runs `call` and returns the ContourApiError it must throw. */
async function apiError(call: () => Promise<unknown>, status: number, code: string): Promise<ContourApiError> {
  try {
    await call();
  } catch (err) {
    assert.ok(err instanceof ContourApiError, String(err));
    assert.equal(err.status, status, err.message);
    assert.equal(err.code, code, err.message);
    assert.ok(err.body.error.message.length > 0);
    return err;
  }
  throw new Error(`expected ${status} ${code}, got an answer`);
}

/** The README's walk-through, every export and every error a client meets, with the client built on the document. */
async function walkThrough(t: Deno.TestContext, checked: Checked, api: ContourClient): Promise<void> {
  const { svc } = checked;
  const coins = await fixture("coins.png");
  let taskId = "";
  let jpegId = "";

  await t.step("upload with options → 202, then the event stream to completion", async () => {
    const accepted = await api.upload(coins, { filename: "coins.png", color: "#ff0000", thickness: 3, invert: false });
    assert.equal(accepted.status, "queued");
    assert.equal(accepted.filename, "coins.png");
    taskId = accepted.task_id;
    const seen: string[] = [];
    const sent = checked.requests.length;
    const done = await api.waitForCompletion(taskId, { timeoutMs: 60_000, onStatus: (s) => seen.push(s.state) });
    assert.deepEqual(checked.requests.slice(sent), [`GET /api/v1/images/status/${taskId}/events`], "no polling");
    assert.equal(done.state, "completed", JSON.stringify(done));
    assert.equal(seen.at(-1), "completed");
    assert.equal(done.result?.contour_count, nativeReference("coins.png").contour_count);
    assert.equal(done.result?.options.color, "#ff0000");
  });

  await t.step(
    "waiting polls when the event stream is not passed through (a proxy that buffers or refuses it)",
    async () => {
      const noStreams = createContourClient({
        baseUrl: checked.prism.base,
        apiKey: svc.config.API_KEYS[0],
        fetch: (request) =>
          request.url.endsWith("/events")
            ? Promise.resolve(new Response("event streams are not passed", { status: 502 }))
            : checked.fetch(request),
      });
      const accepted = await noStreams.upload(coins, { filename: "coins.png", output_format: "jpeg", render: "lazy" });
      jpegId = accepted.task_id;
      const sent = checked.requests.length;
      const done = await noStreams.waitForCompletion(jpegId, { timeoutMs: 60_000, pollIntervalMs: 50 });
      assert.equal(done.state, "completed", JSON.stringify(done));
      assert.ok(checked.requests.length > sent);
      assert.equal(checked.requests.at(-1), `GET /api/v1/images/status/${jpegId}`, "polled");
    },
  );

  await t.step("straight from the service, the stream is live: every state as it happens", async () => {
    const direct = createContourClient({ baseUrl: svc.base, apiKey: svc.config.API_KEYS[0] });
    const { task_id } = await direct.upload(coins, { filename: "coins.png" });
    const seen: string[] = [];
    const done = await direct.waitForCompletion(task_id, { timeoutMs: 60_000, onStatus: (s) => seen.push(s.state) });
    assert.equal(done.state, "completed");
    assert.equal(seen.at(-1), "completed");
    await direct.delete(task_id);
  });

  await t.step("status and task with links (the contours at their documented path)", async () => {
    const status = await api.status(taskId);
    assert.equal(status.state, "completed");
    const task = await api.task(taskId);
    assert.equal(task.links.contours, `/api/v1/images/contours/${taskId}`);
    assert.equal(task.links.geojson, `/api/v1/images/contours/${taskId}?format=geojson`);
    assert.equal(task.result?.contours_url, `/api/v1/images/contours/${taskId}`);
  });

  await t.step("contours in every format: JSON, JSON without points, GeoJSON, SVG, the data file", async () => {
    const json = await api.contours(taskId);
    assert.equal(json.contours.length, nativeReference("coins.png").contour_count);
    assert.equal(json.contours[0].point_count, json.contours[0].points?.length);
    const lean = await api.contours(taskId, { points: false });
    assert.ok(lean.contours.every((c) => c.points === undefined));
    const geo = await api.contoursGeoJson(taskId);
    assert.equal(geo.type, "FeatureCollection");
    assert.ok(geo.features.length > 0);
    for (const f of geo.features) {
      for (const ring of f.geometry.coordinates) assert.deepEqual(ring[0], ring.at(-1), `feature ${f.id} ring closed`);
    }
    assert.deepEqual([geo.image.width, geo.image.height], [384, 303]);
    const svg = await api.contoursSvg(taskId);
    assert.match(svg, /^<svg [^>]*width="384" height="303"/);
    const name = `${taskId}.json`;
    const data = await api.raw.GET("/static/results/{name}", { params: { path: { name } } });
    assert.equal(data.response.status, 200);
    assert.equal((data.data as { contour_count: number }).contour_count, json.contour_count);
  });

  await t.step("the contours' other path is served by the same handler", async () => {
    const headers = svc.config.API_KEYS.length ? { "x-api-key": svc.config.API_KEYS[0] } : undefined;
    const other = await fetch(`${svc.base}/api/v1/images/${taskId}/contours?points=false`, { headers });
    assert.deepEqual(await other.json(), await api.contours(taskId, { points: false }));
  });

  await t.step("the annotated images: PNG, and JPEG drawn on its first request", async () => {
    const png = new Uint8Array(await (await api.image(taskId)).arrayBuffer());
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const view = new DataView(png.buffer, png.byteOffset);
    assert.deepEqual([view.getUint32(16), view.getUint32(20)], [384, 303]);
    const jpeg = new Uint8Array(await (await api.image(await api.status(jpegId))).arrayBuffer());
    assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8]);
  });

  await t.step("results: newest first, one page at a time", async () => {
    const all = await api.results();
    assert.deepEqual(all.items.map((i) => i.task_id), [jpegId, taskId]);
    const first = await api.results({ limit: 1 });
    assert.equal(first.items[0].task_id, jpegId);
    assert.ok(first.next_cursor);
    const second = await api.results({ limit: 1, cursor: first.next_cursor });
    assert.equal(second.items[0].task_id, taskId);
    assert.equal(second.next_cursor, null);
  });

  await t.step("health, info and metrics answer as documented", async () => {
    for (const path of ["/api/v1/health", "/api/v1/health/redis", "/api/v1/health/celery"] as const) {
      const { response } = await api.raw.GET(path);
      assert.equal(response.status, 200, path);
    }
    // The workers register with the queue in the background: healthy once they have, as documented either way.
    const worker = await api.raw.GET("/api/v1/health/worker");
    assert.ok([200, 503].includes(worker.response.status));
    const full = await api.raw.GET("/api/v1/health/full");
    assert.ok([200, 503].includes(full.response.status));
    const info = await api.raw.GET("/info");
    assert.equal(info.data?.name, svc.config.APP_NAME);
    const metrics = await api.raw.GET("/metrics", { parseAs: "text" });
    assert.match(metrics.data ?? "", /bip_http_requests_total/);
    const other = await fetch(`${svc.base}/api/v1/health/`);
    assert.equal((await other.json()).status, "healthy", "the original service's health path");
  });

  await t.step("404 not_found: unknown task, result file", async () => {
    const unknown = crypto.randomUUID();
    await apiError(() => api.status(unknown), 404, "not_found");
    await apiError(() => api.task(unknown), 404, "not_found");
    await apiError(() => api.contours(unknown), 404, "not_found");
    await apiError(() => api.contoursGeoJson(unknown), 404, "not_found");
    await apiError(() => api.image(unknown), 404, "not_found");
    await apiError(() => api.delete(unknown), 404, "not_found");
    await apiError(() => api.cancel(unknown), 404, "not_found");
    await apiError(() => api.waitForCompletion(unknown, { timeoutMs: 10_000 }), 404, "not_found");
    const file = await api.raw.GET("/static/results/{name}", { params: { path: { name: `${unknown}.json` } } });
    assert.equal(file.response.status, 404);
    assert.equal(file.error?.error.code, "not_found");
  });

  await t.step("400: a cursor that is not one; a malformed task id, refused by the document too", async () => {
    await apiError(() => api.results({ cursor: "not-a-cursor" }), 400, "invalid_cursor");
    // Prism refuses the request itself (its 422), from the document's format: uuid, without forwarding it.
    const headers = svc.config.API_KEYS.length ? { "x-api-key": svc.config.API_KEYS[0] } : undefined;
    const refused = await fetch(`${checked.prism.base}/api/v1/images/status/not-a-uuid`, { headers });
    assert.equal(refused.status, 422);
    assert.match(JSON.stringify(await refused.json()), /task_id/);
    const res = await fetch(`${svc.base}/api/v1/images/status/not-a-uuid`, { headers });
    assert.equal(res.status, 400);
    assert.equal(ErrorSchema.parse(await res.json()).error.code, "validation_error");
  });

  await t.step("uploads refused: 400 option and content, 413 size, 415 form", async () => {
    const err = await apiError(() => api.upload(coins, { blur: 4 }), 400, "validation_error");
    assert.match(err.body.error.message, /^blur:/);
    await apiError(
      () => api.upload(new TextEncoder().encode("not an image"), { filename: "x.png" }),
      400,
      "not_an_image",
    );
    const big = await fixture("hubble_deep_field.jpg");
    assert.ok(big.length > svc.config.MAX_FILE_SIZE);
    await apiError(() => api.upload(big, { filename: "big.jpg" }), 413, "file_too_large");
    const res = await checked.fetch(
      new Request(`${checked.prism.base}/api/v1/images/upload`, {
        method: "POST",
        headers: { "content-type": "application/json", ...svc.config.API_KEYS.length ? { "x-api-key": KEYS[0] } : {} },
        body: JSON.stringify({ file: "coins.png" }),
      }),
    );
    assert.equal(res.status, 415);
    assert.equal(ErrorSchema.parse(await res.json()).error.code, "unsupported_media_type");
  });

  await t.step("cancel of a completed task → 409 task_finished", async () => {
    await apiError(() => api.cancel(taskId), 409, "task_finished");
  });

  await t.step("delete → gone everywhere", async () => {
    await api.delete(jpegId);
    await api.delete(taskId);
    await apiError(() => api.status(taskId), 404, "not_found");
    await apiError(() => api.contours(taskId), 404, "not_found");
    assert.deepEqual((await api.results()).items, []);
  });
}

Deno.test("the typed client against the real service, each answer checked against the document by Prism", async (t) => {
  const checked = await startChecked({ MAX_FILE_SIZE: String(200 * 1024) });
  try {
    const api = createContourClient({ baseUrl: checked.prism.base, fetch: checked.fetch });
    await walkThrough(t, checked, api);
  } finally {
    await checked.close();
  }
});

Deno.test("the typed client with API_KEYS: 401 without a key, either scheme with one", async (t) => {
  const checked = await startChecked({ MAX_FILE_SIZE: String(200 * 1024), API_KEYS: KEYS.join(",") });
  try {
    const { svc, prism } = checked;
    await t.step("the document's security is the key check's: 401 exactly where it asks for a key", async () => {
      const document = await (await fetch(`${svc.base}/openapi.json`)).json();
      type Operation = { security: Record<string, string[]>[] };
      for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, Operation>>)) {
        for (const [method, op] of Object.entries(item)) {
          const url = svc.base +
            path.replace("{task_id}", crypto.randomUUID()).replace("{name}", `${crypto.randomUUID()}.png`);
          const res = await fetch(url, { method: method.toUpperCase() });
          await res.body?.cancel();
          const keyed = op.security.some((s) => "ApiKeyHeader" in s);
          assert.equal(res.status === 401, keyed, `${method} ${path}: ${res.status}`);
          if (keyed) assert.deepEqual(op.security, [{ ApiKeyHeader: [] }, { BearerAuth: [] }, {}]);
          else assert.deepEqual(op.security, []);
        }
      }
    });

    await t.step("401 unauthorized without a key or with a wrong one, as documented", async () => {
      const id = crypto.randomUUID();
      const coins = await fixture("coins.png");
      for (const apiKey of [undefined, "not-a-key"]) {
        const anonymous = createContourClient({ baseUrl: prism.base, fetch: checked.fetch, apiKey });
        await apiError(() => anonymous.status(id), 401, "unauthorized");
        await apiError(() => anonymous.task(id), 401, "unauthorized");
        await apiError(() => anonymous.contours(id), 401, "unauthorized");
        await apiError(() => anonymous.results(), 401, "unauthorized");
        await apiError(() => anonymous.delete(id), 401, "unauthorized");
        await apiError(() => anonymous.waitForCompletion(id, { timeoutMs: 10_000 }), 401, "unauthorized");
        await apiError(() => anonymous.upload(coins), 401, "unauthorized");
        const full = await anonymous.raw.GET("/api/v1/health/full");
        assert.equal(full.response.status, 401);
        assert.equal(ErrorSchema.parse(full.error).error.code, "unauthorized");
      }
    });

    await t.step("a key as Bearer token", async () => {
      const bearer = createContourClient({
        baseUrl: prism.base,
        fetch: checked.fetch,
        apiKey: KEYS[1],
        apiKeyAs: "bearer",
      });
      assert.deepEqual((await bearer.results()).items, []);
    });

    const api = createContourClient({ baseUrl: prism.base, fetch: checked.fetch, apiKey: KEYS[0] });
    await walkThrough(t, checked, api);
  } finally {
    await checked.close();
  }
});
