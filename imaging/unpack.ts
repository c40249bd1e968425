// PNG unfiltering and TIFF LZW in WASM (unpack/unpack.c, built by unpack/build.sh): the two per-byte loops that made
// up a third of a PNG's and two thirds of an LZW TIFF's decoding time in JavaScript (docs/decoders.md). Instantiated
// on first use, synchronously (the module is a few kilobytes), so decoding stays a plain function call everywhere.
import { align16, WasmKernel } from "./wasm_kernel.ts";

interface Kernel {
  __heap_base: WebAssembly.Global;
  png_unfilter(buf: number, rows: number, stride: number, bpp: number): number;
  lzw_decode(src: number, srcLen: number, out: number, outLen: number): number;
  lzw_bad_code(): number;
  lzw_bad_next(): number;
}

const kernel = new WasmKernel<Kernel>(new URL("./unpack/unpack.wasm", import.meta.url));

/** Bytes of WASM memory held now (for the pool's memory accounting and the bench). */
export function unpackMemoryBytes(): number {
  return kernel.heldBytes;
}

/** The kernel with room for `bytes` bytes from the returned offset on. */
function reserve(bytes: number): { k: Kernel; at: number } {
  const at = align16(kernel.heapBase);
  return { k: kernel.reserve(at + bytes), at };
}

/**
 * Reverses PNG's row filters of `rows` rows starting at `at` in `buf` (each a filter byte then `stride` bytes, `bpp`
 * the filter step) and compacts them, so row y ends up at at + y * stride. Returns null, or the first row with an
 * invalid filter type and that type (for the caller to report; `buf` is then left as it was).
 */
export function pngUnfilter(
  buf: Uint8Array,
  at: number,
  rows: number,
  stride: number,
  bpp: number,
): { row: number; filter: number } | null {
  const size = rows * (stride + 1);
  const { k, at: ptr } = reserve(size);
  new Uint8Array(kernel.memory.buffer, ptr, size).set(buf.subarray(at, at + size));
  const row = k.png_unfilter(ptr, rows, stride, bpp);
  // The bad row's filter byte is still in place: the rows before it were written below it.
  if (row >= 0) return { row, filter: new Uint8Array(kernel.memory.buffer)[ptr + row * (stride + 1)] };
  buf.set(new Uint8Array(kernel.memory.buffer, ptr, rows * stride), at);
  return null;
}

/** Bytes the LZW kernel may read past its input and write past its output (LZW_SRC_PAD, LZW_OUT_PAD in unpack.c). */
const LZW_SRC_PAD = 8;
const LZW_OUT_PAD = 16;

/**
 * Decodes TIFF LZW data (MSB-first codes, "early change" widths) into `out`, at most its length; returns the bytes
 * written, or an invalid code and the next free one.
 */
export function lzwDecode(src: Uint8Array, out: Uint8Array): number | { code: number; next: number } {
  const outOffset = align16(src.length + LZW_SRC_PAD);
  const { k, at } = reserve(outOffset + out.length + LZW_OUT_PAD);
  const memory = new Uint8Array(kernel.memory.buffer);
  memory.set(src, at);
  memory.fill(0, at + src.length, at + src.length + LZW_SRC_PAD);
  const produced = k.lzw_decode(at, src.length, at + outOffset, out.length);
  if (produced < 0) return { code: k.lzw_bad_code(), next: k.lzw_bad_next() };
  out.set(new Uint8Array(kernel.memory.buffer, at + outOffset, produced));
  return produced;
}
