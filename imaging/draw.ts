// Contour outlines drawn in WASM (draw/draw.c, built by draw/build.sh), pixel for pixel what OpenCV.js's drawContours
// draws with LINE_8 outlines, in a fraction of its time: OpenCV.js is built without SIMD and spends most of it on
// generic per-segment code (docs/performance.md). Filled contours stay with OpenCV.js.
import type { Raster } from "./raster.ts";
import { align16, WasmKernel } from "./wasm_kernel.ts";

interface Kernel {
  __heap_base: WebAssembly.Global;
  gray_to_rgb(src: number, dst: number, n: number): void;
  draw_polylines(
    img: number,
    w: number,
    h: number,
    ch: number,
    counts: number,
    polygons: number,
    xy: number,
    thickness: number,
    r: number,
    g: number,
    b: number,
  ): void;
}

const kernel = new WasmKernel<Kernel>(new URL("./draw/draw.wasm", import.meta.url));

/** Loads the WASM kernel once per isolate (its first use would otherwise compile it, synchronously). */
export function loadDraw(): Promise<void> {
  return kernel.load();
}

/** Bytes of WASM memory the kernel holds now (for the bench's memory figures). */
export function drawMemoryBytes(): number {
  return kernel.heldBytes;
}

/**
 * Draws closed polygons (`counts[i]` vertices each, x and y interleaved in `xy`) `thickness` pixels wide in `rgb` on a
 * copy of the raster (gray input becomes RGB, as cv.cvtColor(GRAY2RGB) makes it), and lends the result to `render`:
 * a view into the kernel's memory, valid only during that call. The raster itself is left as it was.
 */
export function drawOutlines<T>(
  raster: Raster,
  counts: Int32Array,
  xy: Int32Array,
  thickness: number,
  rgb: readonly [number, number, number],
  render: (annotated: Raster) => T,
): T {
  const { width, height, channels } = raster;
  const n = width * height;
  const outChannels = channels === 4 ? 4 : 3;
  const image = align16(kernel.heapBase);
  const gray = align16(image + n * outChannels);
  const countsAt = align16(channels === 1 ? gray + n : gray);
  const xyAt = align16(countsAt + counts.length * 4);
  const k = kernel.reserve(xyAt + xy.length * 4);
  const memory = kernel.memory.buffer;
  if (channels === 1) {
    new Uint8Array(memory, gray, n).set(raster.data.subarray(0, n));
    k.gray_to_rgb(gray, image, n);
  } else {
    new Uint8Array(memory, image, n * channels).set(raster.data.subarray(0, n * channels));
  }
  new Int32Array(memory, countsAt, counts.length).set(counts);
  new Int32Array(memory, xyAt, xy.length).set(xy);
  k.draw_polylines(image, width, height, outChannels, countsAt, counts.length, xyAt, thickness, rgb[0], rgb[1], rgb[2]);
  return render({ width, height, channels: outChannels, data: new Uint8Array(memory, image, n * outChannels) });
}
