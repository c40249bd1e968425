import assert from "node:assert/strict";
import { APPROX, RETRIEVAL } from "../imaging/contours.ts";
import { decodeImage } from "../imaging/decode.ts";
import type { OpenCV } from "../imaging/opencv.ts";
import { loadPipeline } from "../imaging/pipeline.ts";
import { otsuBinary, smoothGray } from "../imaging/prefilter.ts";
import {
  type Approximation,
  loadTrace,
  type Retrieval,
  traceContours,
  type TracedContours,
  traceHandles,
  traceMemoryBytes,
} from "../imaging/trace.ts";
import { assertSameBytes, fixture, SAMPLES, seededRandom } from "./fixtures.ts";
import { testWasmMatchesSource } from "./native_tools.ts";

const RETRIEVALS: Retrieval[] = ["external", "list", "ccomp", "tree"];
const APPROXIMATIONS: Approximation[] = ["none", "simple", "tc89_l1", "tc89_kcos"];

/** Every combination the kernel claims: each is compared with OpenCV.js. */
const MODES = RETRIEVALS.flatMap((r) => APPROXIMATIONS.filter((a) => traceHandles(r, a)).map((a) => [r, a] as const));

/** An image: one byte per pixel, row-major. */
interface Binary {
  data: Uint8Array;
  width: number;
  height: number;
  label: string;
}

/** cv.findContours on the same image, flattened as traceContours returns it. */
function openCVContours(
  cv: OpenCV,
  { data, width, height }: Binary,
  retrieval: Retrieval,
  approximation: Approximation,
): TracedContours {
  const mat = new cv.Mat(height, width, cv.CV_8UC1);
  const found = new cv.MatVector();
  const hierarchy = new cv.Mat();
  try {
    mat.data.set(data);
    cv.findContours(mat, found, hierarchy, cv[RETRIEVAL[retrieval]], cv[APPROX[approximation]]);
    const n = found.size();
    const counts = new Int32Array(n);
    const parts: Int32Array[] = [];
    for (let i = 0; i < n; i++) {
      const c = found.get(i);
      try {
        counts[i] = c.rows;
        parts.push(c.data32S.slice());
      } finally {
        c.delete();
      }
    }
    const xy = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
    parts.reduce((at, p) => (xy.set(p, at), at + p.length), 0);
    return { counts, xy, hierarchy: n > 0 ? hierarchy.data32S.slice() : new Int32Array(0) };
  } finally {
    for (const m of [mat, found, hierarchy]) m.delete();
  }
}

function same(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Contour for contour, vertex for vertex and link for link. Equal arrays are checked with a loop (node:assert's diff of
 * large arrays takes minutes); on a difference, the first contour that differs is what the failure shows.
 */
function assertSameContours(actual: TracedContours, expected: TracedContours, label: string): void {
  if (
    same(actual.counts, expected.counts) && same(actual.xy, expected.xy) && same(actual.hierarchy, expected.hierarchy)
  ) {
    return;
  }
  assert.equal(actual.counts.length, expected.counts.length, `${label}: number of contours`);
  let at = 0;
  for (let i = 0; i < expected.counts.length; i++) {
    const n = expected.counts[i];
    const contour = (c: TracedContours) => ({
      vertices: Array.from(c.xy.subarray(2 * at, 2 * (at + c.counts[i]))),
      hierarchy: Array.from(c.hierarchy.subarray(4 * i, 4 * i + 4)),
    });
    assert.deepEqual(contour(actual), contour(expected), `${label}: contour ${i}`);
    at += n;
  }
  assert.fail(`${label}: the arrays differ although every contour is the same`);
}

/** Compares traceContours with OpenCV.js on `image` in every mode; returns the number of comparisons. */
function assertMatchesOpenCV(cv: OpenCV, image: Binary): number {
  const before = image.data.slice();
  for (const [retrieval, approximation] of MODES) {
    const actual = traceContours(image.data, image.width, image.height, retrieval, approximation);
    const expected = openCVContours(cv, image, retrieval, approximation);
    assertSameContours(
      actual,
      expected,
      `${image.label} (${image.width}×${image.height}), ${retrieval}/${approximation}`,
    );
  }
  assertSameBytes(image.data, before, `${image.label}: the caller's image`);
  return MODES.length;
}

/** Draws into a width × height image: pixels for which `inside(x, y)` holds get `value`. */
function paint(
  data: Uint8Array,
  width: number,
  height: number,
  inside: (x: number, y: number) => boolean,
  value = 255,
) {
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if (inside(x, y)) data[y * width + x] = value;
}

/** Random filled rectangles, discs and rings, later ones over earlier ones, in either colour: shapes inside shapes. */
function randomShapes(random: () => number, width: number, height: number, shapes: number): Uint8Array {
  const data = new Uint8Array(width * height);
  const int = (n: number) => Math.floor(random() * n);
  for (let s = 0; s < shapes; s++) {
    const value = random() < 0.6 ? 255 : 0;
    const cx = int(width), cy = int(height);
    const r = 1 + int(Math.max(width, height) / 3);
    const kind = int(3);
    if (kind === 0) {
      const w = 1 + int(width / 2), h = 1 + int(height / 2);
      paint(
        data,
        width,
        height,
        (x, y) => x >= cx - w / 2 && x < cx + w / 2 && y >= cy - h / 2 && y < cy + h / 2,
        value,
      );
    } else if (kind === 1) {
      paint(data, width, height, (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r, value);
    } else {
      const inner = r * random();
      paint(data, width, height, (x, y) => {
        const d = (x - cx) ** 2 + (y - cy) ** 2;
        return d <= r * r && d >= inner * inner;
      }, value);
    }
  }
  return data;
}

/** Concentric square rings, 1 pixel wide with 1-pixel gaps: a tree as deep as the image allows. */
function nestedRings(width: number, height: number): Uint8Array {
  const data = new Uint8Array(width * height);
  paint(data, width, height, (x, y) => Math.min(x, y, width - 1 - x, height - 1 - y) % 2 === 0);
  return data;
}

function noise(random: () => number, width: number, height: number, density: number): Uint8Array {
  return new Uint8Array(width * height).map(() => random() < density ? 255 : 0);
}

Deno.test("traceHandles: every retrieval mode with no or simple approximation, not TC89", () => {
  for (const r of RETRIEVALS) {
    assert.ok(traceHandles(r, "simple") && traceHandles(r, "none"), r);
    assert.ok(!traceHandles(r, "tc89_l1") && !traceHandles(r, "tc89_kcos"), r);
  }
  assert.throws(() => traceContours(new Uint8Array(4), 2, 2, "tree", "tc89_l1"), /tc89_l1/);
});

Deno.test("traceContours equals OpenCV.js's findContours on every sample's binary image, inverted too", async (t) => {
  const cv = await loadPipeline();
  await loadTrace();
  let compared = 0;
  for (const name of SAMPLES) {
    await t.step(name, async () => {
      const { raster } = decodeImage(await fixture(name));
      const smoothed = smoothGray(raster, 5);
      for (const invert of [false, true]) {
        // A copy: otsuBinary's result is a view into the prefilter's memory, valid until its next call.
        const data = otsuBinary(smoothed, invert).binary.slice();
        const label = `${name}${invert ? " inverted" : ""}`;
        compared += assertMatchesOpenCV(cv, { data, width: raster.width, height: raster.height, label });
      }
    });
  }
  assert.equal(compared, SAMPLES.length * 2 * MODES.length);
});

Deno.test("traceContours equals OpenCV.js on every 1×1, 2×2, 3×3, 1×4 and 4×1 image", async () => {
  const cv = await loadPipeline();
  for (const [width, height] of [[1, 1], [2, 2], [3, 3], [1, 4], [4, 1]]) {
    const n = width * height;
    for (let bits = 0; bits < 1 << n; bits++) {
      const data = new Uint8Array(n).map((_, i) => (bits >> i) & 1 ? 255 : 0);
      assertMatchesOpenCV(cv, { data, width, height, label: `pattern ${bits}` });
    }
  }
});

Deno.test("traceContours equals OpenCV.js on hundreds of random images: noise, shapes, lines, SIMD block edges", async () => {
  const cv = await loadPipeline();
  const random = seededRandom(1985);
  const int = (n: number) => Math.floor(random() * n);
  const images: Binary[] = [];
  const add = (label: string, width: number, height: number, data: Uint8Array) =>
    images.push({ label, width, height, data });

  // Thin and small images, and widths around the scan's 16- and 64-pixel blocks.
  for (let i = 0; i < 40; i++) {
    const h = 1 + int(200);
    add("noise, one column", 1, h, noise(random, 1, h, 0.05 + 0.9 * random()));
    const w = 1 + int(300);
    add("noise, one row", w, 1, noise(random, w, 1, 0.05 + 0.9 * random()));
  }
  for (let i = 0; i < 80; i++) {
    const w = 2 + int(9), h = 2 + int(9);
    add("noise, small", w, h, noise(random, w, h, 0.05 + 0.9 * random()));
  }
  for (const w of [15, 16, 17, 31, 32, 33, 47, 48, 49, 62, 63, 64, 65, 66, 79, 127, 128, 129, 130]) {
    const h = 1 + int(40);
    add("noise", w, h, noise(random, w, h, 0.05 + 0.9 * random()));
    add("shapes", w, h, randomShapes(random, w, h, 1 + int(8)));
    // Long runs with a change here and there, which the scan passes 64 pixels at a time.
    const sparse = new Uint8Array(w * h);
    for (let k = 0; k < 4; k++) {
      const x0 = int(w), y0 = int(h), len = 1 + int(w);
      paint(sparse, w, h, (x, y) => y === y0 && x >= x0 && x < x0 + len);
    }
    add("sparse runs", w, h, sparse);
  }
  // Noise at every density, up to 300×200.
  for (let i = 0; i < 100; i++) {
    const w = 1 + int(300), h = 1 + int(200);
    add("noise", w, h, noise(random, w, h, 0.05 + 0.9 * random()));
  }
  // Shapes in shapes: deep trees, holes in holes.
  for (let i = 0; i < 120; i++) {
    const w = 2 + int(300), h = 2 + int(200);
    add("shapes", w, h, randomShapes(random, w, h, 1 + int(30)));
  }
  for (const [w, h] of [[5, 5], [6, 9], [64, 64], [101, 67], [300, 200]]) add("nested rings", w, h, nestedRings(w, h));
  // Uniform images, checkerboards, lines and diagonals touching the edges.
  for (const [w, h] of [[1, 1], [7, 3], [64, 1], [65, 65], [300, 200]]) {
    add("all 0", w, h, new Uint8Array(w * h));
    add("all 255", w, h, new Uint8Array(w * h).fill(255));
    for (const cell of [1, 2, 3]) {
      const board = new Uint8Array(w * h);
      paint(board, w, h, (x, y) => (Math.floor(x / cell) + Math.floor(y / cell)) % 2 === 0);
      add(`checkerboard ${cell}`, w, h, board);
    }
    const lines = new Uint8Array(w * h);
    paint(lines, w, h, (x, y) => x === 0 || y === h - 1 || x === y || x + y === w - 1 || x === Math.floor(w / 2));
    add("lines and diagonals", w, h, lines);
    const frame = new Uint8Array(w * h);
    paint(frame, w, h, (x, y) => x === 0 || y === 0 || x === w - 1 || y === h - 1);
    add("frame on the edge", w, h, frame);
  }
  // Any nonzero value is foreground, as for OpenCV.
  for (let i = 0; i < 10; i++) {
    const w = 1 + int(100), h = 1 + int(100);
    add("gray levels", w, h, new Uint8Array(w * h).map(() => random() < 0.5 ? 0 : 1 + int(255)));
  }

  let compared = 0;
  for (const image of images) compared += assertMatchesOpenCV(cv, image);
  assert.ok(images.length >= 400, `${images.length} images`);
  assert.equal(compared, images.length * MODES.length);
});

Deno.test("traceContours equals OpenCV.js past 127 and 32767 contours, and past 127 levels of nesting", async () => {
  const cv = await loadPipeline();
  const random = seededRandom(32768);
  // 40 000 single pixels (outer borders); the same grid inverted, 40 000 holes in one contour.
  const dots = new Uint8Array(400 * 400);
  paint(dots, 400, 400, (x, y) => x % 2 === 0 && y % 2 === 0);
  const holes = dots.map((v) => 255 - v);
  // Dense noise has tens of thousands of contours of every kind, whose marks wrap around many times.
  for (
    const [image, least] of [
      [{ label: "dots", width: 400, height: 400, data: dots }, 32767],
      [{ label: "holes", width: 400, height: 400, data: holes }, 32767],
      [{ label: "noise", width: 500, height: 400, data: noise(random, 500, 400, 0.5) }, 10000],
      // 2 contours a ring, each inside the one before.
      [{ label: "nested rings", width: 700, height: 600, data: nestedRings(700, 600) }, 2 * 127],
    ] as const
  ) {
    const found = traceContours(image.data, image.width, image.height, "tree", "simple").counts.length;
    assert.ok(found > least, `${image.label}: ${found} contours`);
    assertMatchesOpenCV(cv, image);
  }
});

Deno.test("traceContours returns copies, grows its memory for noise and leaves the caller's image as it was", () => {
  const random = seededRandom(7);
  const data = noise(random, 300, 200, 0.5);
  const before = data.slice();
  const first = traceContours(data, 300, 200, "tree", "none");
  const kept = { counts: first.counts.slice(), xy: first.xy.slice(), hierarchy: first.hierarchy.slice() };
  // More than trace.ts's first guess of memory (half a byte a pixel and 64 KiB): the kernel grew it itself. A contour
  // takes 56 bytes of working record, and the results 20 bytes a contour and 8 a vertex.
  const needed = first.counts.length * 76 + first.xy.length * 8;
  assert.ok(needed > 300 * 200 / 2 + 65536, `${first.counts.length} contours, ${first.xy.length / 2} vertices`);
  assert.ok(traceMemoryBytes() > 0);
  traceContours(noise(random, 300, 200, 0.3), 300, 200, "list", "simple");
  assertSameContours(first, kept, "the first result after a second call");
  assertSameBytes(data, before, "the caller's image");
  assert.equal(first.counts.reduce((s, n) => s + n, 0) * 2, first.xy.length);
  assert.deepEqual(traceContours(new Uint8Array(0), 0, 5, "tree", "simple").counts, new Int32Array(0));
  assert.throws(() => traceContours(new Uint8Array(5), 3, 2, "tree", "simple"), RangeError);
});

testWasmMatchesSource("build:trace", "imaging/trace/trace.wasm");
