import { z } from "@hono/zod-openapi";
import { booleanWord, decimal, number } from "../text_values.ts";

const bool = booleanWord();

const odd = (v: number) => v % 2 === 1;

/** The option fields, before cross-field checks (extend this, then apply `checkOptions`). */
export const AnalysisOptionsFields = z
  .object({
    threshold: z.enum(["otsu", "binary", "adaptive", "canny"]).default("otsu")
      .openapi({ description: "How the gray image becomes binary" }),
    threshold_value: decimal(number().min(0).max(255)).default(127)
      .openapi({ description: "Cut-off for threshold=binary (0–255)" }),
    block_size: decimal(number().int().min(3).max(255).refine(odd, "must be odd")).default(11)
      .openapi({ description: "Neighbourhood (odd, px) for threshold=adaptive" }),
    c: decimal(number().min(-255).max(255)).default(2)
      .openapi({ description: "Constant subtracted from the local mean for threshold=adaptive" }),
    canny_low: decimal(number().min(0).max(2000)).default(50).openapi({ description: "Lower hysteresis threshold" }),
    canny_high: decimal(number().min(0).max(2000)).default(150).openapi({ description: "Upper hysteresis threshold" }),
    blur: decimal(number().int().min(0).max(99).refine((v) => v === 0 || odd(v), "must be 0 (off) or odd")).default(5)
      .openapi({ description: "Gaussian kernel size in px (odd), 0 = no blur" }),
    invert: bool.default(false).openapi({ description: "Find dark objects on a light background" }),
    retrieval: z.enum(["external", "list", "ccomp", "tree"]).default("tree"),
    approximation: z.enum(["none", "simple", "tc89_l1", "tc89_kcos"]).default("simple"),
    epsilon: decimal(number().min(0).max(10000)).default(0)
      .openapi({ description: "approxPolyDP tolerance in px; 0 = keep every vertex" }),
    min_area: decimal(number().min(0)).default(0).openapi({ description: "Drop contours smaller than this (px²)" }),
    max_contours: decimal(number().int().min(1).max(1_000_000)).optional()
      .openapi({ description: "Keep only the largest N contours" }),
    max_area: decimal(number().min(0)).optional().openapi({ description: "Drop contours larger than this (px²)" }),
    circularity_min: decimal(number().min(0).max(1)).optional()
      .openapi({ description: "Drop contours less circular than this (4πA/P², 0–1)" }),
    circularity_max: decimal(number().min(0).max(1)).optional()
      .openapi({ description: "Drop contours more circular than this (4πA/P², 0–1)" }),
    exclude_on_edge: bool.default(false)
      .openapi({ description: "Drop contours touching the image border (objects cut off by the frame)" }),
    measurements: z.enum(["basic", "all"]).default("basic").openapi({
      description: "basic: area, perimeter, bounding box and its ratios, centroid, convexity, circularity. all: also " +
        "solidity, the fitted rectangle, circle and ellipse, Feret diameters, Hu moments and the gray-level mean and " +
        "deviation, which about double the analysis's own time",
    }),
    pixel_size: decimal(number().positive().max(1e9)).optional()
      .openapi({
        description: "Length of one pixel in `unit`; with `unit`, lengths and areas are also reported in it",
      }),
    unit: z.string().regex(/^[^\s,;"]{1,16}$/, "must be 1–16 characters without spaces, commas or quotes")
      // Control characters are not all whitespace; the unit ends up in CSV headers and on the page.
      .refine((u) => ![...u].some((ch) => ch.charCodeAt(0) < 32 || ch.charCodeAt(0) === 127), "must be printable")
      .optional().openapi({ description: "Unit of `pixel_size`, such as µm or mm", example: "µm" }),
    color: z.string().regex(/^#?[0-9a-fA-F]{6}$/, "must be a hex colour like #00ff00").default("#00ff00")
      .openapi({ description: "Drawing colour" }),
    thickness: decimal(number().int().min(1).max(100)).default(2).openapi({ description: "Line width in px" }),
    fill: bool.default(false).openapi({ description: "Paint contour interiors instead of outlines" }),
    output_format: z.enum(["png", "jpeg"]).default("png").openapi({ description: "Annotated image format" }),
  });

/** Adds the checks that involve more than one option to a schema holding the option fields. */
export function checkOptions<
  T extends z.ZodType<{
    canny_low: number;
    canny_high: number;
    min_area: number;
    max_area?: number;
    circularity_min?: number;
    circularity_max?: number;
    pixel_size?: number;
    unit?: string;
  }>,
>(schema: T): T {
  return schema
    .refine((o) => o.canny_low <= o.canny_high, { message: "must not exceed canny_high", path: ["canny_low"] })
    .refine((o) => o.max_area === undefined || o.min_area <= o.max_area, {
      message: "must not exceed max_area",
      path: ["min_area"],
    })
    .refine((o) =>
      o.circularity_min === undefined || o.circularity_max === undefined ||
      o.circularity_min <= o.circularity_max, { message: "must not exceed circularity_max", path: ["circularity_min"] })
    // A length in pixels and a unit name are only a calibration together.
    .refine((o) => (o.pixel_size === undefined) === (o.unit === undefined), {
      message: "pixel_size and unit go together",
      path: ["pixel_size"],
    }) as unknown as T;
}

/** Processing options, sent as multipart fields with the upload; the defaults are native OpenCV's reference pipeline. */
export const AnalysisOptionsSchema = checkOptions(AnalysisOptionsFields).openapi("AnalysisOptions");

/** Validated processing options. */
export type AnalysisOptions = z.output<typeof AnalysisOptionsSchema>;

/** The options of the reference pipeline. */
export const DEFAULT_OPTIONS: AnalysisOptions = AnalysisOptionsSchema.parse({});

/** Parses a colour like "#00ff00" into [r, g, b]. */
export function parseColor(hex: string): [number, number, number] {
  const h = hex.replace("#", "");
  return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)) as [number, number, number];
}
