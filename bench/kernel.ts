import { decodeImage } from "../imaging/decode.ts";
import { analyseImage, loadPipeline } from "../imaging/pipeline.ts";
import { createAnalysisPool } from "../imaging/pool.ts";
import { DEFAULT_OPTIONS } from "../imaging/options.ts";
import { median, round } from "./stats.ts";

/** Pipeline stages, in order, as the pipeline reports them. */
export const STAGES = ["decode", "analyse", "measure", "draw", "encode"] as const;

/** Median milliseconds per stage (and for the whole pipeline) on one image. */
export type StageMedians = Record<(typeof STAGES)[number] | "total", number> & {
  contour_count: number;
  encoded_bytes: number;
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
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = performance.now();
      last = analyseImage(cv, bytes, DEFAULT_OPTIONS);
      const total = performance.now() - t0;
      if (i < warmup) continue;
      for (const stage of STAGES) (samples[stage] ??= []).push(last.report.timings_ms[stage]);
      (samples.total ??= []).push(total);
    }
    const medians = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, round(median(v))]));
    out[file] = {
      ...medians,
      contour_count: last!.report.contour_count,
      encoded_bytes: last!.image?.length ?? 0,
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
  wasm_heap_after_warmup_mib: number;
  wasm_heap_after_all_mib: number;
}

/**
 * Runs `images` analyses over the files and compares RSS after the first tenth (warm: heaps sized, code compiled) with
 * RSS at the end; a leaked `Mat` per image shows up as WASM heap growth.
 */
export async function benchMemory(files: string[], images: number): Promise<MemoryReport> {
  const cv = await loadPipeline();
  const inputs = await Promise.all(files.map((f) => Deno.readFile(f)));
  const heapMiB = () => round((cv as unknown as { HEAP8: Int8Array }).HEAP8.length / 2 ** 20, 1);
  // Garbage is collected first (the bench runs with --expose-gc), so the readings are live memory, not V8's timing.
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  const rssMiB = () => {
    gc();
    return round(Deno.memoryUsage().rss / 2 ** 20, 1);
  };
  const warm = Math.max(1, Math.floor(images / 10));
  let rssWarm = 0;
  let heapWarm = 0;
  for (let i = 0; i < images; i++) {
    analyseImage(cv, inputs[i % inputs.length], DEFAULT_OPTIONS);
    if (i + 1 === warm) {
      rssWarm = rssMiB();
      heapWarm = heapMiB();
    }
  }
  const rssEnd = rssMiB();
  return {
    images,
    rss_after_warmup_mib: rssWarm,
    rss_after_all_mib: rssEnd,
    rss_growth_pct: round(((rssEnd - rssWarm) / rssWarm) * 100, 1),
    wasm_heap_after_warmup_mib: heapWarm,
    wasm_heap_after_all_mib: heapMiB(),
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
