import { decode as decodePngFile } from "fast-png";
import jpeg from "jpeg-js";
import UTIF from "utif2";
import { decodeBmp } from "./bmp.ts";
import { type ImageFormat, sniffFormat } from "./format.ts";
import { ImageError } from "./image_error.ts";
import type { DecodeInfo, Raster } from "./raster.ts";

/** A decoded image, what the decoder noticed, and the format its bytes were in. */
export interface DecodedImage {
  format: ImageFormat;
  raster: Raster;
  info: DecodeInfo;
}

/** Decodes JPEG, PNG, BMP or TIFF bytes (format detected from content) into an 8-bit raster. */
export function decodeImage(bytes: Uint8Array): DecodedImage {
  const format = sniffFormat(bytes);
  try {
    switch (format) {
      case "png":
        return { format, raster: decodePng(bytes), info: {} };
      case "jpeg":
        return { format, raster: decodeJpeg(bytes), info: {} };
      case "bmp":
        return { format, raster: decodeBmp(bytes), info: {} };
      case "tiff":
        return { format, raster: decodeTiff(bytes), info: {} };
    }
  } catch (err) {
    if (err instanceof ImageError) throw err;
    // Library errors on malformed data are plain Errors (or worse): they all mean "this file is broken".
    const reason = err instanceof Error ? err.message : String(err);
    throw new ImageError("corrupt_image", `could not decode ${format.toUpperCase()}: ${reason}`);
  }
}

function decodePng(bytes: Uint8Array): Raster {
  const png = decodePngFile(bytes);
  const { width, height, depth } = png;
  const samples = width * height * png.channels;
  // Sub-byte depths come packed, each row starting on a byte boundary.
  let values = png.data as Uint8Array | Uint16Array;
  if (depth < 8) values = unpackRows(png.data as Uint8Array, width * png.channels, height, depth);
  else if (values.length < samples) throw new ImageError("corrupt_image", "PNG pixel data is truncated");

  if (png.palette) {
    const palette = png.palette;
    const alpha = png.transparency;
    const channels = alpha && alpha.length > 0 ? 4 : 3;
    const out = new Uint8Array(width * height * channels);
    for (let i = 0, o = 0; i < width * height; i++, o += channels) {
      const idx = values[i];
      const entry = palette[idx] ?? [0, 0, 0];
      out[o] = entry[0];
      out[o + 1] = entry[1];
      out[o + 2] = entry[2];
      if (channels === 4) out[o + 3] = alpha && idx < alpha.length ? alpha[idx] : 255;
    }
    return { width, height, channels, data: out };
  }

  const to8 = scaleTo8Bit(depth);
  const inCh = png.channels;
  // Gray+alpha becomes RGBA so that every raster has 1, 3 or 4 channels.
  const channels: 1 | 3 | 4 = inCh === 1 ? 1 : inCh === 2 ? 4 : (inCh as 3 | 4);
  if (depth === 8 && inCh === channels) return { width, height, channels, data: values as Uint8Array };
  const out = new Uint8Array(width * height * channels);
  if (inCh === 2) {
    for (let i = 0, o = 0; i < samples; i += 2, o += 4) {
      const g = to8(values[i]);
      out[o] = out[o + 1] = out[o + 2] = g;
      out[o + 3] = to8(values[i + 1]);
    }
  } else {
    for (let i = 0; i < samples; i++) out[i] = to8(values[i]);
  }
  return { width, height, channels, data: out };
}

function scaleTo8Bit(depth: number): (v: number) => number {
  if (depth === 8) return (v) => v;
  // 16 → 8 keeps the high byte, as libpng's strip_16 (and so OpenCV's imread) does.
  if (depth === 16) return (v) => v >> 8;
  const max = (1 << depth) - 1;
  return (v) => Math.round((v * 255) / max);
}

function unpackRows(packed: Uint8Array, samplesPerRow: number, rows: number, depth: number): Uint8Array {
  const stride = Math.ceil((samplesPerRow * depth) / 8);
  if (packed.length < stride * rows) throw new ImageError("corrupt_image", "PNG pixel data is truncated");
  const out = new Uint8Array(samplesPerRow * rows);
  const perByte = 8 / depth;
  const mask = (1 << depth) - 1;
  for (let y = 0; y < rows; y++) {
    const row = y * stride;
    for (let x = 0; x < samplesPerRow; x++) {
      const byte = packed[row + Math.floor(x / perByte)];
      const shift = 8 - depth * ((x % perByte) + 1);
      out[y * samplesPerRow + x] = (byte >> shift) & mask;
    }
  }
  return out;
}

function decodeJpeg(bytes: Uint8Array): Raster {
  const img = jpeg.decode(bytes, {
    useTArray: true,
    formatAsRGBA: false,
    // jpeg-js refuses larger images by default; the size policy belongs to the caller, not here.
    maxResolutionInMP: 1000,
    maxMemoryUsageInMB: 4096,
  });
  return { width: img.width, height: img.height, channels: 3, data: img.data as Uint8Array };
}

function decodeTiff(bytes: Uint8Array): Raster {
  // utif2 reads from offset 0 of whatever buffer it is given.
  const buffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes.buffer as ArrayBuffer
    : bytes.slice().buffer;
  const ifds = UTIF.decode(buffer);
  if (ifds.length === 0) throw new ImageError("corrupt_image", "TIFF has no image");
  const ifd = ifds[0];
  UTIF.decodeImage(buffer, ifd);
  const width = ifd.width, height = ifd.height;
  if (!width || !height) throw new ImageError("corrupt_image", "TIFF has no image size");
  const rgba = UTIF.toRGBA8(ifd);
  if (rgba.length < width * height * 4) throw new ImageError("corrupt_image", "TIFF pixel data is truncated");
  // ExtraSamples (tag 338) is what says a fourth sample is alpha; without it the image is opaque.
  const hasAlpha = Array.isArray(ifd["t338"]) && (ifd["t338"] as number[]).length > 0;
  if (hasAlpha) return { width, height, channels: 4, data: rgba };
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, o = 0; o < rgb.length; i += 4, o += 3) {
    rgb[o] = rgba[i];
    rgb[o + 1] = rgba[i + 1];
    rgb[o + 2] = rgba[i + 2];
  }
  return { width, height, channels: 3, data: rgb };
}
