import assert from "node:assert/strict";
import { join } from "node:path";
import { AnalysisOptionsSchema } from "../imaging/options.ts";
import { analyseImage, loadPipeline } from "../imaging/pipeline.ts";
import { PACK_MIN_POINTS } from "../imaging/polygons.ts";
import { noisePng } from "../bench/heavy.ts";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue } from "../queue/contour_queue.ts";
import { sweepRetention } from "../storage/retention.ts";
import { assertSameBytes, fixture } from "./fixtures.ts";
import { listDir, listUploads, startTestService, waitForTask } from "./harness.ts";

const HOUR = 3_600_000;

async function submit(base: string, name: string, fields: Record<string, string> = {}, bytes?: Uint8Array) {
  const form = new FormData();
  form.append("file", new File([(bytes ?? await fixture(name)) as Uint8Array<ArrayBuffer>], name));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
  assert.equal(res.status, 202);
  const { task_id } = await res.json();
  const status = await waitForTask(base, task_id);
  assert.equal(status.state, "completed", JSON.stringify(status));
  return { id: task_id as string, result: status.result as Record<string, string> & { timings_ms: { draw: number } } };
}

/** What the worker would have drawn at analysis time (RENDER=eager), computed in this thread as a pool member would. */
async function eagerImage(name: string, fields: Record<string, string> = {}, bytes?: Uint8Array): Promise<Uint8Array> {
  return analyseImage(await loadPipeline(), bytes ?? await fixture(name), AnalysisOptionsSchema.parse(fields)).image!;
}

Deno.test("RENDER=lazy: the annotated image is drawn on its first request, identical to an eager one", async (t) => {
  const svc = await startTestService({ RENDER: "lazy", WORKER_CONCURRENCY: "1" });
  const { UPLOAD_DIR, RESULT_DIR } = svc.config;
  try {
    await t.step(
      "a completed task has its document but no image yet, and keeps its upload; the image is drawn from the document",
      async () => {
        const { id, result } = await submit(svc.base, "rocket.jpg");
        assert.equal(result.timings_ms.draw, 0);
        // 2,874 vertices: below PACK_MIN_POINTS, so no packed polygons beside the document.
        assert.deepEqual((await listDir(RESULT_DIR)).filter((f) => f.startsWith(id)).sort(), [`${id}.json`]);
        assert.equal((await listDir(UPLOAD_DIR)).filter((f) => f.startsWith(id)).length, 1);

        const res = await fetch(svc.base + result.result_url);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("content-type"), "image/png");
        const first = new Uint8Array(await res.arrayBuffer());
        assertSameBytes(first, await eagerImage("rocket.jpg"), "same bytes as drawing at analysis time");
        assert.deepEqual((await listDir(RESULT_DIR)).filter((f) => f.startsWith(id)).sort(), [
          `${id}.json`,
          `${id}.png`,
        ]);
        assert.deepEqual((await listDir(UPLOAD_DIR)).filter((f) => f.startsWith(id)), [], "upload removed once drawn");
        const again = new Uint8Array(await (await fetch(svc.base + result.result_url)).arrayBuffer());
        assertSameBytes(again, first, "the second request");

        // Revalidated on each use (so a deleted result is not served from a cache), and a revalidation is a 304.
        const head = await fetch(svc.base + result.result_url);
        await head.body?.cancel();
        assert.equal(head.headers.get("cache-control"), "no-cache");
        const etag = head.headers.get("etag")!;
        const modified = head.headers.get("last-modified")!;
        assert.match(etag, /^W\/"[0-9a-f]+-[0-9a-f]+"$/);
        for (
          const [headers, status] of [
            [{ "if-none-match": etag }, 304],
            [{ "if-none-match": `"other", ${etag.slice(2)}` }, 304],
            [{ "if-none-match": '"other"' }, 200],
            [{ "if-modified-since": modified }, 304],
            [{ "if-modified-since": new Date(Date.parse(modified) - 1000).toUTCString() }, 200],
            // If-None-Match decides alone when both come.
            [{ "if-none-match": '"other"', "if-modified-since": modified }, 200],
          ] as [Record<string, string>, number][]
        ) {
          const res = await fetch(svc.base + result.result_url, { headers });
          assert.equal(res.status, status, JSON.stringify(headers));
          if (status === 304) assert.equal(res.headers.get("etag"), etag);
          await res.body?.cancel();
        }
      },
    );

    await t.step("drawing options and JPEG output are honoured; concurrent first requests all get it", async () => {
      const fields = { color: "#ff0000", thickness: "3", output_format: "jpeg" };
      const { result } = await submit(svc.base, "coins.png", fields);
      assert.match(result.result_url, /\.jpg$/);
      const answers = await Promise.all(Array.from({ length: 5 }, () => fetch(svc.base + result.result_url)));
      const expected = await eagerImage("coins.png", fields);
      for (const res of answers) {
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("content-type"), "image/jpeg");
        assertSameBytes(new Uint8Array(await res.arrayBuffer()), expected, "a concurrent first request");
      }
      // The other extension is not this task's image.
      const other = await fetch(svc.base + result.result_url.replace(/\.jpg$/, ".png"));
      assert.equal(other.status, 404);
      await other.body?.cancel();
    });

    // An 800×800 noise image: 4,686 contours and 124,142 vertices, above PACK_MIN_POINTS.
    const noise = await noisePng(800);
    await t.step(
      "a large result keeps its polygons packed, is drawn from them to the same bytes, then they go",
      async () => {
        const fields = { color: "#00ff00", thickness: "2" };
        const { id, result } = await submit(svc.base, "noise.png", fields, noise);
        assert.ok(Number(result.total_points) >= PACK_MIN_POINTS, `${result.total_points} vertices`);
        assert.deepEqual((await listDir(RESULT_DIR)).filter((f) => f.startsWith(id)).sort(), [
          `${id}.json`,
          `${id}.polygons`,
        ]);
        const res = await fetch(svc.base + result.result_url);
        assert.equal(res.status, 200);
        assertSameBytes(
          new Uint8Array(await res.arrayBuffer()),
          await eagerImage("noise.png", fields, noise),
          "from the packed polygons",
        );
        assert.deepEqual((await listDir(RESULT_DIR)).filter((f) => f.startsWith(id)).sort(), [
          `${id}.json`,
          `${id}.png`,
        ]);
      },
    );

    await t.step("DELETE of an undrawn result removes its packed polygons with the rest", async () => {
      const { id } = await submit(svc.base, "noise.png", {}, noise);
      assert.ok((await listDir(RESULT_DIR)).includes(`${id}.polygons`));
      assert.equal((await fetch(`${svc.base}/api/v1/images/${id}`, { method: "DELETE" })).status, 204);
      assert.deepEqual((await listDir(RESULT_DIR)).filter((f) => f.startsWith(id)), []);
    });

    await t.step("upload gone before the first request → 410 image_gone, the contour data still served", async () => {
      const { id, result } = await submit(svc.base, "page.png");
      for (const f of (await listDir(UPLOAD_DIR)).filter((f) => f.startsWith(id))) {
        await Deno.remove(join(UPLOAD_DIR, f));
      }
      const res = await fetch(svc.base + result.result_url);
      assert.equal(res.status, 410);
      assert.equal((await res.json()).error.code, "image_gone");
      const data = await fetch(svc.base + result.data_url);
      assert.equal(data.status, 200);
      await data.body?.cancel();
    });

    await t.step(
      "retention keeps an undrawn result's upload past UPLOAD_TTL_HOURS, as long as the result",
      async () => {
        const { id } = await submit(svc.base, "camera.png");
        const name = (await listDir(UPLOAD_DIR)).find((f) => f.startsWith(id))!;
        const old = new Date(Date.now() - 30 * HOUR);
        await Deno.utime(join(UPLOAD_DIR, name), old, old);
        const redis = createRedis(svc.config, "producer");
        await connectRedis(redis);
        const queue = createContourQueue(svc.config, redis);
        try {
          const report = await sweepRetention(svc.config, queue, redis);
          assert.equal(report.uploads, 0);
          assert.ok((await listDir(UPLOAD_DIR)).includes(name));
        } finally {
          await queue.close();
          await closeRedis(redis);
        }
      },
    );
  } finally {
    await svc.close();
  }
});

Deno.test("RENDER=eager (the default): the worker draws the image before the task completes and removes the upload", async () => {
  const svc = await startTestService({ WORKER_CONCURRENCY: "1" });
  try {
    assert.equal(svc.config.RENDER, "eager");
    const { id, result } = await submit(svc.base, "rocket.jpg");
    assert.ok(result.timings_ms.draw > 0);
    assert.ok((await listDir(svc.config.RESULT_DIR)).includes(`${id}.png`));
    const res = await fetch(svc.base + result.result_url);
    assertSameBytes(new Uint8Array(await res.arrayBuffer()), await eagerImage("rocket.jpg"), "the worker's image");
    // Removal follows BullMQ's confirmation of completion, a moment after the status says completed.
    const until = Date.now() + 5000;
    while ((await listUploads(svc.config.UPLOAD_DIR)).length && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(await listUploads(svc.config.UPLOAD_DIR), []);
  } finally {
    await svc.close();
  }
});

Deno.test("the upload's render field overrides RENDER for that task, either way", async (t) => {
  for (const [setting, field] of [["eager", "lazy"], ["lazy", "eager"]] as const) {
    await t.step(`RENDER=${setting}, render=${field}`, async () => {
      const svc = await startTestService({ RENDER: setting, WORKER_CONCURRENCY: "1" });
      try {
        const { id, result } = await submit(svc.base, "coins.png", { render: field });
        const drawn = (await listDir(svc.config.RESULT_DIR)).includes(`${id}.png`);
        assert.equal(drawn, field === "eager", "the image exists at completion only when drawn eagerly");
        assert.equal(result.timings_ms.draw > 0, field === "eager");
        const res = await fetch(svc.base + result.result_url);
        assertSameBytes(new Uint8Array(await res.arrayBuffer()), await eagerImage("coins.png"), "served either way");
        const bad = new FormData();
        bad.append("file", new File([await fixture("coins.png") as Uint8Array<ArrayBuffer>], "coins.png"));
        bad.append("render", "later");
        const refused = await fetch(`${svc.base}/api/v1/images/upload`, { method: "POST", body: bad });
        assert.equal(refused.status, 400);
        assert.equal((await refused.json()).error.code, "validation_error");
      } finally {
        await svc.close();
      }
    });
  }
});
