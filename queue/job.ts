import { z } from "@hono/zod-openapi";
import { AnalysisOptionsSchema } from "../imaging/options.ts";

/** The job payload: references to files, never pixels. Shared by the upload route (producer) and the worker. */
export const ContourJobSchema = z.object({
  task_id: z.uuid(),
  /** Path of the stored upload, as the API wrote it. */
  upload_path: z.string().min(1),
  /** The client's filename, kept only as metadata. */
  filename: z.string(),
  /** Format detected from the upload's content at upload time. */
  format: z.enum(["jpeg", "png", "bmp", "tiff"]),
  size: z.number().int().nonnegative(),
  submitted_at: z.iso.datetime(),
  options: AnalysisOptionsSchema,
  /** When the annotated image is drawn (the upload's `render` field, else RENDER); absent in jobs of older APIs. */
  render: z.enum(["eager", "lazy"]).optional(),
  /** Where to POST the final status (validated at upload). */
  callback_url: z.string().max(2048).optional(),
  /** The upload request's id, so the worker's log lines can be joined to the API's. */
  request_id: z.string().max(128).optional(),
});

/** A contour job's payload. */
export type ContourJob = z.infer<typeof ContourJobSchema>;

/** What a completed job returns (stored by BullMQ, shown in status and in the results list). */
export const ContourSummarySchema = z
  .object({
    task_id: z.uuid(),
    filename: z.string().openapi({ example: "coins.png" }),
    format: z.enum(["jpeg", "png", "bmp", "tiff"]),
    width: z.number().int().openapi({ example: 384 }),
    height: z.number().int().openapi({ example: 303 }),
    threshold: z.number().nullable().openapi({
      description: "Threshold applied (Otsu's choice by default); null for adaptive and Canny",
      example: 104,
    }),
    contour_count: z.number().int().openapi({
      description: "Contours in the result document; every total below and the annotated image are of these",
      example: 61,
    }),
    contours_found: z.number().int().optional().openapi({
      description: "Contours the options kept (min_area, max_contours); above contour_count when truncated",
      example: 61,
    }),
    truncated: z.boolean().optional().openapi({
      description: "True when the result keeps only the largest MAX_CONTOURS_STORED (contour_count) of contours_found",
      example: false,
    }),
    total_area: z.number().openapi({ description: "Sum of contour areas (px²)" }),
    mean_area: z.number(),
    top_level_count: z.number().int().openapi({ description: "Contours with no parent", example: 34 }),
    total_points: z.number().int(),
    result_url: z.string().openapi({ description: "The annotated image", example: "/static/results/<task_id>.png" }),
    data_url: z.string().openapi({ description: "Full contour data as JSON (points, measurements, hierarchy)" }),
    contours_url: z.string().openapi({ description: "Contours as JSON, SVG or GeoJSON (?format=)" }),
    decode: z.object({
      pages: z.number().int().optional(),
      orientation: z.number().int().optional(),
      notes: z.array(z.string()).optional(),
    }).openapi({ description: "What the decoder did (pages, EXIF orientation applied, conversions)" }),
    options: AnalysisOptionsSchema,
    finished_at: z.iso.datetime(),
    timings_ms: z.object({
      decode: z.number(),
      analyse: z.number(),
      measure: z.number(),
      draw: z.number(),
      encode: z.number(),
      total: z.number(),
    }),
  })
  .openapi("ContourSummary");

/** A completed job's summary. */
export type ContourSummary = z.infer<typeof ContourSummarySchema>;
