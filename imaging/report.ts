// What one image's analysis produced: the pool returns it, the result document stores it (with the task's id and
// filename), and the API documents the document from these same definitions (routes/images.ts).
import { z } from "@hono/zod-openapi";
import { ImageFormatSchema } from "./format.ts";
import { MeasuredContourSchema } from "./measurements.ts";
import { AnalysisOptionsSchema } from "./options.ts";
import { DecodeInfoSchema } from "./raster.ts";

/** What one image's analysis produced. */
export const AnalysisReportSchema = z.object({
  format: ImageFormatSchema,
  width: z.number().int(),
  height: z.number().int(),
  decode: DecodeInfoSchema,
  options: AnalysisOptionsSchema,
  /** The threshold applied (null for adaptive and Canny). */
  threshold: z.number().nullable(),
  /** Contours in `contours` (the totals below are theirs). */
  contour_count: z.number().int(),
  /** Contours the options kept (min_area, max_contours), before the service's cap on a stored document. */
  contours_found: z.number().int(),
  /** True when `contours` holds only the largest `contour_count` of `contours_found` (MAX_CONTOURS_STORED). */
  truncated: z.boolean(),
  top_level_count: z.number().int(),
  total_points: z.number().int(),
  total_area: z.number(),
  mean_area: z.number(),
  contours: z.array(MeasuredContourSchema),
  /** Milliseconds per stage (draw and encode are 0 when the image is rendered later, on request). */
  timings_ms: z.object({
    decode: z.number(),
    analyse: z.number(),
    measure: z.number(),
    draw: z.number(),
    encode: z.number(),
  }),
});

/** What one image's analysis produced. */
export type AnalysisReport = z.infer<typeof AnalysisReportSchema>;
