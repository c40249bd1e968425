/** Decoded pixels: 8 bits per sample, rows top-down, samples interleaved (gray, RGB or RGBA). */
export interface Raster {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array;
}
