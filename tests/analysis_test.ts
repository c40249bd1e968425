import assert from "node:assert/strict";
import { getIssues } from "@placemarkio/check-geojson";
import { XMLParser } from "fast-xml-parser";
import { analyseContours, boundingBox, polygonMoments } from "../imaging/contours.ts";
import type { MeasuredContour } from "../imaging/measurements.ts";
import { decodeImage } from "../imaging/decode.ts";
import { contoursToGeoJson, contoursToSvg } from "../imaging/export.ts";
import { closedArcLength, isConvex, polygonArea } from "../imaging/measure.ts";
import { loadPipeline } from "../imaging/pipeline.ts";
import { type AnalysisOptions, AnalysisOptionsSchema } from "../imaging/options.ts";
import type { Raster } from "../imaging/raster.ts";
import { fixture, openCVGray, seededRandom } from "./fixtures.ts";

const opts = (o: Record<string, unknown> = {}): AnalysisOptions => AnalysisOptionsSchema.parse(o);

/**
 * A 200×120 gray test card: three white squares on black, the first with a black hole that holds a white island,
 * plus a thin white line. With RETR_TREE that is 3 squares + 1 hole + 1 island + 1 line = 6 contours.
 */
function testCard(light = 255, dark = 0): Raster {
  const width = 200, height = 120;
  const data = new Uint8Array(width * height).fill(dark);
  const rect = (x: number, y: number, w: number, h: number, v: number) => {
    for (let j = y; j < y + h; j++) data.fill(v, j * width + x, j * width + x + w);
  };
  rect(10, 10, 60, 60, light); // square with a hole
  rect(25, 25, 30, 30, dark); // the hole
  rect(35, 35, 10, 10, light); // island in the hole
  rect(90, 10, 20, 20, light); // plain 20×20 square
  rect(130, 10, 40, 40, light); // plain 40×40 square
  rect(10, 100, 150, 1, light); // a one-pixel line
  return { width, height, channels: 1, data };
}

const noBlur = { blur: 0 };

Deno.test("options: retrieval, filters and thresholds give the known contour counts", async (t) => {
  const cv = await loadPipeline();
  const card = testCard();
  const count = (o: Record<string, unknown>, r = card) =>
    analyseContours(cv, r, opts({ ...noBlur, ...o })).contours.length;
  await t.step("tree / list / ccomp → 6, external → 4", () => {
    assert.equal(count({ retrieval: "tree" }), 6);
    assert.equal(count({ retrieval: "list" }), 6);
    assert.equal(count({ retrieval: "ccomp" }), 6);
    assert.equal(count({ retrieval: "external" }), 4);
  });
  await t.step("hierarchy: hole is the child of its square, island the child of the hole", () => {
    const { contours } = analyseContours(cv, card, opts(noBlur));
    const byArea = [...contours].sort((a, b) => b.area - a.area);
    const big = byArea[0];
    const hole = contours.find((c) => c.parent === big.id)!;
    const island = contours.find((c) => c.parent === hole.id)!;
    assert.deepEqual([big.depth, hole.depth, island.depth], [0, 1, 2]);
  });
  await t.step("min_area drops small ones and re-parents children of dropped contours", () => {
    // Area of a k×k square contour is (k−1)²: 20×20 → 361, island 10×10 → 81, the line → 0.
    assert.equal(count({ min_area: 100 }), 4);
    assert.equal(count({ min_area: 400 }), 3);
    const { contours } = analyseContours(cv, card, opts({ ...noBlur, min_area: 900 }));
    // Left: the 60×60 square, its 30×30 hole and the 40×40 square; parents refer to kept ids.
    assert.equal(contours.length, 3);
    for (const c of contours) assert.ok(c.parent === -1 || contours.some((p) => p.id === c.parent));
  });
  await t.step("max_contours keeps the largest", () => {
    const { contours } = analyseContours(cv, card, opts({ ...noBlur, max_contours: 2 }));
    assert.deepEqual(contours.map((c) => c.area).sort((a, b) => b - a), [59 * 59, 39 * 39]);
  });
  await t.step("a storage limit keeps the largest and counts what the options found", () => {
    const all = analyseContours(cv, card, opts(noBlur), null);
    const capped = analyseContours(cv, card, opts(noBlur), null, 2);
    assert.equal(all.found, all.contours.length);
    assert.equal(capped.found, all.contours.length);
    assert.deepEqual(capped.contours.map((c) => c.area).sort((a, b) => b - a), [59 * 59, 39 * 39]);
    // Counted after max_contours: the client's own cut is not the service's truncation.
    assert.equal(analyseContours(cv, card, opts({ ...noBlur, max_contours: 3 }), null, 2).found, 3);
  });
  await t.step("invert finds the same shapes on a light background", () => {
    assert.equal(count({ invert: true }, testCard(0, 255)), 6);
    assert.equal(count({ retrieval: "external", invert: true }, testCard(0, 255)), 4);
  });
  await t.step("binary threshold: a cut-off above the foreground finds nothing", () => {
    assert.equal(count({ threshold: "binary", threshold_value: 127 }), 6);
    assert.equal(count({ threshold: "binary", threshold_value: 255 }), 0);
    assert.equal(
      analyseContours(cv, card, opts({ ...noBlur, threshold: "binary", threshold_value: 90 })).threshold,
      90,
    );
  });
  await t.step("adaptive and Canny find every object's outline, and report no single threshold", () => {
    const adaptive = analyseContours(
      cv,
      card,
      opts({ ...noBlur, threshold: "adaptive", block_size: 31, c: -5, retrieval: "external" }),
    );
    assert.ok(adaptive.contours.length >= 4, `adaptive: ${adaptive.contours.length}`);
    assert.equal(adaptive.threshold, null);
    const canny = analyseContours(cv, card, opts({ threshold: "canny", retrieval: "external" }));
    assert.ok(canny.contours.length >= 4, `canny: ${canny.contours.length}`);
    assert.equal(canny.threshold, null);
  });
  await t.step("approximation none keeps every boundary pixel; epsilon simplifies", () => {
    const simple = analyseContours(cv, card, opts({ ...noBlur, max_contours: 1 })).contours[0];
    const none = analyseContours(cv, card, opts({ ...noBlur, max_contours: 1, approximation: "none" })).contours[0];
    assert.equal(simple.point_count, 4);
    assert.equal(none.point_count, 59 * 4);
    const coins = analyseContours(cv, testDisc(), opts({ ...noBlur }));
    const eps = analyseContours(cv, testDisc(), opts({ ...noBlur, epsilon: 3 }));
    assert.ok(eps.contours[0].point_count < coins.contours[0].point_count / 2);
  });
});

/** A filled disc of radius 40 centred at (60, 60) on a 120×120 black image. */
function testDisc(): Raster {
  const width = 120, height = 120;
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) if ((x - 60) ** 2 + (y - 60) ** 2 <= 40 * 40) data[y * width + x] = 255;
  }
  return { width, height, channels: 1, data };
}

Deno.test("measurements: area, perimeter, bbox, centroid, convexity and circularity", async () => {
  const cv = await loadPipeline();
  const { contours } = analyseContours(cv, testCard(), opts(noBlur));
  const sq = contours.find((c) => c.bbox.x === 90)!;
  assert.equal(sq.area, 19 * 19);
  assert.equal(sq.perimeter, 76);
  assert.deepEqual(sq.bbox, { x: 90, y: 10, width: 20, height: 20 });
  assert.deepEqual(sq.centroid, { x: 99.5, y: 19.5 });
  assert.equal(sq.convex, true);
  assert.ok(Math.abs(sq.circularity - Math.PI / 4) < 1e-3);
  assert.equal(sq.point_count, sq.points.length);
  const line = contours.find((c) => c.bbox.height === 1)!;
  assert.equal(line.area, 0);
  assert.equal(line.circularity, 0);
  const disc = analyseContours(cv, testDisc(), opts(noBlur)).contours[0];
  assert.ok(disc.circularity > 0.85, `disc circularity ${disc.circularity}`);
  assert.ok(Math.abs(disc.centroid.x - 60) < 0.5 && Math.abs(disc.centroid.y - 60) < 0.5);
  assert.ok(Math.abs(disc.area - Math.PI * 40 * 40) / (Math.PI * 1600) < 0.03);
});

Deno.test("drawing options: colour, thickness and fill", async () => {
  const cv = await loadPipeline();
  const card = testCard();
  const px = (
    r: Raster,
    x: number,
    y: number,
  ) => [...r.data.subarray((y * r.width + x) * 3, (y * r.width + x) * 3 + 3)];
  const red = analyseContours(cv, card, opts({ ...noBlur, color: "#ff0000", thickness: 1 })).annotated!;
  assert.deepEqual(px(red, 90, 10), [255, 0, 0]); // on the outline
  assert.deepEqual(px(red, 100, 20), [255, 255, 255]); // inside, untouched
  const filled = analyseContours(cv, card, opts({ ...noBlur, color: "#0000ff", fill: true })).annotated!;
  assert.deepEqual(px(filled, 100, 20), [0, 0, 255]);
});

function pointInRing(x: number, y: number, ring: number[][]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

Deno.test("exports: SVG and GeoJSON with holes from the hierarchy", async (t) => {
  const cv = await loadPipeline();
  const { contours, width, height } = analyseContours(cv, testCard(), opts(noBlur));
  await t.step("SVG parses, spans the image, one evenodd path per outer contour with its holes", () => {
    const svg = contoursToSvg(contours, width, height);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(svg);
    assert.equal(doc.svg.width, String(width));
    assert.equal(doc.svg.viewBox, `0 0 ${width} ${height}`);
    assert.equal(doc.svg.g["fill-rule"], "evenodd");
    const paths = [doc.svg.g.path].flat();
    assert.equal(paths.length, contours.filter((c) => c.depth % 2 === 0).length);
    const withHole = paths.find((p: { "data-rings": string }) => p["data-rings"].split(" ").length === 2);
    assert.ok(withHole, "the holed square is one path of two rings");
    assert.equal((withHole.d.match(/M/g) ?? []).length, 2);
  });
  await t.step("GeoJSON is valid, rings closed, holes inside their parents", () => {
    const geo = contoursToGeoJson(contours, width, height);
    assert.deepEqual(getIssues(JSON.stringify(geo)), []);
    const features = geo.features as { geometry: { coordinates: number[][][] }; properties: MeasuredContour }[];
    // The line has zero area and two distinct points: it cannot be a polygon.
    assert.equal(features.length, contours.filter((c) => c.depth % 2 === 0).length - 1);
    assert.equal(geo.skipped_degenerate, 1);
    for (const f of features) {
      for (const ring of f.geometry.coordinates) {
        assert.ok(ring.length >= 4);
        assert.deepEqual(ring[0], ring.at(-1), "ring closed");
      }
      const [outer, ...holes] = f.geometry.coordinates;
      for (const hole of holes) {
        // Hole vertices lie strictly inside the outer ring: test the hole's centre.
        const cx = hole.reduce((s, p) => s + p[0], 0) / hole.length;
        const cy = hole.reduce((s, p) => s + p[1], 0) / hole.length;
        assert.ok(pointInRing(cx, cy, outer));
      }
    }
    assert.ok(features.some((f) => f.geometry.coordinates.length === 2), "the holed square has a hole");
  });
});

Deno.test("options: invalid values are refused naming the field", () => {
  const bad: Record<string, unknown>[] = [
    { blur: 4 },
    { blur: -1 },
    { threshold: "magic" },
    { block_size: 8 },
    { retrieval: "all" },
    { approximation: "fancy" },
    { epsilon: -1 },
    { min_area: "big" },
    { max_contours: 0 },
    { color: "green" },
    { thickness: 0 },
    { canny_low: 200, canny_high: 100 },
    { output_format: "gif" },
  ];
  for (const o of bad) {
    const r = AnalysisOptionsSchema.safeParse(o);
    assert.equal(r.success, false, JSON.stringify(o));
    assert.equal(String(r.error!.issues[0].path[0]), Object.keys(o)[0], JSON.stringify(o));
  }
});

Deno.test("moments, bounding box, area, perimeter and convexity equal OpenCV.js's bit for bit", async () => {
  const cv = await loadPipeline();
  let compared = 0;
  for (const name of ["coins.png", "rocket.jpg"]) {
    const { raster } = decodeImage(await fixture(name));
    const gray = openCVGray(cv, raster), binary = new cv.Mat(), hierarchy = new cv.Mat();
    try {
      // Adaptive thresholding gives thousands of small, odd contours: holes, lines, single points.
      cv.adaptiveThreshold(gray, binary, 255, cv.ADAPTIVE_THRESH_GAUSSIAN_C, cv.THRESH_BINARY, 11, 2);
      for (const approx of [cv.CHAIN_APPROX_SIMPLE, cv.CHAIN_APPROX_NONE]) {
        const found = new cv.MatVector();
        cv.findContours(binary, found, hierarchy, cv.RETR_TREE, approx);
        for (let i = 0; i < found.size(); i++) {
          const c = found.get(i);
          const m = cv.moments(c, false);
          assert.deepEqual(polygonMoments(c.data32S), { m00: m.m00, m10: m.m10, m01: m.m01 }, `${name} #${i}`);
          const r = cv.boundingRect(c);
          assert.deepEqual(boundingBox(c.data32S), { x: r.x, y: r.y, width: r.width, height: r.height });
          assert.equal(polygonArea(c.data32S), cv.contourArea(c, false), `${name} #${i}: area`);
          assert.equal(closedArcLength(c.data32S), cv.arcLength(c, true), `${name} #${i}: perimeter`);
          assert.equal(isConvex(c.data32S), cv.isContourConvex(c), `${name} #${i}: convexity`);
          c.delete();
          compared++;
        }
        found.delete();
      }
    } finally {
      for (const m of [gray, binary, hierarchy]) m.delete();
    }
  }
  assert.ok(compared > 1000, `only ${compared} contours compared`);
  // Random polygons: self-crossing, repeated and collinear vertices, one and two vertices.
  const random = seededRandom(61206);
  for (let trial = 0; trial < 3000; trial++) {
    const n = 1 + Math.floor(random() * 8);
    const xy = Int32Array.from({ length: 2 * n }, () => Math.floor(random() * (trial % 2 ? 5 : 400)));
    const c = cv.matFromArray(n, 1, cv.CV_32SC2, [...xy]);
    try {
      assert.equal(polygonArea(xy), cv.contourArea(c, false), `${xy}: area`);
      assert.equal(closedArcLength(xy), cv.arcLength(c, true), `${xy}: perimeter`);
      assert.equal(isConvex(xy), cv.isContourConvex(c), `${xy}: convexity`);
    } finally {
      c.delete();
    }
  }
});
