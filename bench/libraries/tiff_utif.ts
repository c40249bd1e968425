// decodeTiff on utif (UTIF.js), for bench/libraries/matrix.ts: the library's pixels in our Raster, its errors as
// ImageError, the page count from its directory list.
// deno-lint-ignore no-import-prefix -- a library tried, not a dependency (run with its own lock file)
import UTIF from "npm:utif@3.1.0";
import { ImageError } from "../../imaging/image_error.ts";
import type { Decoded } from "../../imaging/raster.ts";
import { fromRgba } from "./raster_from.ts";
export { readTiffSize } from "../../imaging/tiff.ts";

export function decodeTiff(bytes: Uint8Array): Decoded {
  try {
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
    const ifds = UTIF.decode(buffer);
    UTIF.decodeImage(buffer, ifds[0], ifds);
    const rgba = UTIF.toRGBA8(ifds[0]);
    // PhotometricInterpretation 0/1 with one sample: gray, returned as one channel (as ours does).
    const photometric = ifds[0].t262?.[0] ?? 1;
    const gray = photometric <= 1 && (ifds[0].t277?.[0] ?? 1) === 1;
    const raster = fromRgba(ifds[0].width, ifds[0].height, rgba, gray);
    return { raster, info: ifds.length > 1 ? { pages: ifds.length } : {} };
  } catch (err) {
    if (err instanceof ImageError) throw err;
    throw new ImageError("corrupt_image", `utif: ${err instanceof Error ? err.message : err}`);
  }
}
