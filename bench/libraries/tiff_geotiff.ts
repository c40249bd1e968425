// decodeTiff on geotiff, for bench/libraries/matrix.ts. geotiff decodes only asynchronously while the tests (and the
// pool member) call decodeTiff synchronously, so the matrix runs twice (geotiff_matrix.ts): GEOTIFF_MODE=record keeps
// every input the tests decode (and answers with ours), geotiff_decode.ts decodes them all, and GEOTIFF_MODE=replay
// answers each input with geotiff's stored result.
import { createHash } from "node:crypto";
import { ImageError } from "../../imaging/image_error.ts";
import type { Decoded } from "../../imaging/raster.ts";
import { decodeTiff as ours } from "../../imaging/tiff.ts";
export { readTiffSize } from "../../imaging/tiff.ts";

const CACHE = Deno.env.get("GEOTIFF_CACHE") ?? "/tmp/geotiff-matrix";
const MODE = Deno.env.get("GEOTIFF_MODE") ?? "record";

/** What geotiff_decode.ts stores for one input (its pixels in `${sha}.raw`). */
export interface Stored {
  error?: string;
  width?: number;
  height?: number;
  channels?: 1 | 3 | 4;
  pages?: number;
}

export function decodeTiff(bytes: Uint8Array): Decoded {
  const sha = createHash("sha256").update(bytes).digest("hex");
  if (MODE === "record") {
    try {
      Deno.writeFileSync(`${CACHE}/${sha}.tif`, bytes, { createNew: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
    return ours(bytes);
  }
  const stored: Stored = JSON.parse(Deno.readTextFileSync(`${CACHE}/${sha}.json`));
  if (stored.error !== undefined) throw new ImageError("corrupt_image", `geotiff: ${stored.error}`);
  const data = Deno.readFileSync(`${CACHE}/${sha}.raw`);
  return {
    raster: { width: stored.width!, height: stored.height!, channels: stored.channels!, data },
    info: stored.pages! > 1 ? { pages: stored.pages } : {},
  };
}
