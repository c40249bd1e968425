import { z } from "@hono/zod-openapi";

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
    threshold: z.number().openapi({ description: "Threshold Otsu chose (0–255)", example: 104 }),
    contour_count: z.number().int().openapi({ example: 61 }),
    top_level_count: z.number().int().openapi({ description: "Contours with no parent", example: 34 }),
    total_points: z.number().int(),
    result_url: z.string().openapi({ description: "The annotated PNG", example: "/static/results/<task_id>.png" }),
    data_url: z.string().openapi({ description: "Full contour data as JSON (points, areas, hierarchy)" }),
    finished_at: z.iso.datetime(),
    timings_ms: z.object({ decode: z.number(), analyse: z.number(), encode: z.number(), total: z.number() }),
  })
  .openapi("ContourSummary");

/** A completed job's summary. */
export type ContourSummary = z.infer<typeof ContourSummarySchema>;
