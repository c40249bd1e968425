import type { Raster } from "../../imaging/raster.ts";

/**
 * A library's RGBA as the Raster our decoders return: RGB unless the alpha varies (ours keep alpha only when the file
 * carries it). An alpha that is all 255, or all 0 (bmp-ts's for files without alpha), counts as none: this favours
 * the library.
 */
export function fromRgba(width: number, height: number, rgba: Uint8Array, gray = false): Raster {
  const n = width * height;
  if (rgba.length < n * 4) throw new RangeError(`library returned ${rgba.length} bytes for ${width}×${height}`);
  let flat = true;
  for (let i = 7; i < n * 4; i += 4) {
    if (rgba[i] !== rgba[3]) {
      flat = false;
      break;
    }
  }
  if (!flat || (rgba[3] !== 0 && rgba[3] !== 255)) return { width, height, channels: 4, data: rgba.subarray(0, n * 4) };
  if (gray) {
    // A gray file (by its header) comes back as one channel from ours.
    const data = new Uint8Array(n);
    for (let i = 0; i < n; i++) data[i] = rgba[i * 4];
    return { width, height, channels: 1, data };
  }
  const data = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n * 4; i += 4, j += 3) {
    data[j] = rgba[i];
    data[j + 1] = rgba[i + 1];
    data[j + 2] = rgba[i + 2];
  }
  return { width, height, channels: 3, data };
}
