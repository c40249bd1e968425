import assert from "node:assert/strict";
import { analyseContours } from "../imaging/contours.ts";
import { decodeImage } from "../imaging/decode.ts";
import type { OpenCV } from "../imaging/opencv.ts";
import { AnalysisOptionsSchema } from "../imaging/options.ts";
import { loadPipeline } from "../imaging/pipeline.ts";
import { otsuBinary, otsuThreshold, prefilterHandles, prefilterMemoryBytes, smoothGray } from "../imaging/prefilter.ts";
import type { Raster } from "../imaging/raster.ts";
import { assertSameBytes, fixture, openCVGray, SAMPLES, seededRandom } from "./fixtures.ts";
import { testWasmMatchesSource } from "./native_tools.ts";

const BLURS = [0, 1, 3, 5, 7];

/** What OpenCV.js makes of a raster: gray + GaussianBlur, then the Otsu threshold and binary image. */
function openCVReference(cv: OpenCV, r: Raster, blur: number, invert: boolean) {
  const gray = openCVGray(cv, r), smoothed = new cv.Mat(), binary = new cv.Mat();
  try {
    if (blur > 0) cv.GaussianBlur(gray, smoothed, new cv.Size(blur, blur), 0, 0, cv.BORDER_DEFAULT);
    else gray.copyTo(smoothed);
    const mode = (invert ? cv.THRESH_BINARY_INV : cv.THRESH_BINARY) | cv.THRESH_OTSU;
    const threshold = cv.threshold(smoothed, binary, 0, 255, mode);
    return { smoothed: smoothed.data.slice(), binary: binary.data.slice(), threshold };
  } finally {
    for (const m of [gray, smoothed, binary]) m.delete();
  }
}

function assertMatchesOpenCV(cv: OpenCV, r: Raster, label: string) {
  for (const blur of BLURS) {
    for (const invert of [false, true]) {
      const expected = openCVReference(cv, r, blur, invert);
      const smoothed = smoothGray(r, blur);
      assertSameBytes(smoothed.slice(), expected.smoothed, `${label}, blur ${blur}: smoothed`);
      const { threshold, binary } = otsuBinary(smoothed, invert);
      assert.equal(threshold, expected.threshold, `${label}, blur ${blur}: Otsu threshold`);
      assertSameBytes(binary.slice(), expected.binary, `${label}, blur ${blur}, invert ${invert}: binary`);
    }
  }
}

Deno.test("prefilter: gray, blur and Otsu equal OpenCV.js bit for bit on every sample", async (t) => {
  const cv = await loadPipeline();
  for (const name of SAMPLES) {
    await t.step(name, async () => assertMatchesOpenCV(cv, decodeImage(await fixture(name)).raster, name));
  }
});

Deno.test("prefilter: equal OpenCV.js on random images of every shape, borders and SIMD tails included", async () => {
  const cv = await loadPipeline();
  const random = seededRandom(20261125);
  // Tiny sizes reflect a border more than once; odd widths leave scalar tails after the 16-pixel loops.
  const sizes = [[1, 1], [1, 5], [5, 1], [2, 2], [3, 3], [4, 7], [7, 4], [15, 9], [16, 16], [17, 33], [31, 2], [
    257,
    129,
  ]];
  for (const [width, height] of sizes) {
    for (const channels of [1, 3, 4] as const) {
      for (const kind of ["noise", "gradient"]) {
        const data = new Uint8Array(width * height * channels);
        for (let i = 0; i < data.length; i++) {
          const p = Math.floor(i / channels);
          data[i] = kind === "noise"
            ? Math.floor(random() * 256)
            : ((p % width) * 7 + Math.floor(p / width) * 5 + Math.floor(random() * 30)) & 255;
        }
        assertMatchesOpenCV(cv, { width, height, channels, data }, `${width}×${height}×${channels} ${kind}`);
      }
    }
  }
});

Deno.test("otsuThreshold: OpenCV's edge cases (one grey level, two levels)", () => {
  const hist = new Uint32Array(256);
  hist[77] = 100;
  assert.equal(otsuThreshold(hist, 100), 0, "a flat image has no between-class variance: OpenCV answers 0");
  hist[200] = 300;
  assert.equal(otsuThreshold(hist, 400), 77, "two levels split at the lower one");
});

Deno.test("blur sizes over 7 are left to OpenCV.js, and give its result", async () => {
  const cv = await loadPipeline();
  assert.equal(prefilterHandles(9), false);
  const { raster } = decodeImage(await fixture("coins.png"));
  const analysis = analyseContours(cv, raster, AnalysisOptionsSchema.parse({ blur: 9 }), null);
  const expected = openCVReferenceContours(cv, raster, 9);
  assert.equal(analysis.threshold, expected.threshold);
  assert.equal(analysis.contours.length, expected.count);
});

function openCVReferenceContours(cv: OpenCV, r: Raster, blur: number) {
  const src = new cv.Mat(r.height, r.width, cv.CV_8UC1);
  const smoothed = new cv.Mat(), binary = new cv.Mat(), hierarchy = new cv.Mat(), found = new cv.MatVector();
  try {
    src.data.set(r.data);
    cv.GaussianBlur(src, smoothed, new cv.Size(blur, blur), 0, 0, cv.BORDER_DEFAULT);
    const threshold = cv.threshold(smoothed, binary, 0, 255, cv.THRESH_BINARY | cv.THRESH_OTSU);
    cv.findContours(binary, found, hierarchy, cv.RETR_TREE, cv.CHAIN_APPROX_SIMPLE);
    return { threshold, count: found.size() };
  } finally {
    for (const m of [src, smoothed, binary, hierarchy, found]) m.delete();
  }
}

testWasmMatchesSource("build:prefilter", "imaging/prefilter/prefilter.wasm");

Deno.test("prefilter: after an image over 64 MiB of buffers, a smaller one starts afresh and is still exact", async () => {
  const cv = await loadPipeline();
  const random = seededRandom(5);
  const big = { width: 4000, height: 3000, channels: 4 as const, data: new Uint8Array(4000 * 3000 * 4) };
  big.data.fill(90);
  smoothGray(big, 5);
  assert.ok(prefilterMemoryBytes() > 64 * 1024 * 1024);
  const small = { width: 64, height: 48, channels: 3 as const, data: new Uint8Array(64 * 48 * 3) };
  for (let i = 0; i < small.data.length; i++) small.data[i] = Math.floor(random() * 256);
  assertMatchesOpenCV(cv, small, "after a large image");
  assert.ok(prefilterMemoryBytes() < 64 * 1024 * 1024, `${prefilterMemoryBytes()} bytes held`);
});
