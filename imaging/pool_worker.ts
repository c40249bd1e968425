/// <reference lib="deno.worker" />
// One member of the analysis pool: owns one OpenCV.js instance and runs the CPU-heavy pipeline off the main thread,
// so the thread that renews BullMQ's job locks is never blocked by decoding, contours or encoding.
import { setPriority } from "node:os";
import { releaseBuffer } from "./bytes.ts";
import { ImageError } from "./image_error.ts";
import { jpegEncoderMemoryBytes } from "./jpeg_encode.ts";
import { jpegDecoderMemoryBytes } from "./jpeg_wasm.ts";
import { type OpenCV, openCVVersion } from "./opencv.ts";
import type { AnalysisOptions } from "./options.ts";
import { analyseImage, loadPipeline, packResult, renderAnnotatedImage } from "./pipeline.ts";
import { drawMemoryBytes } from "./draw.ts";
import { pngEncoderMemoryBytes } from "./png_encode.ts";
import { PACK_MIN_POINTS } from "./polygons.ts";
import { prefilterMemoryBytes } from "./prefilter.ts";
import { traceMemoryBytes } from "./trace.ts";
import { unpackMemoryBytes } from "./unpack.ts";

/** A request to the pool member: analyse an upload, or render the annotated image of an analysed one. */
export type PoolRequest = {
  kind: "analyse";
  id: number;
  bytes: Uint8Array;
  options: AnalysisOptions;
  maxPixels: number;
  /** Fields placed first in the result document (e.g. the task id). */
  header: Record<string, unknown>;
  /** Whether to draw and encode the annotated image now. */
  draw: boolean;
  /** Most contours the result document keeps (the largest); Infinity for no limit. */
  maxContours: number;
  /** Set to 1 by the pool when the request is cancelled (shared memory: this thread reads no messages while busy). */
  stop?: Int32Array;
} | {
  kind: "render";
  id: number;
  bytes: Uint8Array;
  /** The packed polygons the analysis wrote, or (`packed` false) its result document. */
  drawing: Uint8Array;
  packed: boolean;
};

/** The first message a member gets: start OpenCV.js, and lower this thread's CPU priority to `nice`. */
export type PoolInit = { kind: "init"; nice: number };

self.onmessage = async (e: MessageEvent<PoolRequest | PoolInit>) => {
  if (e.data.kind === "init") {
    const niceError = lowerPriority(e.data.nice);
    self.postMessage({ ready: true, version: openCVVersion(await loadPipeline()), niceError });
    return;
  }
  const request = e.data;
  const { id } = request;
  try {
    const cv = await loadPipeline();
    if (request.kind === "render") {
      const image = ownBuffer(renderAnnotatedImage(cv, request.bytes, request.drawing, request.packed));
      releaseBuffer(request.bytes);
      self.postMessage({ id, image, held: heldBytes(cv) }, [image.buffer as ArrayBuffer]);
      return;
    }
    const { bytes, options, maxPixels, header, draw, maxContours, stop } = request;
    const cancelled = () => stop !== undefined && Atomics.load(stop, 0) === 1;
    if (cancelled()) return replyCancelled(id, cv, bytes);
    const startedAt = performance.timeOrigin + performance.now();
    const { report, image } = analyseImage(cv, bytes, options, maxPixels, draw, maxContours);
    // Serialising a large result takes a while more: a cancelled one is dropped here.
    if (cancelled()) return replyCancelled(id, cv, bytes);
    // The upload was transferred to this thread and is done with.
    releaseBuffer(bytes);
    // Serialised here, and only the summary cloned back: the calling thread renews job locks and should do no
    // per-contour work (a large image has thousands of contours).
    const document = new TextEncoder().encode(JSON.stringify({ ...header, ...report }));
    const { contours: _, ...summary } = report;
    const owned = image && ownBuffer(image);
    // Not drawn now and large: what drawing it on request needs goes along, packed, so that request need not parse a
    // document of megabytes. A smaller one is drawn from its document: a file of its own per result would cost every
    // task more than parsing costs the few whose image is asked for.
    const polygons = draw || report.total_points < PACK_MIN_POINTS ? null : packResult(report);
    self.postMessage({ id, report: summary, image: owned, document, polygons, startedAt, held: heldBytes(cv) }, [
      ...(owned ? [owned.buffer as ArrayBuffer] : []),
      ...(polygons ? [polygons.buffer as ArrayBuffer] : []),
      document.buffer as ArrayBuffer,
    ]);
  } catch (err) {
    const error = err instanceof ImageError
      ? { image: true, code: err.code, message: err.message }
      : { image: false, message: err instanceof Error ? err.message : String(err) };
    self.postMessage({ id, error, held: await loadPipeline().then(heldBytes, () => 0) });
  }
};

/** Answers a cancelled request: the member stopped by itself, so the pool keeps it. */
function replyCancelled(id: number, cv: OpenCV, bytes: Uint8Array): void {
  releaseBuffer(bytes);
  self.postMessage({ id, error: { image: false, cancelled: true, message: "cancelled" }, held: heldBytes(cv) });
}

/**
 * Bytes this member keeps between requests: its JS heap and the WASM memories, which never shrink (V8 also keeps the
 * heap it grew for a large result long after collecting it). The pool replaces a member that holds too much.
 */
function heldBytes(cv: OpenCV): number {
  return Deno.memoryUsage().heapTotal + (cv as unknown as { HEAP8: Int8Array }).HEAP8.length + prefilterMemoryBytes() +
    pngEncoderMemoryBytes() + jpegEncoderMemoryBytes() + jpegDecoderMemoryBytes() + unpackMemoryBytes() +
    drawMemoryBytes() + traceMemoryBytes();
}

/**
 * Sets this thread's nice value (Linux applies setpriority(2) for "the calling process" to the calling thread only, so
 * the rest of the process keeps its priority); returns why it could not, if it could not.
 */
function lowerPriority(nice: number): string | undefined {
  if (nice === 0) return undefined;
  // Elsewhere (macOS, Windows) the same call would lower the whole process, the API's thread included.
  if (Deno.build.os !== "linux") return `per-thread priority needs Linux (this is ${Deno.build.os})`;
  try {
    setPriority(nice);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** The bytes in an ArrayBuffer of their own (an encoder may return a view into a larger, shared one). */
function ownBuffer(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}
