import { z } from "@hono/zod-openapi";
import { ImageFormatSchema } from "../imaging/format.ts";
import { AnalysisOptionsSchema } from "../imaging/options.ts";
import { AnalysisReportSchema } from "../imaging/report.ts";

/** When the annotated image is drawn: by the worker (eager) or on its first request (lazy). */
export const RenderModeSchema = z.enum(["eager", "lazy"]);

/** The job payload: references to files, never pixels. Shared by the upload route (producer) and the worker. */
export const ContourJobSchema = z.object({
  task_id: z.uuid(),
  /**
   * Path of the stored upload, as the API wrote it; for a source_url, absent until the worker has downloaded and
   * stored it (then written into the job, so a retry reads the stored file instead of downloading it again).
   */
  upload_path: z.string().min(1).optional(),
  /** The client's filename, kept only as metadata. */
  filename: z.string(),
  /** Format detected from the upload's content at upload time (for a source_url, once downloaded). */
  format: ImageFormatSchema.optional(),
  size: z.number().int().nonnegative().optional(),
  /** Where the worker downloads the image from (validated at upload against SOURCE_ALLOWED_HOSTS). */
  source_url: z.string().max(2048).optional(),
  submitted_at: z.iso.datetime(),
  options: AnalysisOptionsSchema,
  /** When the annotated image is drawn (the upload's `render` field, else RENDER); absent in jobs of older APIs. */
  render: RenderModeSchema.optional(),
  /** Where to POST the final status (validated at upload). */
  callback_url: z.string().max(2048).optional(),
  /** The upload request's id, so the worker's log lines can be joined to the API's. */
  request_id: z.string().max(128).optional(),
});

/** A contour job's payload. */
export type ContourJob = z.infer<typeof ContourJobSchema>;

const report = AnalysisReportSchema.shape;

/** What a completed job returns (stored by BullMQ, shown in status and in the results list). */
export const ContourSummarySchema = z
  .object({
    task_id: z.uuid(),
    filename: z.string().openapi({ example: "coins.png" }),
    source_url: z.string().optional().openapi({
      description: "The URL the image was downloaded from, for an upload that gave source_url",
      example: "https://images.example.com/samples/coins.png",
    }),
    format: report.format,
    width: report.width.openapi({ example: 384 }),
    height: report.height.openapi({ example: 303 }),
    threshold: report.threshold.openapi({
      description: "Threshold applied (Otsu's choice by default); null for adaptive and Canny",
      example: 104,
    }),
    contour_count: report.contour_count.openapi({
      description: "Contours in the result document; every total below and the annotated image are of these",
      example: 61,
    }),
    contours_found: report.contours_found.optional().openapi({
      description: "Contours the options kept (min_area, max_contours); above contour_count when truncated",
      example: 61,
    }),
    truncated: report.truncated.optional().openapi({
      description: "True when the result keeps only the largest MAX_CONTOURS_STORED (contour_count) of contours_found",
      example: false,
    }),
    total_area: report.total_area.openapi({ description: "Sum of contour areas (px²)" }),
    mean_area: report.mean_area,
    top_level_count: report.top_level_count.openapi({ description: "Contours with no parent", example: 34 }),
    total_points: report.total_points,
    result_url: z.string().openapi({ description: "The annotated image", example: "/static/results/<task_id>.png" }),
    data_url: z.string().openapi({ description: "Full contour data as JSON (points, measurements, hierarchy)" }),
    contours_url: z.string().openapi({ description: "Contours as JSON, SVG or GeoJSON (?format=)" }),
    decode: report.decode.openapi({
      description: "What the decoder did (pages, EXIF orientation applied, conversions)",
    }),
    options: report.options,
    finished_at: z.iso.datetime(),
    // The report's stages, and the whole job's time.
    timings_ms: report.timings_ms.extend({ total: z.number() }),
  })
  .openapi("ContourSummary");

/** A completed job's summary. */
export type ContourSummary = z.infer<typeof ContourSummarySchema>;
