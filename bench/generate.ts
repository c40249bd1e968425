import { encodeJpeg, encodePng } from "../imaging/encode.ts";
import { decodeImage } from "../imaging/decode.ts";
import type { Raster } from "../imaging/raster.ts";
import { fileExists } from "../storage/files.ts";

/** Size of the generated large images (12 megapixels). */
const LARGE = { width: 4000, height: 3000 };

/** Bilinear resize of an 8-bit raster: a photograph blown up stays photograph-like (smooth, real structure). */
function resize(src: Raster, width: number, height: number): Raster {
  const c = src.channels;
  const out = new Uint8Array(width * height * c);
  const sx = (src.width - 1) / (width - 1);
  const sy = (src.height - 1) / (height - 1);
  for (let y = 0; y < height; y++) {
    const fy = y * sy;
    const y0 = Math.floor(fy);
    const y1 = Math.min(src.height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = x * sx;
      const x0 = Math.floor(fx);
      const x1 = Math.min(src.width - 1, x0 + 1);
      const wx = fx - x0;
      for (let k = 0; k < c; k++) {
        const a = src.data[(y0 * src.width + x0) * c + k];
        const b = src.data[(y0 * src.width + x1) * c + k];
        const d = src.data[(y1 * src.width + x0) * c + k];
        const e = src.data[(y1 * src.width + x1) * c + k];
        out[(y * width + x) * c + k] = Math.round((a * (1 - wx) + b * wx) * (1 - wy) + (d * (1 - wx) + e * wx) * wy);
      }
    }
  }
  return { width, height, channels: c, data: out };
}

/**
 * Makes the ~12-megapixel JPEG (quality 90) and PNG the kernel bench runs on, from the Hubble sample, once per
 * folder (kept between runs: generating takes seconds). Returns their paths.
 */
export async function generateLargeImages(dir: string, source: string): Promise<{ jpeg: string; png: string }> {
  const jpeg = `${dir}/large_12mp.jpg`;
  const png = `${dir}/large_12mp.png`;
  if (await fileExists(jpeg) && await fileExists(png)) return { jpeg, png };
  await Deno.mkdir(dir, { recursive: true });
  const { raster } = decodeImage(await Deno.readFile(source));
  const big = resize(raster, LARGE.width, LARGE.height);
  await Deno.writeFile(jpeg, encodeJpeg(big, 90));
  await Deno.writeFile(png, encodePng(big));
  return { jpeg, png };
}
