import { encode as encodePngFile } from "fast-png";
import jpeg from "jpeg-js";
import type { Raster } from "./raster.ts";

/** Output formats for annotated images. */
export type OutputFormat = "png" | "jpeg";

/** Encodes an 8-bit raster as PNG. */
export function encodePng(raster: Raster): Uint8Array {
  return encodePngFile({
    width: raster.width,
    height: raster.height,
    data: raster.data,
    channels: raster.channels,
    depth: 8,
  });
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
  return jpeg.encode({ width, height, data: rgba }, quality).data;
}

/** Encodes in the requested format. */
export function encodeImage(raster: Raster, format: OutputFormat): Uint8Array {
  return format === "jpeg" ? encodeJpeg(raster) : encodePng(raster);
}
