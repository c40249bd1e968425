// PNG encoding in WASM SIMD: a filter chosen per row, deflate with one Huffman code per block and runs coded as
// distance-1 matches (png_encoder/png_encoder.c, built by png_encoder/build.sh; design and figures in
// docs/png-encoder.md). Native OpenCV's libpng + zlib takes about three times as long for 5% larger files.
import { crc32 } from "node:zlib";
import type { Raster } from "./raster.ts";
import { align16, WasmKernel } from "./wasm_kernel.ts";

interface Kernel {
  __heap_base: WebAssembly.Global;
  png_rows_per_call(width: number, channels: number): number;
  png_work_size(width: number, channels: number): number;
  png_out_bound(width: number, channels: number, rows: number): number;
  png_init(work: number, width: number, inChannels: number, outChannels: number): void;
  png_encode_rows(work: number, src: number, rows: number, last: number, out: number): number;
}

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const COLOUR_TYPES = { 1: 0, 3: 2, 4: 6 } as const;
/** The kernel's sizes are 32-bit: a row this long keeps its work area and output bound (a few rows) below 4 GiB. */
const MAX_ROW_BYTES = 2 ** 28;
// The encoder works on strips of rows, so its memory is a few blocks of about 128 KiB unless a single row is larger.
const kernel = new WasmKernel<Kernel>(new URL("./png_encoder/png_encoder.wasm", import.meta.url));

/** Compiles the encoder once per isolate, off the critical path (encodePngWasm otherwise compiles it on first use). */
export function loadPngEncoder(): Promise<void> {
  return kernel.load();
}

/** Bytes of WASM memory the encoder holds now. */
export function pngEncoderMemoryBytes(): number {
  return kernel.heldBytes;
}

/**
 * Encodes an 8-bit raster as PNG: gray (colour type 0), RGB (2) or RGBA (6); with `dropAlpha`, RGBA is written as
 * RGB. One zlib stream, one IDAT chunk per block of rows.
 */
export function encodePngWasm(raster: Raster, dropAlpha: boolean): Uint8Array {
  const { width, height, channels: inC, data } = raster;
  const c = dropAlpha && inC === 4 ? 3 : inC;
  if (!(width >= 1 && height >= 1)) throw new RangeError(`cannot encode a ${width}×${height} image as PNG`);
  if (width * inC + 1 > MAX_ROW_BYTES) throw new RangeError(`rows of ${width} pixels are too wide to encode`);
  if (data.length < width * height * inC) throw new RangeError("the raster holds fewer bytes than its size");

  const sizes = kernel.exports;
  const rowsPerCall = Math.min(sizes.png_rows_per_call(width, c), height);
  const work = align16(kernel.heapBase);
  const src = align16(work + sizes.png_work_size(width, c));
  const srcRow = width * inC;
  const out = align16(src + rowsPerCall * srcRow);
  const end = out + sizes.png_out_bound(width, c, rowsPerCall);
  const k = kernel.reserve(end);
  const memory = kernel.memory;

  k.png_init(work, width, inC, c);
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let y = 0; y < height; y += rowsPerCall) {
    const rows = Math.min(rowsPerCall, height - y);
    new Uint8Array(memory.buffer, src, rows * srcRow).set(data.subarray(y * srcRow, (y + rows) * srcRow));
    const n = k.png_encode_rows(work, src, rows, y + rows === height ? 1 : 0, out);
    parts.push(new Uint8Array(memory.buffer, out, n).slice());
    total += n;
  }

  const png = new Uint8Array(8 + (12 + 13) + 12 * parts.length + total + 12);
  const view = new DataView(png.buffer);
  png.set(PNG_SIGNATURE);
  let at = 8;
  const chunk = (type: string, body: Uint8Array | null, length: number) => {
    view.setUint32(at, length);
    for (let i = 0; i < 4; i++) png[at + 4 + i] = type.charCodeAt(i);
    if (body) png.set(body, at + 8);
    view.setUint32(at + 8 + length, crc32(png.subarray(at + 4, at + 8 + length)) >>> 0);
    at += 12 + length;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = COLOUR_TYPES[c];
  chunk("IHDR", ihdr, 13);
  for (const part of parts) chunk("IDAT", part, part.length);
  chunk("IEND", null, 0);
  return png;
}
