// The shape of one measured contour: the analysis produces it, the result document stores it, and the API documents
// it (routes/images.ts) from these same schemas.
import { z } from "@hono/zod-openapi";

const PointSchema = z.object({ x: z.number(), y: z.number() });

/** A rotated rectangle as cv.RotatedRect gives it: degrees, clockwise on screen (y down). */
const RotatedBoxSchema = z.object({
  center: PointSchema,
  size: z.object({ width: z.number(), height: z.number() }),
  angle: z.number().openapi({ description: "Degrees, clockwise on the image (y down)" }),
});

/** A contour's lengths and areas in the upload's unit (`pixel_size` per pixel), present when it was calibrated. */
const CalibratedMeasurementsSchema = z
  .object({
    unit: z.string(),
    pixel_size: z.number().openapi({ description: "Length of one pixel in `unit`" }),
    area: z.number().openapi({ description: "unit²" }),
    perimeter: z.number(),
    equivalent_diameter: z.number(),
    bbox_width: z.number(),
    bbox_height: z.number(),
    feret_max: z.number().optional(),
    feret_min: z.number().optional(),
    min_rect_width: z.number().optional(),
    min_rect_height: z.number().optional(),
    enclosing_radius: z.number().optional(),
    /** The fitted ellipse's full axes; null without an ellipse. */
    ellipse_major: z.number().nullable().optional(),
    ellipse_minor: z.number().nullable().optional(),
  })
  .openapi("CalibratedMeasurements", {
    description: "Lengths (unit) and area (unit²) of a contour, when the upload gave pixel_size and unit (the " +
      "Feret, rectangle, circle and ellipse lengths with measurements=all)",
  });

/**
 * One contour and its measurements (pixel units, angles in degrees). The shape measurements (solidity to hu_moments)
 * and the intensity statistics are there with `measurements=all`.
 */
export const MeasuredContourSchema = z.object({
  id: z.number().int(),
  parent: z.number().int().openapi({ description: "Enclosing contour's id, -1 at the top level" }),
  /** Number of kept contours enclosing this one. */
  depth: z.number().int(),
  area: z.number().openapi({ description: "OpenCV contourArea, px²" }),
  /** Closed arc length (px). */
  perimeter: z.number(),
  bbox: z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() }),
  /** From image moments; the vertex mean for zero-area contours (lines, points). */
  centroid: z.object({ x: z.number(), y: z.number() }),
  convex: z.boolean(),
  /** 1 for a circle, towards 0 for thin shapes (0 when the perimeter is 0). */
  circularity: z.number().openapi({ description: "4πA/P²" }),
  solidity: z.number().optional().openapi({ description: "Area over the convex hull's area (measurements=all)" }),
  extent: z.number().openapi({ description: "Area over the bounding box's area" }),
  aspect_ratio: z.number().openapi({ description: "Bounding box width over height" }),
  equivalent_diameter: z.number().openapi({ description: "√(4·area/π), px" }),
  min_area_rect: RotatedBoxSchema.extend({
    corners: z.array(z.tuple([z.number(), z.number()])).openapi({ description: "As cv.boxPoints orders them" }),
  }).optional().openapi({ description: "cv.minAreaRect: angle in [0, 90]°, width the side along it" }),
  enclosing_circle: z.object({ center: PointSchema, radius: z.number() }).optional()
    .openapi({ description: "cv.minEnclosingCircle" }),
  ellipse: RotatedBoxSchema.nullable().optional().openapi({
    description: "cv.fitEllipse (full axes, width ≤ height); null under 5 vertices or for collinear ones",
  }),
  eccentricity: z.number().nullable().optional().openapi({ description: "√(1 − (minor/major)²) of the ellipse" }),
  feret: z.object({ max: z.number(), max_angle: z.number(), min: z.number(), min_angle: z.number() }).optional()
    .openapi({ description: "Largest and smallest caliper diameters (px) and their directions ([0, 180)°)" }),
  hu_moments: z.array(z.number()).optional().openapi({ description: "Hu's seven invariants (cv.HuMoments)" }),
  /** Gray levels are 0–255; null when the contour has no pixel of its own. */
  mean_intensity: z.number().nullable().optional().openapi({
    description: "Mean gray level inside the contour, nested contours' interiors left out",
  }),
  std_intensity: z.number().nullable().optional().openapi({ description: "Standard deviation of those gray levels" }),
  calibrated: CalibratedMeasurementsSchema.optional(),
  point_count: z.number().int(),
  /** Vertices as [x, y]; the API leaves them out on request (`points=false`). */
  points: z.array(z.tuple([z.number(), z.number()])),
});

/** One contour and its measurements. */
export type MeasuredContour = z.infer<typeof MeasuredContourSchema>;

/** A contour's lengths and areas in a calibrated unit. */
export type CalibratedMeasurements = z.infer<typeof CalibratedMeasurementsSchema>;

/** A rotated rectangle (cv.RotatedRect). */
export type RotatedBox = z.infer<typeof RotatedBoxSchema>;

/** The ratios a contour's area and bounding box give. */
export type BoxMeasurements = Pick<MeasuredContour, "extent" | "aspect_ratio" | "equivalent_diameter">;

/** What `measurements=all` adds: the hull, the fitted shapes, the Feret diameters and the moment invariants. */
export type ShapeMeasurements = Required<
  Pick<
    MeasuredContour,
    "solidity" | "min_area_rect" | "enclosing_circle" | "ellipse" | "eccentricity" | "feret" | "hu_moments"
  >
>;
