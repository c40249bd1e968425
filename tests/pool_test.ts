import assert from "node:assert/strict";
import { ImageError } from "../imaging/image_error.ts";
import { DEFAULT_OPTIONS } from "../imaging/options.ts";
import { analyseImage, loadPipeline } from "../imaging/pipeline.ts";
import { createAnalysisPool } from "../imaging/pool.ts";
import { assertSameBytes, fixture, SAMPLES } from "./fixtures.ts";

Deno.test("analysis pool: Web Workers, each with its own OpenCV.js", async (t) => {
  const pool = await createAnalysisPool(2);
  try {
    await t.step("results equal the in-thread pipeline's for every sample, run concurrently", async () => {
      // Pool members decode JPEGs with libjpeg-turbo (WASM); so does this thread once it is loaded.
      const cv = await loadPipeline();
      const results = await Promise.all(
        SAMPLES.map(async (name) => ({
          name,
          out: await pool.analyse(await fixture(name), DEFAULT_OPTIONS, Infinity, { task_id: name }),
        })),
      );
      for (const { name, out } of results) {
        const local = analyseImage(cv, await fixture(name));
        const { contours, ...summary } = local.report;
        const document = JSON.parse(new TextDecoder().decode(out.document));
        assert.deepEqual(document.contours, contours, name);
        assert.deepEqual({ ...out.report, timings_ms: undefined }, { ...summary, timings_ms: undefined }, name);
        assertSameBytes(out.image!, local.image!, `${name}: the image`);
        assert.equal(document.task_id, name, "header fields lead the document");
      }
    });
    await t.step("image errors cross the boundary with their code", async () => {
      await assert.rejects(
        () => pool.analyse(new TextEncoder().encode("not an image"), DEFAULT_OPTIONS, Infinity),
        (e) => e instanceof ImageError && e.code === "not_an_image",
      );
      await assert.rejects(
        async () => pool.analyse(await fixture("coins.png"), DEFAULT_OPTIONS, 10),
        (e) => e instanceof ImageError && e.code === "image_too_large",
      );
    });
    await t.step("the calling thread keeps running while a member works (lock renewal is never starved)", async () => {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      try {
        await pool.analyse(await fixture("hubble_deep_field.jpg"), DEFAULT_OPTIONS, Infinity);
      } finally {
        clearInterval(timer);
      }
      // In-thread, the synchronous pipeline would hold the event loop until it returned: no tick could fire.
      assert.ok(ticks > 0, "the event loop was blocked during analysis");
    });
    await t.step("more requests than members queue and all complete", async () => {
      const coins = await fixture("coins.png");
      const outs = await Promise.all(
        Array.from({ length: 7 }, () => pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity)),
      );
      assert.deepEqual(outs.map((o) => o.report.contour_count), Array(7).fill(61));
    });
  } finally {
    pool.close();
  }
});
