/// <reference lib="deno.worker" />
// One member of the analysis pool: owns one OpenCV.js instance and runs the CPU-heavy pipeline off the main thread,
// so the thread that renews BullMQ's job locks is never blocked by decoding, contours or encoding.
import { ImageError } from "./image_error.ts";
import { loadOpenCV, openCVVersion } from "./opencv.ts";
import type { AnalysisOptions } from "./options.ts";
import { analyseImage } from "./pipeline.ts";

/** A request to the pool member. */
export interface PoolRequest {
  id: number;
  bytes: Uint8Array;
  options: AnalysisOptions;
  maxPixels: number;
}

self.onmessage = async (e: MessageEvent<PoolRequest | "init">) => {
  if (e.data === "init") {
    self.postMessage({ ready: true, version: openCVVersion(await loadOpenCV()) });
    return;
  }
  const { id, bytes, options, maxPixels } = e.data;
  try {
    const cv = await loadOpenCV();
    const { report, image } = analyseImage(cv, bytes, options, maxPixels);
    self.postMessage({ id, report, image }, [image.buffer as ArrayBuffer]);
  } catch (err) {
    const error = err instanceof ImageError
      ? { image: true, code: err.code, message: err.message }
      : { image: false, message: err instanceof Error ? err.message : String(err) };
    self.postMessage({ id, error });
  }
};
