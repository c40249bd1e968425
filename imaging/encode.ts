import { encode } from "fast-png";
import type { Raster } from "./raster.ts";

/** Encodes an 8-bit raster as PNG. */
export function encodePng(raster: Raster): Uint8Array {
  return encode({ width: raster.width, height: raster.height, data: raster.data, channels: raster.channels, depth: 8 });
}
