import type { OpenCV } from "./opencv.ts";

type Mat = InstanceType<OpenCV["Mat"]>;
type Keep = <M extends { delete(): void }>(m: M) => M;

/** A kept contour as the intensity pass needs it. */
export interface IntensityRegion {
  mat: Mat;
  depth: number;
  area: number;
  /** Index of its top-level ancestor (itself at the top level) among the regions. */
  root: number;
  bbox: { x: number; y: number; width: number; height: number };
}

/**
 * Mean and standard deviation (population, as cv.meanStdDev) of the gray image inside each contour, the interiors of
 * the contours nested in it left out; null for a contour with no pixel of its own. One label image serves every
 * contour: each is filled (cv.drawContours, FILLED, so its outline counts) with its index + 1, outer ones first, so
 * a pixel ends up labelled with the innermost contour holding it. Masking contour by contour would cost a pass over
 * its bounding box each, and thousands of contours make that the slowest step.
 */
export function intensityStats(
  cv: OpenCV,
  keep: Keep,
  gray: Uint8Array,
  width: number,
  height: number,
  regions: IntensityRegion[],
): ({ mean: number; std: number } | null)[] {
  const n = regions.length;
  if (n === 0) return [];
  const labels = keep(new cv.Mat(height, width, cv.CV_32SC1, new cv.Scalar(0)));
  const polygons = keep(new cv.MatVector());
  for (const r of regions) polygons.push_back(r.mat);
  const order = regions.map((_, i) => i).sort((a, b) =>
    regions[a].depth - regions[b].depth || regions[b].area - regions[a].area || a - b
  );
  // A plain array for the colour: embind reads it as a Scalar, without constructing one per contour.
  const colour = [0, 0, 0, 0];
  for (const i of order) {
    colour[0] = i + 1;
    cv.drawContours(labels, polygons, i, colour as unknown as InstanceType<OpenCV["Scalar"]>, cv.FILLED, cv.LINE_8);
  }

  const label = labels.data32S;
  const count = new Float64Array(n + 1), sum = new Float64Array(n + 1), sumSq = new Float64Array(n + 1);
  const rootOf = new Int32Array(n + 1).fill(-1);
  regions.forEach((r, i) => (rootOf[i + 1] = r.root));
  // Each top-level contour's box holds every pixel of its descendants; a label is counted only in its root's box, so
  // boxes that overlap count nothing twice. Sums run in locals along runs of one label and are stored when it
  // changes: updating the arrays pixel by pixel chained every add through memory (5× slower on large regions).
  regions.forEach((r, i) => {
    if (r.root !== i) return;
    const { x, y, width: w, height: h } = r.bbox;
    let current = 0, c = 0, s = 0, q = 0;
    for (let row = y; row < y + h; row++) {
      for (let p = row * width + x, end = p + w; p < end; p++) {
        let l = label[p];
        if (l !== 0 && rootOf[l] !== i) l = 0;
        if (l !== current) {
          count[current] += c;
          sum[current] += s;
          sumSq[current] += q;
          current = l;
          c = s = q = 0;
        }
        const v = gray[p];
        c++;
        s += v;
        q += v * v;
      }
    }
    count[current] += c;
    sum[current] += s;
    sumSq[current] += q;
  });
  return regions.map((_, i) => {
    const c = count[i + 1];
    if (c === 0) return null;
    const mean = sum[i + 1] / c;
    const std = Math.sqrt(Math.max(0, sumSq[i + 1] / c - mean * mean));
    return { mean: Math.round(mean * 1000) / 1000, std: Math.round(std * 1000) / 1000 };
  });
}
