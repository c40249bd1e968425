import jpeg from "jpeg-js";
import { constants, crc32, deflateSync } from "node:zlib";
import type { Raster } from "./raster.ts";

/** Output formats for annotated images. */
export type OutputFormat = "png" | "jpeg";

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const COLOUR_TYPES = { 1: 0, 3: 2, 4: 6 } as const;
const SUB_FILTER = 1;

/**
 * Encodes an 8-bit raster as PNG the way native OpenCV's imwrite does by default: zlib level 1 with the RLE strategy.
 * With `dropAlpha`, RGBA is written as RGB (annotated images are drawn on RGBA input in place, alpha ignored).
 * The Sub filter on every row keeps the output about the size of OpenCV's (libpng's adaptive filtering) at a fraction of
 * the cost; node:zlib is Deno's built-in native zlib, 4–5× faster than fast-png's JavaScript deflate at level 6 on the
 * samples (bench: README "Codecs").
 */
export function encodePng(raster: Raster, dropAlpha = false): Uint8Array {
  const { width, height, channels: inC, data } = raster;
  const c = dropAlpha && inC === 4 ? 3 : inC;
  const stride = width * c;
  const filtered = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (stride + 1) + 1;
    filtered[o - 1] = SUB_FILTER;
    if (c === inC) {
      const s = y * stride;
      for (let i = 0; i < c; i++) filtered[o + i] = data[s + i];
      for (let i = c; i < stride; i++) filtered[o + i] = data[s + i] - data[s + i - c];
    } else {
      // RGBA in, RGB out: each sample minus the same sample of the pixel before, skipping alpha.
      const s = y * width * 4;
      filtered[o] = data[s];
      filtered[o + 1] = data[s + 1];
      filtered[o + 2] = data[s + 2];
      for (let x = 1, i = s + 4, j = o + 3; x < width; x++, i += 4, j += 3) {
        filtered[j] = data[i] - data[i - 4];
        filtered[j + 1] = data[i + 1] - data[i - 3];
        filtered[j + 2] = data[i + 2] - data[i - 2];
      }
    }
  }
  const idat = deflateSync(filtered, { level: 1, strategy: constants.Z_RLE });
  // Written straight into the file's buffer: the compressed data is copied once, not once per chunk and again to join.
  const out = new Uint8Array(8 + (12 + 13) + (12 + idat.length) + 12);
  const view = new DataView(out.buffer);
  out.set(PNG_SIGNATURE);
  let at = 8;
  const chunk = (type: string, fill: (dataAt: number) => number) => {
    for (let i = 0; i < 4; i++) out[at + 4 + i] = type.charCodeAt(i);
    const length = fill(at + 8);
    view.setUint32(at, length);
    view.setUint32(at + 8 + length, crc32(out.subarray(at + 4, at + 8 + length)) >>> 0);
    at += 12 + length;
  };
  chunk("IHDR", (p) => {
    view.setUint32(p, width);
    view.setUint32(p + 4, height);
    out[p + 8] = 8;
    out[p + 9] = COLOUR_TYPES[c];
    return 13;
  });
  chunk("IDAT", (p) => {
    out.set(idat, p);
    return idat.length;
  });
  chunk("IEND", () => 0);
  return out;
}

/** Encodes an 8-bit raster as a quality-90 baseline JPEG. */
export function encodeJpeg(raster: Raster, quality = 90): Uint8Array {
  // jpeg-js takes RGBA only.
  const { width, height, channels, data } = raster;
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0, o = 0; o < rgba.length; i += channels, o += 4) {
    rgba[o] = data[i];
    rgba[o + 1] = data[channels === 1 ? i : i + 1];
    rgba[o + 2] = data[channels === 1 ? i : i + 2];
    rgba[o + 3] = 255;
  }
  const { data: out } = jpeg.encode({ width, height, data: rgba }, quality);
  // A plain Uint8Array, not jpeg-js's Node Buffer, like every other encoder here.
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Encodes an annotated image (RGB, or RGBA whose alpha is ignored) as an RGB image in the requested format. */
export function encodeImage(raster: Raster, format: OutputFormat): Uint8Array {
  return format === "jpeg" ? encodeJpeg(raster) : encodePng(raster, true);
}
