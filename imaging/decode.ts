import { decodeBmp, readBmpSize } from "./bmp.ts";
import { type ImageFormat, sniffFormat } from "./format.ts";
import { ImageError } from "./image_error.ts";
import { decodeJpeg, readJpegSize } from "./jpeg.ts";
import { decodePng, readPngSize } from "./png.ts";
import type { DecodeInfo, Raster } from "./raster.ts";
import { decodeTiff, readTiffSize } from "./tiff.ts";

/** A decoded image, what the decoder noticed, and the format its bytes were in. */
export interface DecodedImage {
  format: ImageFormat;
  raster: Raster;
  info: DecodeInfo;
}

const DECODERS = { png: decodePng, jpeg: decodeJpeg, tiff: decodeTiff } as const;
const SIZE_READERS = { png: readPngSize, jpeg: readJpegSize, bmp: readBmpSize, tiff: readTiffSize } as const;

/** Reads an image's declared width and height from its header, without decoding pixels. */
export function readImageSize(bytes: Uint8Array): { format: ImageFormat; width: number; height: number } {
  const format = sniffFormat(bytes);
  return { format, ...guard(format, () => SIZE_READERS[format](bytes)) };
}

/** Throws `image_too_large` when the header declares more than `maxPixels` pixels (checked before any decoding). */
export function assertPixelLimit(bytes: Uint8Array, maxPixels: number): void {
  const { format, width, height } = readImageSize(bytes);
  assertPixelCount(format, width, height, maxPixels);
}

/** Throws `image_too_large` when `width` × `height` is over `maxPixels` (the header's size, read by the caller). */
export function assertPixelCount(format: ImageFormat, width: number, height: number, maxPixels: number): void {
  if (width * height > maxPixels) {
    throw new ImageError(
      "image_too_large",
      `the ${format.toUpperCase()} declares ${width}×${height} = ${
        width * height
      } pixels, over the limit of ${maxPixels} (MAX_PIXELS)`,
    );
  }
}

/** Decodes JPEG, PNG, BMP or TIFF bytes (format detected from content) into an 8-bit raster. */
export function decodeImage(bytes: Uint8Array, maxPixels = Infinity): DecodedImage {
  const format = sniffFormat(bytes);
  if (maxPixels !== Infinity) assertPixelLimit(bytes, maxPixels);
  const decoded = guard(
    format,
    () => format === "bmp" ? { raster: decodeBmp(bytes), info: {} } : DECODERS[format](bytes),
  );
  return { format, ...decoded };
}

function guard<T>(format: ImageFormat, work: () => T): T {
  try {
    return work();
  } catch (err) {
    if (err instanceof ImageError) throw err;
    // Anything else thrown on malformed data means "this file is broken", never a crash of the worker.
    const reason = err instanceof Error ? err.message : String(err);
    throw new ImageError("corrupt_image", `could not decode ${format.toUpperCase()}: ${reason}`);
  }
}
