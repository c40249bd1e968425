import assert from "node:assert/strict";
import { decodeImage } from "../imaging/decode.ts";
import { fixture, nativeReference, SAMPLES } from "./fixtures.ts";
import { listUploads, startTestService, upload, waitForTask } from "./harness.ts";

const LOSSLESS = new Set(["coins.png", "camera.png", "page.png", "coins.bmp", "camera.tif"]);

Deno.test("upload → queue → contours → results, for every sample", async (t) => {
  const svc = await startTestService({ WORKER_CONCURRENCY: "2" });
  try {
    const tasks = new Map<string, string>();
    await t.step("each upload is accepted with 202 and the original's fields", async () => {
      for (const name of SAMPLES) {
        const res = await upload(svc.base, await fixture(name), name);
        assert.equal(res.status, 202, `${name}: ${res.status}`);
        const body = await res.json();
        for (const k of ["message", "status", "task_id", "filename", "file_path", "status_url"]) {
          assert.ok(k in body, `missing ${k}`);
        }
        assert.equal(body.filename, name);
        // Stored under a server-generated name, never the client's.
        assert.ok(!body.file_path.includes(name.split(".")[0]), body.file_path);
        assert.match(body.file_path, new RegExp(`${body.task_id}\\.(png|jpg|bmp|tif)$`));
        assert.equal(body.status_url, `/api/v1/images/status/${body.task_id}`);
        assert.equal(res.headers.get("location"), body.status_url);
        tasks.set(name, body.task_id);
      }
    });

    await t.step("every task completes with the native contour count and a decodable annotated image", async () => {
      for (const [name, id] of tasks) {
        const status = await waitForTask(svc.base, id);
        assert.equal(status.state, "completed", `${name}: ${JSON.stringify(status)}`);
        assert.equal(status.progress, 100);
        assert.equal(status.attempts, 1);
        for (const k of ["submitted_at", "started_at", "finished_at"]) assert.ok(status[k], `${name}: ${k}`);
        const result = status.result as Record<string, number & string>;
        const ref = nativeReference(name);
        assert.equal(result.width, ref.width);
        assert.equal(result.height, ref.height);
        if (LOSSLESS.has(name)) assert.equal(result.contour_count, ref.contour_count, name);
        else {
          const diff = Math.abs(result.contour_count - ref.contour_count) / ref.contour_count;
          assert.ok(diff <= 0.05, `${name}: ${result.contour_count} vs native ${ref.contour_count}`);
        }
        assert.equal(result.result_url, `/static/results/${id}.png`);
        const img = await fetch(svc.base + result.result_url);
        assert.equal(img.status, 200);
        assert.equal(img.headers.get("content-type"), "image/png");
        assert.equal(img.headers.get("x-content-type-options"), "nosniff");
        const decoded = decodeImage(new Uint8Array(await img.arrayBuffer()));
        assert.deepEqual([decoded.raster.width, decoded.raster.height], [ref.width, ref.height]);
        const data = await (await fetch(svc.base + result.data_url)).json();
        assert.equal(data.contours.length, result.contour_count);
      }
    });

    await t.step("uploads are removed once their annotated image was drawn", async () => {
      // Drawn by the worker (RENDER=eager), which removes the upload once BullMQ confirms the completion.
      const until = Date.now() + 5000;
      while ((await listUploads(svc.config.UPLOAD_DIR)).length && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(await listUploads(svc.config.UPLOAD_DIR), []);
    });

    await t.step("results list: newest first, paginated with limit and cursor", async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let finished: string[] = [];
      do {
        const url: string = `${svc.base}/api/v1/images/results?limit=3${cursor ? `&cursor=${cursor}` : ""}`;
        const res: Response = await fetch(url);
        assert.equal(res.status, 200);
        const page = await res.json();
        assert.ok(page.items.length <= 3);
        for (const item of page.items) {
          assert.ok(item.task_id && item.filename && item.result_url && item.finished_at);
          assert.equal(typeof item.contour_count, "number");
          seen.push(item.task_id);
          finished.push(item.finished_at);
        }
        cursor = page.next_cursor;
      } while (cursor);
      assert.deepEqual(new Set(seen), new Set(tasks.values()));
      assert.equal(seen.length, tasks.size, "no item twice");
      const sorted = [...finished].sort().reverse();
      assert.deepEqual(finished, sorted, "newest first");
      finished = [];
    });

    await t.step("results list rejects a bad limit or a forged cursor", async () => {
      for (const q of ["limit=0", "limit=1000", "limit=abc", "cursor=not-a-cursor"]) {
        const res = await fetch(`${svc.base}/api/v1/images/results?${q}`);
        assert.equal(res.status, 400, q);
        const body = await res.json();
        assert.ok(body.error.code && body.error.message, q);
      }
    });
  } finally {
    await svc.close();
  }
});
