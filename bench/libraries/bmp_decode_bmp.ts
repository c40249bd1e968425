// decodeBmp on decode-bmp, for bench/libraries/matrix.ts: the library's pixels in our Raster, its errors as ImageError.
// deno-lint-ignore no-import-prefix -- a library tried, not a dependency (run with its own lock file)
import decode from "npm:decode-bmp@0.2.1";
import { ImageError } from "../../imaging/image_error.ts";
import type { Raster } from "../../imaging/raster.ts";
import { fromRgba } from "./raster_from.ts";
export { readBmpSize } from "../../imaging/bmp.ts";

export function decodeBmp(bytes: Uint8Array): Raster {
  try {
    const img = decode(bytes);
    return fromRgba(img.width, img.height, new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.length));
  } catch (err) {
    if (err instanceof ImageError) throw err;
    throw new ImageError("corrupt_image", `decode-bmp: ${err instanceof Error ? err.message : err}`);
  }
}
