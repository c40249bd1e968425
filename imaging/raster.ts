import { z } from "@hono/zod-openapi";

/** Decoded pixels: 8 bits per sample, rows top-down, samples interleaved (gray, RGB or RGBA). */
export interface Raster {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

/** What a decoder noticed besides the pixels (surfaced in results so users know what was done). */
export const DecodeInfoSchema = z.object({
  /** Pages/frames in the file; only the first is analysed. */
  pages: z.number().int().optional(),
  /** EXIF orientation (1–8) that was applied to the pixels. */
  orientation: z.number().int().optional(),
  /** Human-readable remarks, e.g. "CMYK converted to RGB", "multi-page TIFF: first of 3 pages analysed". */
  notes: z.array(z.string()).optional(),
});

/** What a decoder noticed besides the pixels. */
export type DecodeInfo = z.infer<typeof DecodeInfoSchema>;

/** A decoder's output. */
export interface Decoded {
  raster: Raster;
  info: DecodeInfo;
}
