// Shape measurements of one contour, computed from its integer vertices, where each costs a fraction of a call through
// the OpenCV.js bindings (thousands of contours add those up). Each follows OpenCV's algorithm and is checked against
// native OpenCV on every contour of the samples (tests/measure_test.ts).

import type { BoxMeasurements, RotatedBox, ShapeMeasurements } from "./measurements.ts";

// `+ 0` turns −0 into 0: JSON has no −0, so a document read back would differ from the one written.
const round = (v: number) => Math.round(v * 1000) / 1000 + 0;
const round4 = (v: number) => Math.round(v * 10000) / 10000 + 0;
const DEG = 180 / Math.PI;

/** The ratios a contour's area and bounding box give at no further cost. */
export function measureBox(area: number, bbox: { width: number; height: number }): BoxMeasurements {
  return {
    extent: round4(area / (bbox.width * bbox.height)),
    aspect_ratio: round4(bbox.width / bbox.height),
    equivalent_diameter: round(Math.sqrt((4 * area) / Math.PI)),
  };
}

/** Measures one contour's shape: `xy` its vertices (x, y interleaved), `area` its contourArea. */
export function measureShape(xy: Int32Array, area: number): ShapeMeasurements {
  const hull = convexHull(xy);
  const hullArea = polygonArea(hull);
  // One sweep serves the rectangle and the Feret diameters.
  const sweep = hull.length >= 6 ? calipers(hull) : null;
  const ellipse = xy.length >= 10 ? fittedEllipse(xy) : null;
  const axes = ellipse ? [ellipse.size.width, ellipse.size.height] : null;
  return {
    solidity: hullArea > 0 ? round4(area / hullArea) : 0,
    min_area_rect: minAreaRect(hull, sweep),
    enclosing_circle: minEnclosingCircle(hull),
    ellipse,
    eccentricity: axes && axes[1] > 0 ? round4(Math.sqrt(Math.max(0, 1 - (axes[0] / axes[1]) ** 2))) : null,
    feret: feretDiameters(hull, sweep),
    hu_moments: huMoments(xy),
  };
}

/**
 * OpenCV's least-squares ellipse (fitEllipseNoDirect), rounded; null when the fit is singular or nearly so, where
 * OpenCV shifts the points at random and fits again, so its answer changes from call to call. OpenCV fits exactly five
 * points by another method (fitEllipseDirect), which jitters the same way on singular input; the least-squares fit
 * serves those too, so that a result never depends on a random state.
 */
function fittedEllipse(xy: Int32Array): RotatedBox | null {
  const e = fitEllipseNoDirect(xy);
  if (!e) return null;
  const values = [e.center.x, e.center.y, e.size.width, e.size.height, e.angle];
  if (!values.every(Number.isFinite)) return null;
  return {
    center: { x: round(e.center.x), y: round(e.center.y) },
    size: { width: round(e.size.width), height: round(e.size.height) },
    angle: round(e.angle),
  };
}

const f32 = Math.fround;
const FLT_EPSILON = 1.1920928955078125e-7;
/**
 * The largest condition number of a fit's normal equations accepted here: OpenCV shifts the points at random when its
 * matrix's singular values span more than 1/FLT_EPSILON (its normal equations' condition, the square, 7·10¹³); this
 * stays 10⁴ below, where the normal equations still give OpenCV's SVD solution to ~10⁻⁶.
 */
const MAX_CONDITION = 1 / (FLT_EPSILON * FLT_EPSILON) / 1e4;
const normal = new Float64Array(25);

/**
 * OpenCV's fitEllipseNoDirect: a least-squares conic, its centre, then a refit of its axes about the centre, with
 * float32 where OpenCV uses floats. OpenCV solves by SVD; the normal equations solved here by Cholesky agree far below
 * the float32 output when they are well conditioned, which a bound on their condition number (trace × Frobenius norm
 * of the inverse) checks. Null when it is not.
 */
function fitEllipseNoDirect(xy: Int32Array): RotatedBox | null {
  const n = xy.length / 2;
  let cx = 0, cy = 0;
  for (let i = 0; i < xy.length; i += 2) {
    cx = f32(cx + xy[i]);
    cy = f32(cy + xy[i + 1]);
  }
  cx = f32(cx / n);
  cy = f32(cy / n);
  let s = 0;
  for (let i = 0; i < xy.length; i += 2) s += f32(Math.abs(f32(xy[i] - cx)) + Math.abs(f32(xy[i + 1] - cy)));
  const scale = 100 / (s > FLT_EPSILON ? s : FLT_EPSILON);
  // Rows (−x², −y², −xy, x, y) = 10000; the normal equations' upper triangle and right-hand side.
  normal.fill(0);
  let b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0;
  for (let i = 0; i < xy.length; i += 2) {
    const px = f32(xy[i] - cx) * scale, py = f32(xy[i + 1] - cy) * scale;
    const r0 = -px * px, r1 = -py * py, r2 = -px * py;
    normal[0] += r0 * r0, normal[1] += r0 * r1, normal[2] += r0 * r2, normal[3] += r0 * px, normal[4] += r0 * py;
    normal[6] += r1 * r1, normal[7] += r1 * r2, normal[8] += r1 * px, normal[9] += r1 * py;
    normal[12] += r2 * r2, normal[13] += r2 * px, normal[14] += r2 * py;
    normal[18] += px * px, normal[19] += px * py, normal[24] += py * py;
    b0 += r0, b1 += r1, b2 += r2, b3 += px, b4 += py;
  }
  const gfp = solveNormal(5, [b0 * 1e4, b1 * 1e4, b2 * 1e4, b3 * 1e4, b4 * 1e4]);
  if (!gfp) return null;
  // The centre, where the conic's gradient vanishes (a 2×2 system).
  const det = 4 * gfp[0] * gfp[1] - gfp[2] * gfp[2];
  const size = Math.abs(gfp[0]) + Math.abs(gfp[1]) + Math.abs(gfp[2]);
  if (!(Math.abs(det) > 1e-6 * size * size)) return null;
  const rx = (2 * gfp[1] * gfp[3] - gfp[2] * gfp[4]) / det, ry = (2 * gfp[0] * gfp[4] - gfp[2] * gfp[3]) / det;
  // Rows ((x − rx)², (y − ry)², (x − rx)(y − ry)) = 1.
  normal.fill(0);
  let c0 = 0, c1 = 0, c2 = 0;
  for (let i = 0; i < xy.length; i += 2) {
    const px = f32(xy[i] - cx) * scale - rx, py = f32(xy[i + 1] - cy) * scale - ry;
    const r0 = px * px, r1 = py * py, r2 = px * py;
    normal[0] += r0 * r0, normal[1] += r0 * r1, normal[2] += r0 * r2;
    normal[4] += r1 * r1, normal[5] += r1 * r2, normal[8] += r2 * r2;
    c0 += r0, c1 += r1, c2 += r2;
  }
  const abc = solveNormal(3, [c0, c1, c2]);
  if (!abc) return null;
  const [g0, g1, g2] = abc;
  const angle = -0.5 * Math.atan2(g2, g1 - g0);
  const t = Math.abs(g2) > 1e-8 ? g2 / Math.sin(-2 * angle) : g1 - g0;
  let a2 = Math.abs(g0 + g1 - t), a3 = Math.abs(g0 + g1 + t);
  if (a2 > 1e-8) a2 = Math.sqrt(2 / a2);
  if (a3 > 1e-8) a3 = Math.sqrt(2 / a3);
  let width = f32((a2 * 2) / scale), height = f32((a3 * 2) / scale), boxAngle = 0;
  if (width > height) {
    [width, height] = [height, width];
    boxAngle = f32(90 + (angle * 180) / Math.PI);
  }
  if (boxAngle < -180) boxAngle += 360;
  if (boxAngle > 360) boxAngle -= 360;
  return {
    center: { x: f32(f32(rx / scale) + cx), y: f32(f32(ry / scale) + cy) },
    size: { width, height },
    angle: boxAngle,
  };
}

/**
 * Solves the k×k symmetric positive definite system in `normal` (upper triangle, row stride k) by Cholesky; null when
 * it is not positive definite or its condition bound passes MAX_CONDITION.
 */
function solveNormal(k: number, rhs: number[]): number[] | null {
  const m = normal;
  let trace = 0;
  for (let i = 0; i < k; i++) trace += m[i * k + i];
  // In place: the upper triangle becomes U with M = UᵀU.
  for (let i = 0; i < k; i++) {
    let d = m[i * k + i];
    for (let p = 0; p < i; p++) d -= m[p * k + i] * m[p * k + i];
    if (!(d > 0)) return null;
    const u = Math.sqrt(d);
    m[i * k + i] = u;
    for (let j = i + 1; j < k; j++) {
      let v = m[i * k + j];
      for (let p = 0; p < i; p++) v -= m[p * k + i] * m[p * k + j];
      m[i * k + j] = v / u;
    }
  }
  // M⁻¹ column by column (Uᵀy = e, then Ux = y), for its Frobenius norm: λmin ≥ 1 / ‖M⁻¹‖_F, λmax ≤ trace.
  let frob = 0;
  for (let col = 0; col < k; col++) {
    const x = solveFactored(k, (r) => (r === col ? 1 : 0));
    for (let r = 0; r < k; r++) frob += x[r] * x[r];
  }
  if (!(trace * Math.sqrt(frob) < MAX_CONDITION)) return null;
  return solveFactored(k, (r) => rhs[r]);
}

function solveFactored(k: number, rhs: (r: number) => number): number[] {
  const m = normal, y = new Array<number>(k), x = new Array<number>(k);
  for (let r = 0; r < k; r++) {
    let v = rhs(r);
    for (let p = 0; p < r; p++) v -= m[p * k + r] * y[p];
    y[r] = v / m[r * k + r];
  }
  for (let r = k - 1; r >= 0; r--) {
    let v = y[r];
    for (let p = r + 1; p < k; p++) v -= m[r * k + p] * x[p];
    x[r] = v / m[r * k + r];
  }
  return x;
}

// Sort keys and vertices of the hull in progress, reused: most contours are small, and allocations cost more than the
// sort.
let scratch = new Float64Array(256);
let hullScratch = new Int32Array(512);

/**
 * The convex hull of integer vertices by Andrew's monotone chain: counter-clockwise in a y-up frame (positive
 * shoelace area), no collinear vertices, x, y interleaved; exact on integers. The result is a view into a buffer the
 * next call reuses.
 */
export function convexHull(xy: Int32Array): Int32Array {
  const n = xy.length / 2;
  let minX = Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < xy.length; i += 2) {
    if (xy[i] < minX) minX = xy[i];
    if (xy[i + 1] < minY) minY = xy[i + 1];
    if (xy[i + 1] > maxY) maxY = xy[i + 1];
  }
  // Sorted by x then y as one number each: a typed array sorts numbers natively, where a comparator costs a call
  // per comparison (the hull was the slowest measurement before).
  const span = maxY - minY + 1;
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, scratch.length * 2));
  const keys = scratch.subarray(0, n);
  for (let i = 0; i < n; i++) keys[i] = (xy[2 * i] - minX) * span + (xy[2 * i + 1] - minY);
  if (n > 48) keys.sort();
  else {
    // Insertion sort: for the few vertices of most contours, cheaper than a call into the runtime's sort.
    for (let i = 1; i < n; i++) {
      const v = keys[i];
      let j = i - 1;
      for (; j >= 0 && keys[j] > v; j--) keys[j + 1] = keys[j];
      keys[j + 1] = v;
    }
  }
  if (hullScratch.length < 2 * n + 2) hullScratch = new Int32Array(Math.max(2 * n + 2, hullScratch.length * 2));
  const hull = hullScratch;
  let k = 0;
  let distinct = 0;
  for (let i = 0; i < n; i++) {
    if (i > 0 && keys[i] === keys[i - 1]) continue;
    keys[distinct++] = keys[i];
  }
  // Lower chain left to right, then upper chain back, each popping what does not turn left.
  for (let pass = 0; pass < 2; pass++) {
    const floor = pass === 0 ? 0 : k - 1;
    for (let step = 0; step < (pass === 0 ? distinct : distinct - 1); step++) {
      const key = keys[pass === 0 ? step : distinct - 2 - step];
      const x = Math.floor(key / span) + minX, y = key - Math.floor(key / span) * span + minY;
      while (k >= floor + 2) {
        const ox = hull[2 * k - 4], oy = hull[2 * k - 3];
        if ((hull[2 * k - 2] - ox) * (y - oy) - (hull[2 * k - 1] - oy) * (x - ox) > 0) break;
        k--;
      }
      hull[2 * k] = x;
      hull[2 * k + 1] = y;
      k++;
    }
  }
  // The upper chain ends on the first point again.
  if (k > 1) k--;
  return hull.subarray(0, 2 * k);
}

/** The shoelace area of a polygon (absolute). */
export function polygonArea(xy: Int32Array | Float64Array): number {
  const n = xy.length / 2;
  let s = 0;
  for (let i = 0, j = n - 1; i < n; j = i++) s += xy[2 * j] * xy[2 * i + 1] - xy[2 * i] * xy[2 * j + 1];
  return Math.abs(s) / 2;
}

/**
 * The minimum-area enclosing rectangle of a convex hull, by rotating calipers over its edges, reported in
 * cv.minAreaRect's convention (OpenCV 4.5.1 and later): angle in (0, 90], `width` the side along that angle; a
 * line's angle is its direction, a point's 0. Corners follow cv.boxPoints.
 */
export function minAreaRect(
  hull: Int32Array,
  sweep: Calipers | null = null,
): RotatedBox & { corners: [number, number][] } {
  const n = hull.length / 2;
  let box: RotatedBox;
  if (n === 1) box = { center: { x: hull[0], y: hull[1] }, size: { width: 0, height: 0 }, angle: 0 };
  else if (n === 2) {
    // From the larger point to the smaller, as OpenCV's hull lists them.
    const dx = hull[0] - hull[2], dy = hull[1] - hull[3];
    box = {
      center: { x: (hull[0] + hull[2]) / 2, y: (hull[1] + hull[3]) / 2 },
      size: { width: Math.hypot(dx, dy), height: 0 },
      angle: Math.atan2(dy, dx) * DEG,
    };
  } else {
    const best = (sweep ?? calipers(hull)).rect;
    const { ux, uy, minU, maxU, minV, maxV } = best;
    const cu = (minU + maxU) / 2, cv = (minV + maxV) / 2;
    const center = { x: cu * ux - cv * uy, y: cu * uy + cv * ux };
    // The side directions are the edge's (u) and its normal (v); OpenCV names the one in (0, 90] the width.
    let angle = Math.atan2(uy, ux) * DEG;
    let width = maxU - minU, height = maxV - minV;
    angle = ((angle % 180) + 180) % 180;
    if (angle > 90) {
      angle -= 90;
      [width, height] = [height, width];
    }
    if (angle === 0) {
      angle = 90;
      [width, height] = [height, width];
    }
    box = { center, size: { width, height }, angle };
  }
  return { ...roundBox(box), corners: boxPoints(box).map(([x, y]) => [round(x), round(y)] as [number, number]) };
}

function roundBox(b: RotatedBox): RotatedBox {
  return {
    center: { x: round(b.center.x), y: round(b.center.y) },
    size: { width: round(b.size.width), height: round(b.size.height) },
    angle: round(b.angle),
  };
}

/** The four corners of a rotated box in cv.RotatedRect::points' order. */
export function boxPoints(b: RotatedBox): [number, number][] {
  const a = Math.sin(b.angle / DEG) * 0.5, c = Math.cos(b.angle / DEG) * 0.5;
  const { x, y } = b.center, { width: w, height: h } = b.size;
  const p0: [number, number] = [x - a * h - c * w, y + c * h - a * w];
  const p1: [number, number] = [x + a * h - c * w, y - c * h - a * w];
  return [p0, p1, [2 * x - p0[0], 2 * y - p0[1]], [2 * x - p1[0], 2 * y - p1[1]]];
}

/** The smallest circle enclosing a convex hull (Welzl's incremental algorithm; the hull holds every extreme point). */
export function minEnclosingCircle(hull: Int32Array): { center: { x: number; y: number }; radius: number } {
  const n = hull.length / 2;
  const px = (i: number) => hull[2 * i], py = (i: number) => hull[2 * i + 1];
  let cx = px(0), cy = py(0), r2 = 0;
  const inside = (i: number) => (px(i) - cx) ** 2 + (py(i) - cy) ** 2 <= r2 * (1 + 1e-12) + 1e-9;
  for (let i = 1; i < n; i++) {
    if (inside(i)) continue;
    cx = px(i), cy = py(i), r2 = 0;
    for (let j = 0; j < i; j++) {
      if (inside(j)) continue;
      cx = (px(i) + px(j)) / 2, cy = (py(i) + py(j)) / 2;
      r2 = (px(i) - cx) ** 2 + (py(i) - cy) ** 2;
      for (let k = 0; k < j; k++) {
        if (inside(k)) continue;
        const c = circumcircle(px(i), py(i), px(j), py(j), px(k), py(k));
        cx = c.x, cy = c.y, r2 = c.r2;
      }
    }
  }
  return { center: { x: round(cx), y: round(cy) }, radius: round(Math.sqrt(r2)) };
}

function circumcircle(ax: number, ay: number, bx: number, by: number, cx: number, cy: number) {
  const d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by));
  const a2 = ax * ax + ay * ay, b2 = bx * bx + by * by, c2 = cx * cx + cy * cy;
  const x = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d;
  const y = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d;
  return { x, y, r2: (ax - x) ** 2 + (ay - y) ** 2 };
}

/**
 * Feret (caliper) diameters of a convex hull: the largest distance between two vertices, and the smallest width
 * (always measured across one of the hull's edges), each with the direction it is measured in, in [0, 180)°.
 */
export function feretDiameters(hull: Int32Array, sweep: Calipers | null = null): ShapeMeasurements["feret"] {
  const n = hull.length / 2;
  const degrees = (rad: number) => round((((rad * DEG) % 180) + 180) % 180);
  if (n < 3) {
    const dx = n === 2 ? hull[2] - hull[0] : 0, dy = n === 2 ? hull[3] - hull[1] : 0;
    const angle = Math.atan2(dy, dx);
    return {
      max: round(Math.hypot(dx, dy)),
      max_angle: degrees(angle),
      min: 0,
      min_angle: n === 2 ? degrees(angle + Math.PI / 2) : 0,
    };
  }
  const { max2, maxAngle, minWidth, minAngle } = sweep ?? calipers(hull);
  return {
    max: round(Math.sqrt(max2)),
    max_angle: degrees(maxAngle),
    min: round(minWidth),
    min_angle: degrees(minAngle),
  };
}

/** What one sweep of the calipers found (see `calipers`). */
interface Calipers {
  rect: { area: number; ux: number; uy: number; minU: number; maxU: number; minV: number; maxV: number };
  minWidth: number;
  minAngle: number;
  max2: number;
  maxAngle: number;
}

/**
 * Rotating calipers over a convex hull of three or more vertices (counter-clockwise, no collinear vertices): for each
 * edge, the extent along it and the farthest vertex from it, advanced from the previous edge's (each moves around
 * the hull once), so the whole pass is linear. Gives the smallest-area rectangle with a side on an edge (the minimum
 * one has), the smallest width (across an edge) and the diameter (the farthest of the antipodal pairs met).
 */
function calipers(hull: Int32Array): Calipers {
  const n = hull.length / 2;
  // Written out with no closures: this runs once per contour, and calls per vertex made it slower than brute force.
  const next = (k: number) => (k + 1 === n ? 0 : k + 1);
  let right = 0, top = 0, left = 0;
  let rect = { area: Infinity, ux: 1, uy: 0, minU: 0, maxU: 0, minV: 0, maxV: 0 };
  let minWidth = Infinity, minAngle = 0, max2 = 0, maxAngle = 0;
  for (let i = 0; i < n; i++) {
    const i1 = next(i);
    const xi = hull[2 * i], yi = hull[2 * i + 1], xi1 = hull[2 * i1], yi1 = hull[2 * i1 + 1];
    const ex = xi1 - xi, ey = yi1 - yi;
    const len = Math.sqrt(ex * ex + ey * ey);
    const ux = ex / len, uy = ey / len;
    if (i === 0) {
      for (let k = 1; k < n; k++) {
        const xk = hull[2 * k], yk = hull[2 * k + 1];
        if (xk * ux + yk * uy > hull[2 * right] * ux + hull[2 * right + 1] * uy) right = k;
        if (yk * ux - xk * uy > hull[2 * top + 1] * ux - hull[2 * top] * uy) top = k;
      }
      left = top;
      for (let k = 0; k < n; k++) {
        if (hull[2 * k] * ux + hull[2 * k + 1] * uy < hull[2 * left] * ux + hull[2 * left + 1] * uy) left = k;
      }
    }
    for (let steps = 0; steps < n; steps++) {
      const r = next(right);
      if (hull[2 * r] * ux + hull[2 * r + 1] * uy < hull[2 * right] * ux + hull[2 * right + 1] * uy) break;
      right = r;
    }
    // Every vertex the far caliper passes is antipodal to this edge: a candidate for the diameter.
    for (let steps = 0; steps <= n; steps++) {
      const xt = hull[2 * top], yt = hull[2 * top + 1];
      for (let end = 0; end < 2; end++) {
        const px = end ? xi1 : xi, py = end ? yi1 : yi;
        const dx = xt - px, dy = yt - py, d2 = dx * dx + dy * dy;
        if (d2 > max2) {
          max2 = d2;
          maxAngle = Math.atan2(dy, dx);
        }
      }
      const t = next(top);
      if (hull[2 * t + 1] * ux - hull[2 * t] * uy < yt * ux - xt * uy) break;
      top = t;
    }
    for (let steps = 0; steps < n; steps++) {
      const l = next(left);
      if (hull[2 * l] * ux + hull[2 * l + 1] * uy > hull[2 * left] * ux + hull[2 * left + 1] * uy) break;
      left = l;
    }
    const minU = hull[2 * left] * ux + hull[2 * left + 1] * uy, maxU = hull[2 * right] * ux + hull[2 * right + 1] * uy;
    const minV = yi * ux - xi * uy, maxV = hull[2 * top + 1] * ux - hull[2 * top] * uy;
    const width = maxV - minV;
    if (width < minWidth) {
      minWidth = width;
      // Measured across the edge: along its normal.
      minAngle = Math.atan2(ex, -ey);
    }
    const area = (maxU - minU) * width;
    // A relative margin, so that rounding does not pick between rectangles of the same area.
    if (area < rect.area * (1 - 1e-9)) rect = { area, ux, uy, minU, maxU, minV, maxV };
  }
  return { rect, minWidth, minAngle, max2, maxAngle };
}

/**
 * Hu's invariants of a polygon from its moments up to the third order, by OpenCV's contourMoments,
 * completeMomentState and HuMoments step for step (in doubles, as there); all 0 for a polygon of no area.
 */
function huMoments(xy: Int32Array): number[] {
  const n = xy.length / 2;
  if (n === 0) return [0, 0, 0, 0, 0, 0, 0];
  let a00 = 0, a10 = 0, a01 = 0, a20 = 0, a11 = 0, a02 = 0, a30 = 0, a21 = 0, a12 = 0, a03 = 0;
  let x1 = xy[2 * n - 2], y1 = xy[2 * n - 1];
  let x12 = x1 * x1, y12 = y1 * y1;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    const x2 = x * x, y2 = y * y;
    const dxy = x1 * y - x * y1;
    const xs = x1 + x, ys = y1 + y;
    a00 += dxy;
    a10 += dxy * xs;
    a01 += dxy * ys;
    a20 += dxy * (x1 * xs + x2);
    a11 += dxy * (x1 * (ys + y1) + x * (ys + y));
    a02 += dxy * (y1 * ys + y2);
    a30 += dxy * xs * (x12 + x2);
    a03 += dxy * ys * (y12 + y2);
    a21 += dxy * (x12 * (3 * y1 + y) + 2 * x * x1 * ys + x2 * (y1 + 3 * y));
    a12 += dxy * (y12 * (3 * x1 + x) + 2 * y * y1 * xs + y2 * (x1 + 3 * x));
    x1 = x, y1 = y, x12 = x2, y12 = y2;
  }
  if (a00 === 0) return [0, 0, 0, 0, 0, 0, 0];
  const sign = a00 > 0 ? 1 : -1;
  // Multiplied by rounded reciprocals, as OpenCV does: the last bits of the results depend on it.
  const m00 = a00 * (sign * 0.5), m10 = a10 * (sign / 6), m01 = a01 * (sign / 6);
  const m20 = a20 * (sign / 12), m11 = a11 * (sign / 24), m02 = a02 * (sign / 12);
  const m30 = a30 * (sign / 20), m21 = a21 * (sign / 60), m12 = a12 * (sign / 60), m03 = a03 * (sign / 20);
  const inv = 1 / m00, cx = m10 * inv, cy = m01 * inv;
  const mu20 = m20 - m10 * cx, mu11 = m11 - m10 * cy, mu02 = m02 - m01 * cy;
  const mu30 = m30 - cx * (3 * mu20 + cx * m10);
  const mu21 = m21 - cx * (mu11 + mu11 + cx * m01) - cy * mu20;
  const mu12 = m12 - cy * (mu11 + mu11 + cy * m10) - cx * mu02;
  const mu03 = m03 - cy * (3 * mu02 + cy * m01);
  const s2 = inv * inv, s3 = s2 * Math.sqrt(Math.abs(inv));
  const nu20 = mu20 * s2, nu11 = mu11 * s2, nu02 = mu02 * s2;
  const nu30 = mu30 * s3, nu21 = mu21 * s3, nu12 = mu12 * s3, nu03 = mu03 * s3;
  let t0 = nu30 + nu12, t1 = nu21 + nu03;
  let q0 = t0 * t0, q1 = t1 * t1;
  const n4 = 4 * nu11, s = nu20 + nu02, d = nu20 - nu02;
  const hu = new Array<number>(7);
  hu[0] = s;
  hu[1] = d * d + n4 * nu11;
  hu[3] = q0 + q1;
  hu[5] = d * (q0 - q1) + n4 * t0 * t1;
  t0 *= q0 - 3 * q1;
  t1 *= 3 * q0 - q1;
  q0 = nu30 - 3 * nu12;
  q1 = 3 * nu21 - nu03;
  hu[2] = q0 * q0 + q1 * q1;
  hu[4] = q0 * t0 + q1 * t1;
  hu[6] = q1 * t0 - q0 * t1;
  for (let i = 0; i < 7; i++) hu[i] += 0;
  // Not rounded: the invariants span many orders of magnitude, so a fixed number of decimals would not do.
  return hu;
}

/**
 * The perimeter of a closed polygon as cv.arcLength(contour, true) gives it for integer vertices: each side's length
 * in single precision (the differences and their squares are floats, and so is the root), summed in double from the
 * side that closes the polygon on. Fewer than two vertices have none.
 */
export function closedArcLength(xy: Int32Array): number {
  const n = xy.length / 2;
  if (n <= 1) return 0;
  let perimeter = 0;
  let px = xy[2 * n - 2], py = xy[2 * n - 1];
  for (let i = 0; i < xy.length; i += 2) {
    const dx = xy[i] - px, dy = xy[i + 1] - py;
    perimeter += Math.fround(Math.sqrt(Math.fround(dx * dx + dy * dy)));
    px = xy[i];
    py = xy[i + 1];
  }
  return perimeter;
}

/**
 * Whether a polygon is convex as cv.isContourConvex decides it: every turn between consecutive sides goes the same
 * way, and a straight or reversed turn (equal cross products) makes it not convex. No vertices is not convex.
 */
export function isConvex(xy: Int32Array): boolean {
  const n = xy.length / 2;
  if (n === 0) return false;
  const prev = ((n - 2 + n) % n) * 2;
  let cx = xy[2 * n - 2], cy = xy[2 * n - 1];
  let dx0 = cx - xy[prev], dy0 = cy - xy[prev + 1];
  let orientation = 0;
  for (let i = 0; i < xy.length; i += 2) {
    const dx = xy[i] - cx, dy = xy[i + 1] - cy;
    const a = Math.imul(dy, dx0), b = Math.imul(dx, dy0);
    orientation |= a > b ? 1 : a < b ? 2 : 3;
    if (orientation === 3) return false;
    cx = xy[i];
    cy = xy[i + 1];
    dx0 = dx;
    dy0 = dy;
  }
  return true;
}
