// The steps before findContours (gray conversion, Gaussian blur, Otsu's threshold) in WASM SIMD, bit-exact with
// OpenCV. OpenCV.js on npm is built without SIMD, which made these steps 3–8× slower than native
// (docs/performance.md); the kernel is prefilter/prefilter.c, built by prefilter/build.sh.
import type { Raster } from "./raster.ts";
import { align16, WasmKernel } from "./wasm_kernel.ts";

interface Kernel {
  __heap_base: WebAssembly.Global;
  gray_from_rgba(src: number, dst: number, n: number): void;
  gray_from_rgb(src: number, dst: number, n: number): void;
  blur(src: number, dst: number, w: number, h: number, k: number, ksize: number, shift: number, rows: number): void;
  histogram(src: number, n: number, hist: number): void;
  threshold(src: number, dst: number, n: number, t: number, invert: number): void;
}

/**
 * OpenCV's Gaussian kernels for σ = 0 and sizes up to 7 (its small_gaussian_tab) in the 8-bit fixed point of its
 * bit-exact 8-bit path (taps summing to 256), divided by their common power of two g, and the shift that then gives
 * the same result (16 − 2·log2 g; see blur in prefilter.c). Larger sizes derive σ from the size: left to OpenCV.js.
 */
const KERNELS: Record<number, { taps: number[]; shift: number }> = {
  3: { taps: [1, 2, 1], shift: 4 }, // [64, 128, 64] / 64
  5: { taps: [1, 4, 6, 4, 1], shift: 8 }, // [16, 64, 96, 64, 16] / 16
  7: { taps: [2, 7, 14, 18, 14, 7, 2], shift: 12 }, // [8, 28, 56, 72, 56, 28, 8] / 4
};

const kernel = new WasmKernel<Kernel>(new URL("./prefilter/prefilter.wasm", import.meta.url));

/** Loads the WASM kernel once per isolate; the functions below work once it resolves. */
export function loadPrefilter(): Promise<void> {
  return kernel.load();
}

/** Bytes of WASM memory the prefilter holds now (for the bench's memory figures). */
export function prefilterMemoryBytes(): number {
  return kernel.heldBytes;
}

/** Whether the WASM kernel is loaded and computes this blur size (0 = none); otherwise OpenCV.js does the work. */
export function prefilterHandles(blur: number): boolean {
  return kernel.loaded && (blur <= 1 || blur in KERNELS);
}

/** Byte offsets of one image's buffers in the kernel's memory. */
interface Layout {
  src: number;
  gray: number;
  smoothed: number;
  rows: number;
  taps: number;
  hist: number;
  binary: number;
}

/** The buffers of the image smoothGray last took in (otsuBinary works on them). */
let layout: Layout | null = null;

/**
 * The gray, blurred image of `raster` as cv.cvtColor(RGB[A]2GRAY) then cv.GaussianBlur(size × size, σ 0,
 * BORDER_DEFAULT) make it, bit for bit. The result is a view into the kernel's memory, valid until the next call.
 */
export function smoothGray(raster: Raster, blur: number): Uint8Array {
  if (!prefilterHandles(blur)) throw new Error(`the prefilter does not handle blur ${blur}`);
  const { width: w, height: h, channels } = raster;
  const n = w * h;
  const { taps, shift } = KERNELS[blur] ?? { taps: [], shift: 0 };
  const l = reserve(n, channels, Math.max(taps.length, 1) * w);
  // After reserve, which may have replaced the instance.
  const k = kernel.exports;
  const memory = kernel.memory;
  new Uint8Array(memory.buffer, l.src, n * channels).set(raster.data.subarray(0, n * channels));
  let gray = l.src;
  if (channels === 4) k.gray_from_rgba(l.src, gray = l.gray, n);
  else if (channels === 3) k.gray_from_rgb(l.src, gray = l.gray, n);
  lastGray = { at: gray, n };
  let smoothed = gray;
  if (taps.length > 0) {
    new Uint16Array(memory.buffer, l.taps, taps.length).set(taps);
    k.blur(gray, smoothed = l.smoothed, w, h, l.taps, taps.length, shift, l.rows);
  }
  return new Uint8Array(memory.buffer, smoothed, n);
}

let lastGray = { at: 0, n: 0 };

/**
 * The unblurred gray image of the raster smoothGray last took in (what cv.cvtColor makes of it), for intensity
 * measurements: a view into the kernel's memory, valid until the next call.
 */
export function unblurredGray(): Uint8Array {
  return new Uint8Array(kernel.memory.buffer, lastGray.at, lastGray.n);
}

/**
 * Otsu's threshold of `smoothed` (a view smoothGray returned) and the binary image cv.threshold(THRESH_OTSU | BINARY
 * or BINARY_INV) makes with it; the image is a view into the kernel's memory, valid until the next call.
 */
export function otsuBinary(smoothed: Uint8Array, invert: boolean): { threshold: number; binary: Uint8Array } {
  const k = kernel.exports;
  const memory = kernel.memory;
  const l = layout!;
  const n = smoothed.length;
  new Uint32Array(memory.buffer, l.hist, 1024).fill(0);
  k.histogram(smoothed.byteOffset, n, l.hist);
  const threshold = otsuThreshold(new Uint32Array(memory.buffer, l.hist, 256), n);
  k.threshold(smoothed.byteOffset, l.binary, n, threshold, invert ? 1 : 0);
  return { threshold, binary: new Uint8Array(memory.buffer, l.binary, n) };
}

/** OpenCV's getThreshVal_Otsu_8u on a 256-bin histogram of `n` pixels, step for step in doubles. */
export function otsuThreshold(hist: Uint32Array, n: number): number {
  const scale = 1 / n;
  let mu = 0;
  for (let i = 0; i < 256; i++) mu += i * hist[i];
  mu *= scale;
  let mu1 = 0, q1 = 0, maxSigma = 0, maxVal = 0;
  const EPS = 1.1920928955078125e-7; // FLT_EPSILON
  for (let i = 0; i < 256; i++) {
    const p = hist[i] * scale;
    mu1 *= q1;
    q1 += p;
    const q2 = 1 - q1;
    if (Math.min(q1, q2) < EPS || Math.max(q1, q2) > 1 - EPS) continue;
    mu1 = (mu1 + i * p) / q1;
    const mu2 = (mu - q1 * mu1) / q2;
    const sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
    if (sigma > maxSigma) {
      maxSigma = sigma;
      maxVal = i;
    }
  }
  return maxVal;
}

/** Lays out one image's buffers after the kernel's stack, with the memory made to hold them (WasmKernel.reserve). */
function reserve(n: number, channels: number, rowSamples: number): Layout {
  const align = (v: number) => align16(v) + 16;
  const src = align(kernel.heapBase);
  const gray = align(src + n * channels);
  const smoothed = align(gray + n);
  const rows = align(smoothed + n);
  const taps = align(rows + rowSamples * 2);
  const hist = align(taps + 64);
  const binary = align(hist + 4096);
  kernel.reserve(binary + n);
  return (layout = { src, gray, smoothed, rows, taps, hist, binary });
}
