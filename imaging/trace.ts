// cv.findContours for binary images in WASM SIMD (trace/trace.c, built by trace/build.sh), a port of OpenCV 4.12's
// own code giving the same contours, vertices, order and hierarchy as OpenCV.js. OpenCV.js on npm is built without
// SIMD, and handing its contours out costs a Mat per contour (about 0.3 ms an image on the samples); this returns them
// as three flat arrays.
import { align16, WasmKernel } from "./wasm_kernel.ts";

interface Kernel {
  __heap_base: WebAssembly.Global;
  trace(src: number, w: number, h: number, img: number, records: number, mode: number, method: number): number;
  trace_result(): number;
}

/** How contours are retrieved: OpenCV's RETR_EXTERNAL, RETR_LIST, RETR_CCOMP, RETR_TREE. */
export type Retrieval = "external" | "list" | "ccomp" | "tree";
/** How contours are approximated: OpenCV's CHAIN_APPROX_NONE, _SIMPLE, _TC89_L1, _TC89_KCOS. */
export type Approximation = "none" | "simple" | "tc89_l1" | "tc89_kcos";

/** Contours as flat arrays: contour i has counts[i] vertices, in order in xy after those of contours 0..i-1. */
export interface TracedContours {
  /** Vertices per contour. */
  counts: Int32Array;
  /** Every contour's vertices, x and y interleaved. */
  xy: Int32Array;
  /** OpenCV's hierarchy, four per contour: next, previous, first child, parent (-1 for none). */
  hierarchy: Int32Array;
}

// OpenCV's values of cv.RETR_* and cv.CHAIN_APPROX_*, which trace.c takes.
const MODES: Record<Retrieval, number> = { external: 0, list: 1, ccomp: 2, tree: 3 };
const METHODS: Partial<Record<Approximation, number>> = { none: 1, simple: 2 };

const kernel = new WasmKernel<Kernel>(new URL("./trace/trace.wasm", import.meta.url));

/** Loads the WASM kernel once per isolate (otherwise the first traceContours compiles it, synchronously). */
export function loadTrace(): Promise<void> {
  return kernel.load();
}

/** Bytes of WASM memory the kernel holds now (for the pool's memory accounting and the bench). */
export function traceMemoryBytes(): number {
  return kernel.heldBytes;
}

/** Whether traceContours does this combination (every retrieval mode, with no or simple approximation). */
export function traceHandles(retrieval: Retrieval, approximation: Approximation): boolean {
  return retrieval in MODES && METHODS[approximation] !== undefined;
}

/**
 * What cv.findContours(binary, contours, hierarchy, RETR_*, CHAIN_APPROX_*) finds in a width × height image (one byte
 * per pixel, row-major, nonzero is foreground), the same to the last vertex. `binary` is left as it was; the returned
 * arrays are copies, the caller's to keep.
 *
 * @example
 * ```ts
 * const { counts, xy, hierarchy } = traceContours(binary, 640, 480, "tree", "simple");
 * // contour 0: xy[0], xy[1] … xy[2 * counts[0] - 1]; its parent: hierarchy[3]
 * ```
 */
export function traceContours(
  binary: Uint8Array,
  width: number,
  height: number,
  retrieval: Retrieval,
  approximation: Approximation,
): TracedContours {
  if (!traceHandles(retrieval, approximation)) {
    throw new Error(`traceContours does not do ${retrieval} with ${approximation} approximation`);
  }
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`bad image size ${width}×${height}`);
  }
  const n = width * height;
  if (binary.length < n) throw new RangeError(`${binary.length} bytes for a ${width}×${height} image`);
  if (n === 0) return { counts: new Int32Array(0), xy: new Int32Array(0), hierarchy: new Int32Array(0) };

  const src = align16(kernel.heapBase);
  const img = align16(src + n);
  // The padded image, plus the 64 bytes the scan's vector loads may read past its end (SLACK in trace.c).
  const records = align16(img + (width + 2) * (height + 2) + 64);
  // A first guess of what the records and the results take (the samples need up to a third of a byte a pixel); the
  // kernel grows the memory itself when an image has more contours or vertices.
  const k = kernel.reserve(records + Math.ceil(n / 2) + 65536);
  new Uint8Array(kernel.memory.buffer, src, n).set(binary.subarray(0, n));
  let count: number;
  try {
    count = k.trace(src, width, height, img, records, MODES[retrieval], METHODS[approximation]!);
  } catch (err) {
    // The kernel traps only when memory cannot grow to what the contours need.
    throw new RangeError(`not enough memory to trace the contours of a ${width}×${height} image`, { cause: err });
  }
  // Taken after the call: the kernel may have grown the memory, which replaces its buffer.
  const buffer = kernel.memory.buffer;
  const [counts, hierarchy, xy, vertices] = new Int32Array(buffer, k.trace_result(), 4);
  return {
    counts: new Int32Array(buffer, counts, count).slice(),
    xy: new Int32Array(buffer, xy, 2 * vertices).slice(),
    hierarchy: new Int32Array(buffer, hierarchy, 4 * count).slice(),
  };
}
