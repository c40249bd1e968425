import assert from "node:assert/strict";
import { getIssues } from "@placemarkio/check-geojson";
import { XMLParser } from "fast-xml-parser";
import { decodeImage } from "../imaging/decode.ts";
import { fixture, nativeReference } from "./fixtures.ts";
import { listDir, startTestService, waitForTask } from "./harness.ts";

function uploadWith(base: string, bytes: Uint8Array, name: string, fields: Record<string, string>): Promise<Response> {
  const form = new FormData();
  form.append("file", new File([bytes as Uint8Array<ArrayBuffer>], name));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
}

Deno.test("options over HTTP, measurements, exports and delete", async (t) => {
  // Uploads stay until their image is drawn on request, so the folder shows what each request stored.
  const svc = await startTestService({ RENDER: "lazy" });
  try {
    const coins = await fixture("coins.png");
    let defaultId = "";
    await t.step("default options: counts and every area equal native, options echoed", async () => {
      const res = await uploadWith(svc.base, coins, "coins.png", {});
      assert.equal(res.status, 202);
      defaultId = (await res.json()).task_id;
      const status = await waitForTask(svc.base, defaultId);
      const result = status.result as Record<string, unknown>;
      assert.equal(result.contour_count, 61);
      assert.equal((result.options as Record<string, unknown>).threshold, "otsu");
      assert.equal((result.options as Record<string, unknown>).blur, 5);
      const data = await (await fetch(`${svc.base}/api/v1/images/${defaultId}/contours`)).json();
      const areas = data.contours.map((c: { area: number }) => Math.round(c.area * 10) / 10).sort((
        a: number,
        b: number,
      ) => b - a);
      assert.deepEqual(areas, nativeReference("coins.png").areas_desc);
      for (const k of ["id", "parent", "depth", "area", "perimeter", "bbox", "centroid", "convex", "circularity"]) {
        assert.ok(k in data.contours[0], k);
      }
      assert.equal(data.contours[0].point_count, data.contours[0].points.length);
      for (const k of ["decode", "analyse", "measure", "draw", "encode"]) {
        assert.equal(typeof data.timings_ms[k], "number");
      }
    });
    await t.step("options change the result: external + min_area, JPEG output", async () => {
      const res = await uploadWith(svc.base, coins, "coins.png", {
        retrieval: "external",
        min_area: "500",
        output_format: "jpeg",
        color: "#ff0000",
        thickness: "3",
      });
      assert.equal(res.status, 202);
      const status = await waitForTask(svc.base, (await res.json()).task_id);
      const result = status.result as { contour_count: number; result_url: string; top_level_count: number };
      const ref = nativeReference("coins.png");
      assert.ok(result.contour_count > 0 && result.contour_count < ref.top_level_count, String(result.contour_count));
      assert.equal(result.top_level_count, result.contour_count);
      assert.match(result.result_url, /\.jpg$/);
      const img = await fetch(svc.base + result.result_url);
      assert.equal(img.headers.get("content-type"), "image/jpeg");
      const decoded = decodeImage(new Uint8Array(await img.arrayBuffer()));
      assert.equal(decoded.format, "jpeg");
      assert.deepEqual([decoded.raster.width, decoded.raster.height], [ref.width, ref.height]);
    });
    await t.step("invalid options → 400 naming the field, nothing stored", async () => {
      for (const [field, value] of [["blur", "4"], ["threshold", "magic"], ["color", "green"], ["retrieval", "x"]]) {
        const res = await uploadWith(svc.base, coins, "coins.png", { [field]: value });
        const body = await res.json();
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(body.error.code, "validation_error");
        assert.ok(body.error.message.startsWith(`${field}:`), body.error.message);
      }
      const res = await uploadWith(svc.base, coins, "coins.png", { canny_low: "300", canny_high: "100" });
      assert.equal(res.status, 400);
      assert.match((await res.json()).error.message, /^canny_low:/);
    });
    await t.step("a mistyped field, a number not in decimal notation → 400, never the defaults", async () => {
      const cases: [Record<string, string>, RegExp][] = [
        [{ treshold: "binary" }, /^treshold: not a field of this form \(it takes file, threshold, /],
        [{ blur: "0x5" }, /^blur: must be a decimal number$/],
        [{ blur: " 5" }, /^blur: must be a decimal number$/],
        [{ blur: "" }, /^blur: must be a decimal number$/],
        [{ invert: "maybe" }, /^invert: must be true or false \(or 1\/0, yes\/no, on\/off\)$/],
      ];
      for (const [fields, message] of cases) {
        const res = await uploadWith(svc.base, coins, "coins.png", fields);
        const body = await res.json();
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(body.error.code, "validation_error");
        assert.match(body.error.message, message);
      }
      assert.deepEqual(await listDir(svc.config.UPLOAD_DIR).then((f) => f.filter((n) => !n.startsWith("."))), [
        `${defaultId}.png`,
      ]);
    });
    await t.step("booleans in any case; 1e2 and 3.0 are decimal numbers", async () => {
      const res = await uploadWith(svc.base, coins, "coins.png", {
        invert: "TRUE",
        threshold_value: "1e2",
        blur: "3.0",
      });
      assert.equal(res.status, 202);
      const { task_id } = await res.json();
      const status = await waitForTask(svc.base, task_id);
      assert.equal(status.state, "completed");
      const result = status.result as { options: Record<string, unknown>; finished_at: string };
      assert.equal(result.options.invert, true);
      assert.equal(result.options.threshold_value, 100);
      assert.equal(result.options.blur, 3);
      // One finish time, the one the results list sorts by.
      assert.equal(status.finished_at, result.finished_at);
      assert.equal((await fetch(`${svc.base}/api/v1/images/${task_id}`, { method: "DELETE" })).status, 204);
    });
    await t.step("task ids in upper case name the same task", async () => {
      const res = await fetch(`${svc.base}/api/v1/images/status/${defaultId.toUpperCase()}`);
      assert.equal(res.status, 200);
      assert.equal((await res.json()).task_id, defaultId);
    });
    await t.step("other methods on the upload path → 405 with Allow: POST", async () => {
      for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
        const res = await fetch(`${svc.base}/api/v1/images/upload`, { method });
        assert.equal(res.status, 405, method);
        assert.equal(res.headers.get("allow"), "POST");
        assert.equal((await res.json()).error.code, "method_not_allowed");
      }
    });
    await t.step("GET /api/v1/images/{id}: status plus links to every export", async () => {
      const body = await (await fetch(`${svc.base}/api/v1/images/${defaultId}`)).json();
      assert.equal(body.state, "completed");
      for (const k of ["status", "contours", "svg", "geojson", "image", "data"]) assert.ok(body.links[k], k);
      for (const k of ["contours", "svg", "geojson", "image"]) {
        const res = await fetch(svc.base + body.links[k]);
        assert.equal(res.status, 200, k);
        await res.body?.cancel();
      }
    });
    await t.step("?points=false omits vertices; SVG and GeoJSON parse", async () => {
      const lean = await (await fetch(`${svc.base}/api/v1/images/${defaultId}/contours?points=false`)).json();
      assert.equal(lean.contours.length, 61);
      assert.ok(
        lean.contours.every((c: Record<string, unknown>) => !("points" in c) && typeof c.point_count === "number"),
      );
      const svgRes = await fetch(`${svc.base}/api/v1/images/${defaultId}/contours?format=svg`);
      assert.match(svgRes.headers.get("content-type")!, /^image\/svg\+xml/);
      assert.equal(svgRes.headers.get("x-content-type-options"), "nosniff");
      const svg = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(await svgRes.text());
      assert.equal(svg.svg.viewBox, "0 0 384 303");
      assert.ok(!JSON.stringify(svg).includes("script"));
      const geoRes = await fetch(`${svc.base}/api/v1/images/${defaultId}/contours?format=geojson`);
      assert.equal(geoRes.headers.get("content-type"), "application/geo+json");
      const text = await geoRes.text();
      assert.deepEqual(getIssues(text), []);
      assert.ok(JSON.parse(text).features.length > 0);
      const bad = await fetch(`${svc.base}/api/v1/images/${defaultId}/contours?format=pdf`);
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
    });
    await t.step("DELETE removes the job, its files and its place in the results list", async () => {
      const files = (await listDir(svc.config.RESULT_DIR)).filter((f) => f.startsWith(defaultId));
      assert.equal(files.length, 2);
      const del = await fetch(`${svc.base}/api/v1/images/${defaultId}`, { method: "DELETE" });
      assert.equal(del.status, 204);
      await del.body?.cancel();
      assert.deepEqual((await listDir(svc.config.RESULT_DIR)).filter((f) => f.startsWith(defaultId)), []);
      const gone = await fetch(`${svc.base}/api/v1/images/status/${defaultId}`);
      assert.equal(gone.status, 404);
      await gone.body?.cancel();
      const list = await (await fetch(`${svc.base}/api/v1/images/results?limit=100`)).json();
      assert.ok(list.items.every((i: { task_id: string }) => i.task_id !== defaultId));
      const again = await fetch(`${svc.base}/api/v1/images/${defaultId}`, { method: "DELETE" });
      assert.equal(again.status, 404);
      await again.body?.cancel();
    });
    await t.step("a format feature the decoders lack → failed with unsupported_image naming it", async () => {
      const bmp = (await fixture("coins.bmp")).slice();
      // biCompression = 4 (a JPEG inside the BMP), which no decoder here handles.
      new DataView(bmp.buffer).setUint32(30, 4, true);
      const res = await uploadWith(svc.base, bmp, "coins.bmp", {});
      assert.equal(res.status, 202);
      const status = await waitForTask(svc.base, (await res.json()).task_id);
      assert.equal(status.state, "failed");
      assert.equal(status.attempts, 1);
      assert.deepEqual(status.error, { code: "unsupported_image", message: "BMP compression 4" });
      // Nothing to export from a failed task: only the status link is offered.
      const task = await (await fetch(`${svc.base}/api/v1/images/${status.task_id}`)).json();
      assert.deepEqual(task.links, { status: `/api/v1/images/status/${status.task_id}` });
    });
  } finally {
    await svc.close();
  }
});
