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
    color: z.string().regex(/^#?[0-9a-fA-F]{6}$/, "must be a hex colour like #00ff00").default("#00ff00")
      .openapi({ description: "Drawing colour" }),
    thickness: decimal(number().int().min(1).max(100)).default(2).openapi({ description: "Line width in px" }),
    fill: bool.default(false).openapi({ description: "Paint contour interiors instead of outlines" }),
    output_format: z.enum(["png", "jpeg"]).default("png").openapi({ description: "Annotated image format" }),
  });

/** Adds the checks that involve more than one option to a schema holding the option fields. */
export function checkOptions<T extends z.ZodType<{ canny_low: number; canny_high: number }>>(schema: T): T {
  return schema.refine((o) => o.canny_low <= o.canny_high, {
    message: "must not exceed canny_high",
    path: ["canny_low"],
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
