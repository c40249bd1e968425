import { analyseContours } from "../imaging/contours.ts";
import { decodeImage } from "../imaging/decode.ts";
import { encodeJpeg } from "../imaging/encode.ts";
import { analyseImage, loadPipeline } from "../imaging/pipeline.ts";
import { prefilterMemoryBytes } from "../imaging/prefilter.ts";
import { createAnalysisPool } from "../imaging/pool.ts";
import { DEFAULT_OPTIONS } from "../imaging/options.ts";
import { median, round } from "./stats.ts";

/** Pipeline stages, in order, as the pipeline reports them. */
export const STAGES = ["decode", "analyse", "measure", "draw", "encode"] as const;

/** Median milliseconds per stage (and for the whole pipeline) on one image. */
export type StageMedians = Record<(typeof STAGES)[number] | "total", number> & {
  contour_count: number;
  encoded_bytes: number;
  /**
   * The annotated image as a quality-95 JPEG (encodeJpeg; native: cv2.imencode), timed apart from the pipeline, whose
   * output is PNG by default: not part of "total".
   */
  encode_jpeg: number;
  jpeg_bytes: number;
};

/** Runs the pipeline `warmup` + `runs` times on each file in this thread (one OpenCV.js) and takes medians. */
export async function benchKernel(
  files: string[],
  runs: number,
  warmup: number,
): Promise<Record<string, StageMedians>> {
  const cv = await loadPipeline();
  const out: Record<string, StageMedians> = {};
  for (const file of files) {
    const bytes = await Deno.readFile(file);
    const samples: Record<string, number[]> = {};
    let last: ReturnType<typeof analyseImage> | undefined;
    const annotated = analyseContours(cv, decodeImage(bytes).raster, DEFAULT_OPTIONS).annotated!;
    let jpeg: Uint8Array | undefined;
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = performance.now();
      last = analyseImage(cv, bytes, DEFAULT_OPTIONS);
      const total = performance.now() - t0;
      const t1 = performance.now();
      jpeg = encodeJpeg(annotated, 95);
      const encodeJpegMs = performance.now() - t1;
      if (i < warmup) continue;
      for (const stage of STAGES) (samples[stage] ??= []).push(last.report.timings_ms[stage]);
      (samples.total ??= []).push(total);
      (samples.encode_jpeg ??= []).push(encodeJpegMs);
    }
    const medians = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, round(median(v))]));
    out[file] = {
      ...medians,
      contour_count: last!.report.contour_count,
      encoded_bytes: last!.image?.length ?? 0,
      jpeg_bytes: jpeg!.length,
    } as StageMedians;
  }
  return out;
}

/** Milliseconds from creating a fresh Web Worker to its OpenCV.js being ready (median of `times` cold starts). */
export async function benchOpenCVStartup(times = 3): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    const pool = await createAnalysisPool(1);
    samples.push(performance.now() - t0);
    pool.close();
  }
  return round(median(samples));
}

/** What memory did over `images` pipeline runs in this thread. */
export interface MemoryReport {
  images: number;
  rss_after_warmup_mib: number;
  rss_after_all_mib: number;
  rss_growth_pct: number;
  /** Live JavaScript objects (V8 heap after a collection). */
  js_heap_after_warmup_mib: number;
  js_heap_after_all_mib: number;
  /** OpenCV.js's WASM memory: a Mat not freed per image would grow it. */
  wasm_heap_after_warmup_mib: number;
  wasm_heap_after_all_mib: number;
  /** The prefilter's WASM memory: sized by the largest image so far, and never more by itself. */
  prefilter_memory_after_warmup_mib: number;
  prefilter_memory_after_all_mib: number;
}

/**
 * Runs `images` analyses over the files and compares memory after the first quarter (warm: heaps sized, code
 * compiled) with memory at the end. RSS also holds ArrayBuffer memory that V8 has freed but the allocator not yet returned, so
 * it moves by tens of MiB either way; the JS heap and OpenCV's WASM heap are what a leak would grow.
 */
export async function benchMemory(files: string[], images: number): Promise<MemoryReport> {
  const cv = await loadPipeline();
  const inputs = await Promise.all(files.map((f) => Deno.readFile(f)));
  // Garbage is collected first (the bench runs with --expose-gc), so the readings are live memory, not V8's timing.
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  const read = () => {
    gc();
    const m = Deno.memoryUsage();
    return {
      rss: round(m.rss / 2 ** 20, 1),
      js: round(m.heapUsed / 2 ** 20, 1),
      wasm: round((cv as unknown as { HEAP8: Int8Array }).HEAP8.length / 2 ** 20, 1),
      prefilter: round(prefilterMemoryBytes() / 2 ** 20, 1),
    };
  };
  // The baseline is taken after a quarter: by then V8's heaps and the allocator's pools have reached working size.
  const warm = Math.max(1, Math.floor(images / 4));
  let first = read();
  for (let i = 0; i < images; i++) {
    analyseImage(cv, inputs[i % inputs.length], DEFAULT_OPTIONS);
    if (i + 1 === warm) first = read();
  }
  const last = read();
  return {
    images,
    rss_after_warmup_mib: first.rss,
    rss_after_all_mib: last.rss,
    rss_growth_pct: round(((last.rss - first.rss) / first.rss) * 100, 1),
    js_heap_after_warmup_mib: first.js,
    js_heap_after_all_mib: last.js,
    wasm_heap_after_warmup_mib: first.wasm,
    wasm_heap_after_all_mib: last.wasm,
    prefilter_memory_after_warmup_mib: first.prefilter,
    prefilter_memory_after_all_mib: last.prefilter,
  };
}

/** Images per second through an analysis pool of `size` members, the pool kept full (`images` in all). */
export async function benchPoolThroughput(files: string[], size: number, images: number): Promise<number> {
  const inputs = await Promise.all(files.map((f) => Deno.readFile(f)));
  const pool = await createAnalysisPool(size);
  try {
    // One warm-up image per member, so compilation is not part of the figure.
    await Promise.all(
      Array.from(
        { length: size },
        (_, i) => pool.analyse(inputs[i % inputs.length].slice(), DEFAULT_OPTIONS, Infinity),
      ),
    );
    let next = 0;
    const t0 = performance.now();
    const lane = async () => {
      for (let i = next++; i < images; i = next++) {
        await pool.analyse(inputs[i % inputs.length].slice(), DEFAULT_OPTIONS, Infinity);
      }
    };
    await Promise.all(Array.from({ length: size * 2 }, lane));
    return round(images / ((performance.now() - t0) / 1000));
  } finally {
    pool.close();
  }
}

/** Decodes every file once, so a broken input fails the bench before any timing. */
export async function checkInputs(files: string[]): Promise<void> {
  for (const f of files) decodeImage(await Deno.readFile(f));
}
