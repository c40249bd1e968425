// decodeBmp on bmp-ts, for bench/libraries/matrix.ts: the library's pixels in our Raster, its errors as ImageError.
// deno-lint-ignore no-import-prefix -- a library tried, not a dependency (run with its own lock file)
import { decode } from "npm:bmp-ts@1.0.9";
import { Buffer } from "node:buffer";
import { ImageError } from "../../imaging/image_error.ts";
import type { Raster } from "../../imaging/raster.ts";
import { fromRgba } from "./raster_from.ts";
export { readBmpSize } from "../../imaging/bmp.ts";

export function decodeBmp(bytes: Uint8Array): Raster {
  try {
    // toRGBA gives R, G, B, A; without it bmp-ts writes A, B, G, R.
    const img = decode(Buffer.from(bytes), { toRGBA: true });
    return fromRgba(img.width, img.height, img.data);
  } catch (err) {
    if (err instanceof ImageError) throw err;
    throw new ImageError("corrupt_image", `bmp-ts: ${err instanceof Error ? err.message : err}`);
  }
}
