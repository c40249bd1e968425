import { encodeJpegWasm } from "./jpeg_encode.ts";
import { encodePngWasm } from "./png_encode.ts";
import type { AnalysisOptions } from "./options.ts";
import type { Raster } from "./raster.ts";

/** Output formats for annotated images. */
export type OutputFormat = AnalysisOptions["output_format"];

/**
 * Encodes an 8-bit raster as PNG: gray, RGB or RGBA, or with `dropAlpha` RGBA as RGB (annotated images are drawn on
 * RGBA input in place, alpha ignored). The encoder is WASM SIMD (png_encode.ts): a filter chosen per row and one
 * Huffman code per block of rows, about three times as fast as native OpenCV's imwrite (libpng's Sub filter, zlib
 * level 1, RLE) with files 5% smaller (docs/png-encoder.md).
 */
export function encodePng(raster: Raster, dropAlpha = false): Uint8Array {
  return encodePngWasm(raster, dropAlpha);
}

/**
 * Encodes an 8-bit raster as a baseline JPEG the way native OpenCV's imwrite does by default: quality 95, 4:2:0 chroma
 * (gray stays one component, RGBA is written as RGB). libjpeg-turbo in WASM (jpeg_encode.ts): byte-identical to
 * cv2.imencode's output.
 */
export function encodeJpeg(raster: Raster, quality = 95): Uint8Array {
  return encodeJpegWasm(raster, quality);
}

/** Encodes an annotated image (RGB, or RGBA whose alpha is ignored) as an RGB image in the requested format. */
export function encodeImage(raster: Raster, format: OutputFormat): Uint8Array {
  return format === "jpeg" ? encodeJpeg(raster) : encodePng(raster, true);
}
