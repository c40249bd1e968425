import { releaseBuffer } from "./bytes.ts";
import { analyseContours, drawPolygons } from "./contours.ts";
import { decodeImage } from "./decode.ts";
import { loadDraw } from "./draw.ts";
import { encodeImage } from "./encode.ts";
import { loadJpegEncoder } from "./jpeg_encode.ts";
import { loadJpegWasm } from "./jpeg_wasm.ts";
import { loadOpenCV, type OpenCV } from "./opencv.ts";
import { type AnalysisOptions, DEFAULT_OPTIONS } from "./options.ts";
import { packPolygons, unpackPolygons } from "./polygons.ts";
import { loadPngEncoder } from "./png_encode.ts";
import { loadPrefilter } from "./prefilter.ts";
import { loadTrace } from "./trace.ts";
import type { Raster } from "./raster.ts";
import type { AnalysisReport } from "./report.ts";

/**
 * Loads what the pipeline runs on, once per isolate: OpenCV.js, libjpeg-turbo (WASM) for JPEGs and the SIMD prefilter
 * (gray, blur, Otsu), contour tracing, the encoders and the outline drawing.
 */
export async function loadPipeline(): Promise<OpenCV> {
  const [cv] = await Promise.all([
    loadOpenCV(),
    loadJpegWasm(),
    loadJpegEncoder(),
    loadPrefilter(),
    loadPngEncoder(),
    loadDraw(),
    loadTrace(),
  ]);
  return cv;
}

/**
 * Decodes image bytes, detects and measures contours, and (unless `draw` is false) renders the annotated image in the
 * chosen format. The report keeps at most `maxContours` contours, the largest, and the image shows those it keeps.
 */
export function analyseImage(
  cv: OpenCV,
  bytes: Uint8Array,
  options: AnalysisOptions = DEFAULT_OPTIONS,
  maxPixels = Infinity,
  draw = true,
  maxContours = Infinity,
): { report: AnalysisReport; image: Uint8Array | null } {
  const t0 = performance.now();
  const { format, raster, info } = decodeImage(bytes, maxPixels);
  const t1 = performance.now();
  const encoder = timedEncoder(options);
  const analysis = analyseContours(cv, raster, options, draw ? encoder.encode : null, maxContours);
  releaseDecoded(raster, bytes);
  const contours = analysis.contours;
  const total = contours.reduce((s, c) => s + c.area, 0);
  const report: AnalysisReport = {
    format,
    width: analysis.width,
    height: analysis.height,
    decode: info,
    options,
    threshold: analysis.threshold,
    contour_count: contours.length,
    contours_found: analysis.found,
    truncated: analysis.found > contours.length,
    top_level_count: contours.filter((c) => c.parent < 0).length,
    total_points: contours.reduce((n, c) => n + c.point_count, 0),
    total_area: total,
    mean_area: contours.length ? Math.round((total / contours.length) * 1000) / 1000 : 0,
    contours,
    timings_ms: {
      decode: ms(t1 - t0),
      analyse: analysis.timings.analyse,
      measure: analysis.timings.measure,
      draw: ms(analysis.timings.draw - encoder.ms),
      encode: ms(encoder.ms),
    },
  };
  return { report, image: analysis.annotated };
}

/**
 * Renders the annotated image of an analysed upload from its packed polygons (see `packResult`), or from its result
 * document when it was analysed without them.
 */
export function renderAnnotatedImage(cv: OpenCV, bytes: Uint8Array, drawing: Uint8Array, packed: boolean): Uint8Array {
  const { meta: { options }, counts, xy } = unpackPolygons(
    packed ? drawing : packResult(
      JSON.parse(new TextDecoder().decode(drawing)) as AnalysisReport,
    ),
  );
  const { raster } = decodeImage(bytes);
  const image = drawPolygons(cv, raster, counts, xy, options, timedEncoder(options).encode);
  releaseDecoded(raster, bytes);
  return image;
}

/** What drawing the result's image later needs, packed: its polygons, the upload's format and the options. */
export function packResult(report: Pick<AnalysisReport, "contours" | "format" | "options">): Uint8Array {
  return packPolygons(report.contours, { format: report.format, options: report.options });
}

/**
 * Frees the decoded pixels once they are in OpenCV's or the prefilter's memory; a raster that is a view into the
 * input `bytes` (an uncompressed file) stays, since the input is the caller's.
 */
function releaseDecoded(raster: Raster, bytes: Uint8Array): void {
  if (raster.data.buffer !== bytes.buffer) releaseBuffer(raster.data);
}

/** An encoder for the output format that notes how long it took (drawing and encoding are timed apart). */
function timedEncoder(options: AnalysisOptions) {
  const timer = {
    ms: 0,
    encode: (annotated: Raster) => {
      const t = performance.now();
      const out = encodeImage(annotated, options.output_format);
      timer.ms = performance.now() - t;
      return out;
    },
  };
  return timer;
}

const ms = (v: number) => Math.round(v * 100) / 100;
