import { type Contour, detectContours } from "./contours.ts";
import { decodeImage } from "./decode.ts";
import { encodePng } from "./encode.ts";
import type { ImageFormat } from "./format.ts";
import type { OpenCV } from "./opencv.ts";

/** What one image's analysis produced: the measurements and the annotated PNG. */
export interface AnalysisReport {
  format: ImageFormat;
  width: number;
  height: number;
  threshold: number;
  contour_count: number;
  top_level_count: number;
  total_points: number;
  contours: Contour[];
  /** Milliseconds spent per stage. */
  timings_ms: { decode: number; analyse: number; encode: number };
}

/** Decodes image bytes, detects contours and renders the annotated PNG. */
export function analyseImage(cv: OpenCV, bytes: Uint8Array): { report: AnalysisReport; png: Uint8Array } {
  const t0 = performance.now();
  const { format, raster } = decodeImage(bytes);
  const t1 = performance.now();
  const analysis = detectContours(cv, raster);
  const t2 = performance.now();
  const png = encodePng(analysis.annotated);
  const t3 = performance.now();
  const contours = analysis.contours;
  const report: AnalysisReport = {
    format,
    width: analysis.width,
    height: analysis.height,
    threshold: analysis.threshold,
    contour_count: contours.length,
    top_level_count: contours.filter((c) => c.parent < 0).length,
    total_points: contours.reduce((n, c) => n + c.points.length, 0),
    contours,
    timings_ms: { decode: round(t1 - t0), analyse: round(t2 - t1), encode: round(t3 - t2) },
  };
  return { report, png };
}

const round = (ms: number) => Math.round(ms * 100) / 100;
