import { type AnalysisOptions, DEFAULT_OPTIONS, parseColor } from "./options.ts";
import type { CalibratedMeasurements, MeasuredContour } from "./measurements.ts";
import { intensityStats } from "./measure_intensity.ts";
import { drawOutlines } from "./draw.ts";
import { closedArcLength, isConvex, measureBox, measureShape, polygonArea } from "./measure.ts";
import { type OpenCV, withMats } from "./opencv.ts";
import { traceContours, type TracedContours, traceHandles } from "./trace.ts";
import { otsuBinary, prefilterHandles, smoothGray, unblurredGray } from "./prefilter.ts";
import type { Raster } from "./raster.ts";

/** What contour detection found, plus what `render` made of the annotated image. */
export interface ContourAnalysis<T = Raster> {
  width: number;
  height: number;
  /** The threshold applied (Otsu's choice for "otsu"); null for adaptive and Canny, which have no single value. */
  threshold: number | null;
  contours: MeasuredContour[];
  /**
   * Contours that met the options (the filters, max_contours): more than `contours.length` when `limit` dropped the
   * smallest of them.
   */
  found: number;
  /**
   * The input in colour (RGB, or RGBA for RGBA input, its alpha meaningless) with the kept contours drawn, as
   * returned by `render` (null when not drawn).
   */
  annotated: T | null;
  /** Milliseconds per stage. */
  timings: { analyse: number; measure: number; draw: number };
}

const GRAY_CODES = { 3: "COLOR_RGB2GRAY", 4: "COLOR_RGBA2GRAY" } as const;
/** OpenCV.js's names of the retrieval modes and approximations the options name. */
export const RETRIEVAL = {
  external: "RETR_EXTERNAL",
  list: "RETR_LIST",
  ccomp: "RETR_CCOMP",
  tree: "RETR_TREE",
} as const;
export const APPROX = {
  none: "CHAIN_APPROX_NONE",
  simple: "CHAIN_APPROX_SIMPLE",
  tc89_l1: "CHAIN_APPROX_TC89_L1",
  tc89_kcos: "CHAIN_APPROX_TC89_KCOS",
} as const;

const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;

/** Copies the annotated raster out of the WASM heap (the default `render`). */
const copyRaster = (r: Raster): Raster => ({ ...r, data: r.data.slice() });

/**
 * Finds, measures and draws contours. With the default options this is native OpenCV's reference pipeline:
 * gray → GaussianBlur 5×5 (σ 0) → Otsu binary threshold → findContours(RETR_TREE, CHAIN_APPROX_SIMPLE).
 * `render` gets the annotated image as a view into OpenCV's heap, valid only during the call (an encoder reads it
 * there, saving a copy of every pixel); by default it is copied out. With `render` null nothing is drawn. At most
 * `limit` contours are measured, kept and drawn (the largest, as with max_contours), whatever the options ask.
 */
export function analyseContours<T = Raster>(
  cv: OpenCV,
  raster: Raster,
  options: AnalysisOptions = DEFAULT_OPTIONS,
  render: ((annotated: Raster) => T) | null = copyRaster as (annotated: Raster) => T,
  limit = Infinity,
): ContourAnalysis<T> {
  const { width, height, channels } = raster;
  return withMats((keep) => {
    const t0 = performance.now();
    // The binary image's pixels, one byte each (a view into the prefilter's or OpenCV's memory, read at once).
    let binary: Uint8Array;
    let threshold: number | null = null;
    // The unblurred gray image, for the intensity measurements.
    let grayPixels: () => Uint8Array;
    if (prefilterHandles(options.blur)) {
      // Gray, blur and Otsu in WASM SIMD: the same pixels OpenCV.js makes, in less than half its time (prefilter.ts).
      const smoothed = smoothGray(raster, options.blur);
      grayPixels = unblurredGray;
      if (options.threshold === "otsu") {
        const otsu = otsuBinary(smoothed, options.invert);
        threshold = otsu.threshold;
        binary = otsu.binary;
      } else {
        const binarised = binarise(cv, keep, grayMat(cv, keep, smoothed, width, height), options);
        ({ binary: { data: binary }, threshold } = binarised);
      }
    } else {
      // The input as a Mat, only here: the WASM prefilter reads the raster itself.
      const input = rasterMat(cv, keep, raster);
      let gray = input;
      if (channels !== 1) {
        gray = keep(new cv.Mat());
        cv.cvtColor(input, gray, cv[GRAY_CODES[channels]]);
      }
      const grayMat = gray;
      grayPixels = () => grayMat.data;
      let smoothed = gray;
      if (options.blur > 0) {
        smoothed = keep(new cv.Mat());
        cv.GaussianBlur(gray, smoothed, new cv.Size(options.blur, options.blur), 0, 0, cv.BORDER_DEFAULT);
      }
      const binarised = binarise(cv, keep, smoothed, options);
      ({ binary: { data: binary }, threshold } = binarised);
    }

    const found = findContours(cv, keep, binary, width, height, options);
    const t1 = performance.now();

    // Simplify first, so measurements, drawing and exports all describe the same polygons.
    const shapes: Shape[] = splitPolygons(found.counts, found.xy).map((polygon, i) => {
      const xy = options.epsilon > 0 ? approximate(cv, polygon, options.epsilon) : polygon;
      return { xy, area: polygonArea(xy), parent: found.hierarchy[i * 4 + 3] };
    });
    let kept = shapes.map((_, i) => i).filter((i) => meetsFilters(shapes[i], width, height, options));
    const asked = options.max_contours ?? Infinity;
    const met = Math.min(kept.length, asked);
    // The largest `limit` of the largest `asked` are the largest `limit`: one cut serves both (ties go to the first).
    const cap = Math.min(asked, limit);
    if (kept.length > cap) {
      const largest = new Set([...kept].sort((a, b) => shapes[b].area - shapes[a].area || a - b).slice(0, cap));
      kept = kept.filter((i) => largest.has(i));
    }
    const newId = new Map(kept.map((raw, id) => [raw, id]));
    // A dropped contour's children hang from its nearest kept ancestor, so the tree stays a tree.
    const keptAncestors = (raw: number): number[] => {
      const chain: number[] = [];
      for (let p = shapes[raw].parent; p >= 0; p = shapes[p].parent) if (newId.has(p)) chain.push(newId.get(p)!);
      return chain;
    };

    const boxes = kept.map((raw) => boundingBox(shapes[raw].xy));
    const lineage = kept.map(keptAncestors);
    const all = options.measurements === "all";
    const intensity = !all ? [] : intensityStats(
      cv,
      keep,
      grayPixels(),
      width,
      height,
      kept.map((raw, id) => ({
        mat: polygonMat(cv, keep, shapes[raw].xy),
        depth: lineage[id].length,
        area: shapes[raw].area,
        root: lineage[id].length ? lineage[id].at(-1)! : id,
        bbox: boxes[id],
      })),
    );
    const contours: MeasuredContour[] = kept.map((raw, id) => {
      const { xy, area } = shapes[raw];
      const points: [number, number][] = [];
      for (let p = 0; p < xy.length; p += 2) points.push([xy[p], xy[p + 1]]);
      const perimeter = closedArcLength(xy);
      const r = boxes[id];
      const m = polygonMoments(xy);
      const centroid = m.m00 !== 0 ? { x: m.m10 / m.m00, y: m.m01 / m.m00 } : {
        x: points.reduce((s, p) => s + p[0], 0) / points.length,
        y: points.reduce((s, p) => s + p[1], 0) / points.length,
      };
      const ancestors = lineage[id];
      const shape = all ? measureShape(xy, area) : {};
      const measured: MeasuredContour = {
        id,
        parent: ancestors.length ? ancestors[0] : -1,
        depth: ancestors.length,
        area,
        perimeter: round(perimeter),
        bbox: { x: r.x, y: r.y, width: r.width, height: r.height },
        centroid: { x: round(centroid.x), y: round(centroid.y) },
        convex: isConvex(xy),
        circularity: circularity(area, perimeter),
        ...measureBox(area, r),
        ...shape,
        ...(all ? { mean_intensity: intensity[id]?.mean ?? null, std_intensity: intensity[id]?.std ?? null } : {}),
        point_count: points.length,
        points,
      };
      if (options.pixel_size !== undefined && options.unit !== undefined) {
        measured.calibrated = calibrate(measured, options.pixel_size, options.unit);
      }
      return measured;
    });
    const t2 = performance.now();

    let annotated: T | null = null;
    if (render) {
      const { counts, xy } = packShapes(kept.map((raw) => shapes[raw].xy));
      annotated = drawPolygons(cv, raster, counts, xy, options, render);
    }
    const t3 = performance.now();
    return {
      width,
      height,
      threshold,
      contours,
      found: met,
      annotated,
      timings: {
        analyse: round(t1 - t0, 2),
        measure: round(t2 - t1, 2),
        // Nothing drawn is no time spent drawing (the clock would still tick between t2 and t3).
        draw: render ? round(t3 - t2, 2) : 0,
      },
    };
  });
}

const circularity = (area: number, perimeter: number) =>
  perimeter > 0 ? round((4 * Math.PI * area) / (perimeter * perimeter), 4) : 0;

/** Whether a contour passes the area, border and circularity filters of the options. */
function meetsFilters(shape: Shape, width: number, height: number, options: AnalysisOptions): boolean {
  if (shape.area < options.min_area) return false;
  if (options.max_area !== undefined && shape.area > options.max_area) return false;
  if (options.exclude_on_edge) {
    const b = boundingBox(shape.xy);
    if (b.x === 0 || b.y === 0 || b.x + b.width === width || b.y + b.height === height) return false;
  }
  if (options.circularity_min !== undefined || options.circularity_max !== undefined) {
    // The rounded value the result reports, so that a filter and the document never disagree.
    const c = circularity(shape.area, closedArcLength(shape.xy));
    if (c < (options.circularity_min ?? 0) || c > (options.circularity_max ?? 1)) return false;
  }
  return true;
}

/** The lengths and areas of a measured contour in a calibrated unit (`pixelSize` of it per pixel). */
function calibrate(c: Omit<MeasuredContour, "calibrated">, pixelSize: number, unit: string): CalibratedMeasurements {
  const length = (px: number) => Number((px * pixelSize).toPrecision(7));
  return {
    unit,
    pixel_size: pixelSize,
    area: Number((c.area * pixelSize * pixelSize).toPrecision(7)),
    perimeter: length(c.perimeter),
    equivalent_diameter: length(c.equivalent_diameter),
    bbox_width: length(c.bbox.width),
    bbox_height: length(c.bbox.height),
    ...(c.feret && c.min_area_rect && c.enclosing_circle && c.ellipse !== undefined
      ? {
        feret_max: length(c.feret.max),
        feret_min: length(c.feret.min),
        min_rect_width: length(c.min_area_rect.size.width),
        min_rect_height: length(c.min_area_rect.size.height),
        enclosing_radius: length(c.enclosing_circle.radius),
        ellipse_major: c.ellipse ? length(c.ellipse.size.height) : null,
        ellipse_minor: c.ellipse ? length(c.ellipse.size.width) : null,
      }
      : {}),
  };
}

/**
 * The bounding box of integer vertices (x, y interleaved), as cv.boundingRect gives it. Computed here because each
 * OpenCV.js call returning a struct costs microseconds of binding overhead, which thousands of contours add up.
 */
export function boundingBox(xy: Int32Array): { x: number; y: number; width: number; height: number } {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (let i = 0; i < xy.length; i += 2) {
    if (xy[i] < minX) minX = xy[i];
    if (xy[i] > maxX) maxX = xy[i];
    if (xy[i + 1] < minY) minY = xy[i + 1];
    if (xy[i + 1] > maxY) maxY = xy[i + 1];
  }
  return { x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1 };
}

/**
 * The spatial moments m00, m10, m01 of a closed polygon, by OpenCV's own formula (contourMoments, Green's theorem).
 * With integer vertices every sum is an exact integer in a double, so the result equals cv.moments' exactly; computed
 * here because cv.moments' 24-field result costs ~30 µs per contour through the bindings (bench: measure stage).
 */
export function polygonMoments(xy: Int32Array): { m00: number; m10: number; m01: number } {
  const n = xy.length / 2;
  if (n === 0) return { m00: 0, m10: 0, m01: 0 };
  let a00 = 0, a10 = 0, a01 = 0;
  let xPrev = xy[2 * n - 2], yPrev = xy[2 * n - 1];
  for (let i = 0; i < xy.length; i += 2) {
    const x = xy[i], y = xy[i + 1];
    const cross = xPrev * y - x * yPrev;
    a00 += cross;
    a10 += cross * (xPrev + x);
    a01 += cross * (yPrev + y);
    xPrev = x;
    yPrev = y;
  }
  if (a00 === 0) return { m00: 0, m10: 0, m01: 0 };
  // Multiplied by the rounded reciprocal, as OpenCV does, not divided: the last bit of the result depends on it.
  const half = a00 > 0 ? 0.5 : -0.5;
  const sixth = a00 > 0 ? 1 / 6 : -1 / 6;
  return { m00: a00 * half, m10: a10 * sixth, m01: a01 * sixth };
}

type Keep = <M extends { delete(): void }>(m: M) => M;
type Mat = InstanceType<OpenCV["Mat"]>;

/** A Mat holding a copy of the raster's pixels. */
function rasterMat(cv: OpenCV, keep: Keep, raster: Raster): Mat {
  const { width, height, channels } = raster;
  const type = channels === 1 ? cv.CV_8UC1 : channels === 3 ? cv.CV_8UC3 : cv.CV_8UC4;
  const src = keep(new cv.Mat(height, width, type));
  src.data.set(raster.data.subarray(0, width * height * channels));
  return src;
}

/** A one-channel Mat holding a copy of `pixels`. */
function grayMat(cv: OpenCV, keep: Keep, pixels: Uint8Array, width: number, height: number): Mat {
  const mat = keep(new cv.Mat(height, width, cv.CV_8UC1));
  mat.data.set(pixels);
  return mat;
}

/** The binary image of a smoothed gray one, by the chosen threshold, and the threshold applied (null when none). */
function binarise(
  cv: OpenCV,
  keep: Keep,
  smoothed: Mat,
  options: AnalysisOptions,
): { binary: Mat; threshold: number | null } {
  const binary = keep(new cv.Mat());
  const mode = options.invert ? cv.THRESH_BINARY_INV : cv.THRESH_BINARY;
  switch (options.threshold) {
    case "otsu":
      return { binary, threshold: cv.threshold(smoothed, binary, 0, 255, mode | cv.THRESH_OTSU) };
    case "binary":
      return { binary, threshold: cv.threshold(smoothed, binary, options.threshold_value, 255, mode) };
    case "adaptive":
      cv.adaptiveThreshold(smoothed, binary, 255, cv.ADAPTIVE_THRESH_GAUSSIAN_C, mode, options.block_size, options.c);
      return { binary, threshold: null };
    case "canny":
      cv.Canny(smoothed, binary, options.canny_low, options.canny_high);
      if (options.invert) cv.bitwise_not(binary, binary);
      return { binary, threshold: null };
  }
}

/**
 * Fills the polygons (`counts[i]` vertices each, from `xy`) on the image in colour (on `src` itself when it is RGB or
 * RGBA) with OpenCV.js, and lends the result to `render`. Outlines are drawn by the WASM kernel (drawOutlines).
 */
function fillContours<T>(
  cv: OpenCV,
  keep: Keep,
  src: Mat,
  channels: 1 | 3 | 4,
  counts: Int32Array,
  xy: Int32Array,
  options: AnalysisOptions,
  render: (annotated: Raster) => T,
): T {
  // Colour input is drawn on in place (gray and binary already hold what analysis needed from it), RGBA too: the
  // encoders drop the alpha, and converting 12 megapixels to RGB first cost OpenCV.js 31 ms (bench, draw stage).
  let colour = src;
  if (channels === 1) {
    colour = keep(new cv.Mat());
    cv.cvtColor(src, colour, cv.COLOR_GRAY2RGB);
  }
  const polygons = keep(new cv.MatVector());
  for (const polygon of splitPolygons(counts, xy)) polygons.push_back(polygonMat(cv, keep, polygon));
  const [r, g, b] = parseColor(options.color);
  cv.drawContours(colour, polygons, -1, new cv.Scalar(r, g, b, 255), cv.FILLED, cv.LINE_8);
  // The Mat is freed when the caller's scope ends, so the view is only lent to `render`, which runs no OpenCV code.
  return render({ width: colour.cols, height: colour.rows, channels: channels === 4 ? 4 : 3, data: colour.data });
}

/**
 * Draws packed polygons (`counts[i]` vertices each, from `xy`) on the image: the annotated image of a lazily rendered
 * result, the same pixels the analysis would have drawn.
 */
export function drawPolygons<T>(
  cv: OpenCV,
  raster: Raster,
  counts: Int32Array,
  xy: Int32Array,
  options: AnalysisOptions,
  render: (annotated: Raster) => T,
): T {
  if (!options.fill) return drawOutlines(raster, counts, xy, options.thickness, parseColor(options.color), render);
  return withMats((keep) =>
    fillContours(cv, keep, rasterMat(cv, keep, raster), raster.channels, counts, xy, options, render)
  );
}

/** A contour as the analysis keeps it: its vertices (x, y interleaved), its area and its parent's index (−1: none). */
interface Shape {
  xy: Int32Array;
  area: number;
  parent: number;
}

/**
 * cv.findContours of the binary image with the options' retrieval mode and approximation: by the WASM kernel where it
 * does the pair (the same contours in the same order, faster), otherwise by OpenCV.js.
 */
function findContours(
  cv: OpenCV,
  keep: Keep,
  binary: Uint8Array,
  width: number,
  height: number,
  options: AnalysisOptions,
): TracedContours {
  const { retrieval, approximation } = options;
  if (traceHandles(retrieval, approximation)) return traceContours(binary, width, height, retrieval, approximation);
  const found = keep(new cv.MatVector());
  const hierarchy = keep(new cv.Mat());
  cv.findContours(
    grayMat(cv, keep, binary, width, height),
    found,
    hierarchy,
    cv[RETRIEVAL[retrieval]],
    cv[APPROX[approximation]],
  );
  const n = found.size();
  const counts = new Int32Array(n);
  const parts: Int32Array[] = [];
  for (let i = 0; i < n; i++) {
    const c = found.get(i);
    parts.push(c.data32S.slice());
    counts[i] = c.data32S.length / 2;
    c.delete();
  }
  return { counts, xy: concat(parts), hierarchy: n ? hierarchy.data32S.slice() : new Int32Array(0) };
}

/** Each polygon of packed ones (`counts[i]` vertices each, end to end in `xy`), as a view of its vertices. */
function splitPolygons(counts: Int32Array, xy: Int32Array): Int32Array[] {
  const polygons: Int32Array[] = [];
  for (let i = 0, at = 0; i < counts.length; at += 2 * counts[i++]) polygons.push(xy.subarray(at, at + 2 * counts[i]));
  return polygons;
}

/** The polygons end to end, with their vertex counts: what splitPolygons takes apart. */
function packShapes(polygons: Int32Array[]): { counts: Int32Array; xy: Int32Array } {
  return { counts: Int32Array.from(polygons, (p) => p.length / 2), xy: concat(polygons) };
}

function concat(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** A polygon as a Mat of points (CV_32SC2), for the OpenCV.js functions that take one. */
function polygonMat(cv: OpenCV, keep: Keep, xy: Int32Array): Mat {
  const mat = keep(new cv.Mat(xy.length / 2, 1, cv.CV_32SC2));
  mat.data32S.set(xy);
  return mat;
}

/** cv.approxPolyDP of a closed polygon. */
function approximate(cv: OpenCV, xy: Int32Array, epsilon: number): Int32Array {
  return withMats((keep) => {
    const approx = keep(new cv.Mat());
    cv.approxPolyDP(polygonMat(cv, keep, xy), approx, epsilon, true);
    return approx.data32S.slice();
  });
}
