import assert from "node:assert/strict";
import { decodeImage } from "../imaging/decode.ts";
import { sniffFormat } from "../imaging/format.ts";
import { ImageError } from "../imaging/image_error.ts";
import { loadOpenCV } from "../imaging/opencv.ts";
import { analyseImage, loadPipeline } from "../imaging/pipeline.ts";
import { jpegBomb, pngBomb } from "./bombs.ts";
import { fixture, nativeReference, SAMPLES } from "./fixtures.ts";

Deno.test("every sample: contour count, hierarchy, Otsu threshold and every area equal native OpenCV 4.6", async (t) => {
  // As in a pool member: JPEGs go through libjpeg-turbo (WASM), the decoder native OpenCV uses, so they match exactly
  // too (our jpeg-js fallback is within 3 grey levels; jpeg_test.ts).
  const cv = await loadPipeline();
  for (const name of SAMPLES) {
    await t.step(name, async () => {
      const ref = nativeReference(name);
      const { report, image: png } = analyseImage(cv, await fixture(name));
      assert.equal(report.width, ref.width);
      assert.equal(report.height, ref.height);
      assert.equal(report.threshold, ref.otsu_threshold);
      assert.equal(report.contour_count, ref.contour_count);
      assert.equal(report.top_level_count, ref.top_level_count);
      assert.equal(report.total_points, ref.total_points);
      const areas = report.contours.map((c) => Math.round(c.area * 10) / 10).sort((a, b) => b - a);
      assert.deepEqual(areas, ref.areas_desc);
      const annotated = decodeImage(png!);
      assert.equal(annotated.format, "png");
      assert.deepEqual([annotated.raster.width, annotated.raster.height], [ref.width, ref.height]);
    });
  }
});

Deno.test("format sniffing uses content, not names", async (t) => {
  await t.step("text → not_an_image", () => {
    assert.throws(
      () => sniffFormat(new TextEncoder().encode("hello, world")),
      (e) => e instanceof ImageError && e.code === "not_an_image",
    );
  });
  await t.step("GIF → unsupported_image", () => {
    assert.throws(
      () => sniffFormat(new TextEncoder().encode("GIF89a......")),
      (e) => e instanceof ImageError && e.code === "unsupported_image",
    );
  });
  await t.step("truncated PNG → corrupt_image", async () => {
    const bytes = (await fixture("coins.png")).subarray(0, 2000);
    assert.throws(() => decodeImage(bytes), (e) => e instanceof ImageError && e.code === "corrupt_image");
  });
  await t.step("each sample's format", async () => {
    const expected: Record<string, string> = {
      "coins.png": "png",
      "rocket.jpg": "jpeg",
      "coins.bmp": "bmp",
      "camera.tif": "tiff",
    };
    for (const [name, format] of Object.entries(expected)) assert.equal(sniffFormat(await fixture(name)), format);
  });
});

Deno.test("MAX_PIXELS is checked from the header before decoding, in the worker's pipeline too", async (t) => {
  const cv = await loadOpenCV();
  const tooLarge = (e: unknown) => e instanceof ImageError && e.code === "image_too_large";
  await t.step("PNG declaring 50000×50000", () => {
    assert.throws(() => analyseImage(cv, pngBomb(), undefined, 50_000_000), tooLarge);
  });
  await t.step("JPEG declaring 65500×65500", async () => {
    const bomb = jpegBomb(await fixture("rocket.jpg"));
    assert.throws(() => analyseImage(cv, bomb, undefined, 50_000_000), tooLarge);
  });
  await t.step("a real image over a small limit; under it, fine", async () => {
    const coins = await fixture("coins.png");
    assert.throws(
      () => analyseImage(cv, coins, undefined, 384 * 303 - 1),
      (e) => tooLarge(e) && /384×303/.test(String(e)),
    );
    assert.equal(analyseImage(cv, coins, undefined, 384 * 303).report.contour_count, 61);
  });
});
