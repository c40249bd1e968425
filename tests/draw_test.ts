import { decodeImage } from "../imaging/decode.ts";
import { drawMemoryBytes, drawOutlines } from "../imaging/draw.ts";
import type { OpenCV } from "../imaging/opencv.ts";
import { loadPipeline } from "../imaging/pipeline.ts";
import { otsuBinary, smoothGray } from "../imaging/prefilter.ts";
import type { Raster } from "../imaging/raster.ts";
import assert from "node:assert/strict";
import { assertSameBytes, fixture, SAMPLES, seededRandom } from "./fixtures.ts";
import { testWasmMatchesSource } from "./native_tools.ts";

/** What OpenCV.js's drawContours makes of the polygons on the raster (gray converted to RGB first), LINE_8. */
function openCVDrawing(
  cv: OpenCV,
  raster: Raster,
  counts: Int32Array,
  xy: Int32Array,
  thickness: number,
  rgb: [number, number, number],
): Uint8Array {
  const types = { 1: cv.CV_8UC1, 3: cv.CV_8UC3, 4: cv.CV_8UC4 };
  const owned: { delete(): void }[] = [];
  const keep = <M extends { delete(): void }>(m: M) => (owned.push(m), m);
  try {
    let image = keep(new cv.Mat(raster.height, raster.width, types[raster.channels]));
    image.data.set(raster.data);
    if (raster.channels === 1) {
      const rgbImage = keep(new cv.Mat());
      cv.cvtColor(image, rgbImage, cv.COLOR_GRAY2RGB);
      image = rgbImage;
    }
    const polygons = keep(new cv.MatVector());
    let at = 0;
    for (const n of counts) {
      const polygon = keep(new cv.Mat(n, 1, cv.CV_32SC2));
      polygon.data32S.set(xy.subarray(at, at + 2 * n));
      polygons.push_back(polygon);
      at += 2 * n;
    }
    cv.drawContours(image, polygons, -1, new cv.Scalar(...rgb, 255), thickness, cv.LINE_8);
    return image.data.slice();
  } finally {
    for (const m of owned.reverse()) m.delete();
  }
}

function assertDrawsAsOpenCV(
  cv: OpenCV,
  raster: Raster,
  counts: Int32Array,
  xy: Int32Array,
  thickness: number,
  label: string,
) {
  const rgb: [number, number, number] = [17, 230, 41];
  const before = raster.data.slice();
  const ours = drawOutlines(raster, counts, xy, thickness, rgb, (r) => r.data.slice());
  assertSameBytes(ours, openCVDrawing(cv, raster, counts, xy, thickness, rgb), `${label}, thickness ${thickness}`);
  assertSameBytes(raster.data, before, `${label}: the raster is left as it was`);
}

/** The contours OpenCV.js finds in a raster (tree, simple), packed as counts and interleaved vertices. */
function sampleContours(cv: OpenCV, raster: Raster): { counts: Int32Array; xy: Int32Array } {
  const { binary } = otsuBinary(smoothGray(raster, 5), false);
  const mat = new cv.Mat(raster.height, raster.width, cv.CV_8UC1);
  const found = new cv.MatVector();
  const hierarchy = new cv.Mat();
  try {
    mat.data.set(binary);
    cv.findContours(mat, found, hierarchy, cv.RETR_TREE, cv.CHAIN_APPROX_SIMPLE);
    const counts: number[] = [], xy: number[] = [];
    for (let i = 0; i < found.size(); i++) {
      const c = found.get(i);
      counts.push(c.data32S.length / 2);
      xy.push(...c.data32S);
      c.delete();
    }
    return { counts: Int32Array.from(counts), xy: Int32Array.from(xy) };
  } finally {
    for (const m of [mat, found, hierarchy]) m.delete();
  }
}

Deno.test("drawOutlines draws every sample's contours as OpenCV.js does, at thicknesses 1 to 5", async (t) => {
  const cv = await loadPipeline();
  for (const name of SAMPLES) {
    await t.step(name, async () => {
      const { raster } = decodeImage(await fixture(name));
      const { counts, xy } = sampleContours(cv, raster);
      for (const thickness of [1, 2, 3, 4, 5]) assertDrawsAsOpenCV(cv, raster, counts, xy, thickness, name);
    });
  }
});

Deno.test("drawOutlines equals OpenCV.js on random polygons: gray, RGB and RGBA, every slope, the borders and beyond", async () => {
  const cv = await loadPipeline();
  const random = seededRandom(20261206);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const sizes = [[1, 1], [2, 3], [5, 1], [9, 9], [31, 17], [64, 48], [130, 97]];
  for (const [width, height] of sizes) {
    for (const channels of [1, 3, 4] as const) {
      const data = new Uint8Array(width * height * channels).map(() => int(0, 255));
      const raster: Raster = { width, height, channels, data };
      for (let trial = 0; trial < 6; trial++) {
        const counts: number[] = [], xy: number[] = [];
        for (let p = int(1, 5); p > 0; p--) {
          const n = int(1, 12);
          counts.push(n);
          // Mostly inside, some on the edges, some beyond them (drawn clipped); single points and repeats too.
          for (let v = 0; v < n; v++) {
            const beyond = random() < 0.15;
            xy.push(
              beyond ? int(-20, width + 20) : int(0, width - 1),
              beyond ? int(-20, height + 20) : int(0, height - 1),
            );
          }
        }
        const c = Int32Array.from(counts), v = Int32Array.from(xy);
        for (const thickness of [1, 2, 3, 6, 11]) {
          assertDrawsAsOpenCV(cv, raster, c, v, thickness, `${width}×${height}×${channels}, trial ${trial}`);
        }
      }
    }
  }
  assert.ok(drawMemoryBytes() > 0);
});

testWasmMatchesSource("build:draw", "imaging/draw/draw.wasm");
