import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { AppError, NotFound } from "../errors.ts";
import { contoursToCsv, contoursToGeoJson, contoursToSvg } from "../imaging/export.ts";
import type { AnalysisReport } from "../imaging/pipeline.ts";
import { getTaskStatus } from "../queue/contour_queue.ts";
import { serviceKeys } from "../queue/keys.ts";
import { forgetResult } from "../queue/results_index.ts";
import { resultNames } from "../storage/files.ts";
import { createLocalStore, type ObjectStore } from "../storage/object_store.ts";
import { removeResults } from "../storage/results.ts";
import type { AppDeps } from "./deps.ts";
import { fromRedis } from "./redis_errors.ts";
import { fromStorage } from "./storage_errors.ts";
import { API_KEY_SECURITY, documentedError, errorResponses, TaskIdSchema, TaskStatusSchema } from "./schemas.ts";

const PointSchema = z.object({ x: z.number(), y: z.number() });

const RotatedBoxSchema = z.object({
  center: PointSchema,
  size: z.object({ width: z.number(), height: z.number() }),
  angle: z.number().openapi({ description: "Degrees, clockwise on the image (y down)" }),
});

const CalibratedSchema = z
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
    ellipse_major: z.number().nullable().optional(),
    ellipse_minor: z.number().nullable().optional(),
  })
  .openapi("CalibratedMeasurements", {
    description: "Lengths (unit) and area (unit²) of a contour, when the upload gave pixel_size and unit (the " +
      "Feret, rectangle, circle and ellipse lengths with measurements=all)",
  });

const MeasuredContourSchema = z
  .object({
    id: z.number().int(),
    parent: z.number().int().openapi({ description: "Enclosing contour's id, -1 at the top level" }),
    depth: z.number().int(),
    area: z.number().openapi({ description: "OpenCV contourArea, px²" }),
    perimeter: z.number(),
    bbox: z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() }),
    centroid: z.object({ x: z.number(), y: z.number() }),
    convex: z.boolean(),
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
    mean_intensity: z.number().nullable().optional().openapi({
      description: "Mean gray level inside the contour, nested contours' interiors left out",
    }),
    std_intensity: z.number().nullable().optional().openapi({ description: "Standard deviation of those gray levels" }),
    calibrated: CalibratedSchema.optional(),
    point_count: z.number().int(),
    points: z.array(z.tuple([z.number(), z.number()])).optional(),
  })
  .openapi("Contour");

/** The result document of a completed task: what `/contours` answers as JSON and `{task_id}.json` holds. */
export const ContoursSchema = z
  .object({
    task_id: z.uuid(),
    filename: z.string(),
    width: z.number().int(),
    height: z.number().int(),
    threshold: z.number().nullable(),
    contour_count: z.number().int(),
    top_level_count: z.number().int(),
    total_area: z.number(),
    mean_area: z.number(),
    timings_ms: z.record(z.string(), z.number()),
    contours: z.array(MeasuredContourSchema),
  })
  .passthrough()
  .openapi("Contours");

const ContoursGeoJsonSchema = z
  .object({
    type: z.literal("FeatureCollection"),
    features: z.array(z.object({
      type: z.literal("Feature"),
      id: z.number().int().openapi({ description: "The outer contour's id" }),
      geometry: z.object({
        type: z.literal("Polygon"),
        coordinates: z.array(z.array(z.tuple([z.number(), z.number()]))).openapi({
          description: "Closed rings in pixel coordinates: the outer one counter-clockwise, then its holes clockwise",
        }),
      }),
      properties: MeasuredContourSchema.omit({ points: true }).extend({
        holes: z.array(z.number().int()).openapi({ description: "Ids of the contours cut out as holes" }),
      }),
    })),
    image: z.object({ width: z.number().int(), height: z.number().int(), crs: z.string() }).openapi({
      description: "Foreign member (RFC 7946 §6.1): the frame the coordinates are in",
    }),
    skipped_degenerate: z.number().int().openapi({
      description: "Foreign member: contours of one or two points, which cannot be polygons",
    }),
  })
  .openapi("ContoursGeoJson");

// Only what can be fetched now: the exports and files exist once the task has completed.
const LinksSchema = z.object({
  status: z.string(),
  contours: z.string().optional(),
  svg: z.string().optional(),
  geojson: z.string().optional(),
  csv: z.string().optional(),
  image: z.string().optional(),
  data: z.string().optional(),
});

const params = z.object({ task_id: TaskIdSchema });

const taskRoute = createRoute({
  method: "get",
  path: "/api/v1/images/{task_id}",
  operationId: "getImage",
  tags: ["images"],
  summary: "A task's status plus links to its image and every export",
  security: API_KEY_SECURITY,
  request: { params },
  responses: {
    200: {
      description: "The task",
      content: { "application/json": { schema: TaskStatusSchema.extend({ links: LinksSchema }) } },
    },
    ...errorResponses(400, 401, 404, 503),
  },
});

const deleteRoute = createRoute({
  method: "delete",
  path: "/api/v1/images/{task_id}",
  operationId: "deleteImage",
  tags: ["images"],
  summary: "Remove a task, its upload and its result files",
  security: API_KEY_SECURITY,
  request: { params },
  responses: {
    204: { description: "Removed" },
    ...errorResponses(400, 401, 404, 503),
    ...documentedError(409, "The task is being processed, or a worker took it up while it was being removed", [
      ["task_active", "the task is being processed; retry when it has finished"],
      [
        "task_state_changed",
        "the task changed state while this request was handled (a worker took it up or finished it); retry",
      ],
    ]),
  },
});

/** The documented path of a task's contours. */
const CONTOURS_PATH = "/api/v1/images/contours/{task_id}";

// The same contours, by the same handler, for the clients that use this path (deprecated). It is left out of the
// document: beside /api/v1/images/status/{task_id} it would make an ambiguous pair, as both templates match
// /api/v1/images/status/contours, which generators and linters refuse.
const CONTOURS_ALIAS_PATH = "/api/v1/images/{task_id}/contours";

const contoursRoute = createRoute({
  method: "get",
  path: CONTOURS_PATH,
  operationId: "getContours",
  tags: ["images"],
  summary: "Contours with measurements, as JSON, SVG, GeoJSON or CSV",
  description: "Once the task has completed. Also served at `/api/v1/images/{task_id}/contours` (deprecated), which " +
    "this document leaves out: that template and `/api/v1/images/status/{task_id}` both match some paths.",
  security: API_KEY_SECURITY,
  request: {
    params,
    query: z.object({
      format: z.enum(["json", "svg", "geojson", "csv"]).default("json").openapi({
        description: "json: the result document (application/json); svg: an SVG of the image's size; geojson: a " +
          "FeatureCollection of Polygons (application/geo+json); csv: one row per contour with a header row, units " +
          "in the column names (text/csv)",
      }),
      points: z.enum(["true", "false"]).default("true").openapi({ description: "false omits the vertices (JSON)" }),
    }),
  },
  responses: {
    200: {
      description: "The contours, in the format asked for",
      content: {
        // GeoJSON is JSON by its +json suffix, and validators that match media types by suffix (Prism) check an
        // application/geo+json body against this entry: it names both shapes.
        "application/json": { schema: z.union([ContoursSchema, ContoursGeoJsonSchema]) },
        "image/svg+xml": { schema: z.string() },
        "application/geo+json": { schema: ContoursGeoJsonSchema },
        "text/csv": {
          schema: z.string().openapi({
            example: "id,parent,depth,area_px2,perimeter_px,…\r\n0,-1,0,1430,150.083,…\r\n",
          }),
        },
      },
    },
    ...errorResponses(400, 401, 404, 503),
  },
});

const contoursAliasRoute = createRoute({ ...contoursRoute, path: CONTOURS_ALIAS_PATH, hide: true });

type StoredResult = AnalysisReport & { task_id: string; filename: string };

async function readResult(store: ObjectStore, taskId: string): Promise<StoredResult> {
  const document = await fromStorage(() => store.read("results", resultNames(taskId).data));
  if (!document) throw new NotFound(`no contours for task ${taskId} (not finished, or failed)`);
  return JSON.parse(new TextDecoder().decode(document));
}

/** Registers `GET`/`DELETE /api/v1/images/{task_id}` and the contour exports. */
export function registerImageRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const { config, queue } = deps;
  const store = deps.store ?? createLocalStore(config);

  app.openapi(taskRoute, async (c) => {
    const { task_id } = c.req.valid("param");
    const status = await fromRedis(() => getTaskStatus(queue, task_id));
    if (!status) throw new NotFound(`no task with id ${task_id}`);
    const base = CONTOURS_PATH.replace("{task_id}", task_id);
    const links = {
      status: `/api/v1/images/status/${task_id}`,
      ...(status.result
        ? {
          contours: base,
          svg: `${base}?format=svg`,
          geojson: `${base}?format=geojson`,
          csv: `${base}?format=csv`,
          image: status.result.result_url,
          data: status.result.data_url,
        }
        : {}),
    };
    return c.json({ ...status, links }, 200);
  });

  app.openapi(deleteRoute, async (c) => {
    const { task_id } = c.req.valid("param");
    const job = await fromRedis(() => queue.getJob(task_id));
    if (!job) throw new NotFound(`no task with id ${task_id}`);
    const state = await fromRedis(() => job.getState());
    if (state === "active") {
      throw new AppError("task_active", "the task is being processed; retry when it has finished");
    }
    await fromRedis(async () => {
      await job.remove();
      await forgetResult(deps.redis, serviceKeys(config), task_id);
    });
    await fromStorage(async () => {
      await removeResults(store, task_id);
      await store.removeAt(job.data.upload_path);
    });
    return c.body(null, 204);
  });

  app.openapi(contoursRoute, (c) => serveContours(c, store, c.req.valid("param"), c.req.valid("query")));
  app.openapi(
    contoursAliasRoute,
    (c) => serveContours(c, store, c.req.valid("param"), c.req.valid("query")),
  );
}

/** The contours of a completed task in the format asked for. */
async function serveContours(
  c: Context,
  store: ObjectStore,
  { task_id }: { task_id: string },
  { format, points }: { format: "json" | "svg" | "geojson" | "csv"; points: "true" | "false" },
) {
  const result = await readResult(store, task_id);
  if (format === "svg") {
    return c.body(contoursToSvg(result.contours, result.width, result.height, result.options?.color), 200, {
      "content-type": "image/svg+xml; charset=utf-8",
      "x-content-type-options": "nosniff",
      // An SVG is a document that could carry script; this one never does, and must never run any.
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    });
  }
  if (format === "geojson") {
    return c.body(JSON.stringify(contoursToGeoJson(result.contours, result.width, result.height)), 200, {
      "content-type": "application/geo+json",
    });
  }
  if (format === "csv") {
    const calibrated = result.options?.pixel_size !== undefined ? result.options.unit : undefined;
    return c.body(contoursToCsv(result.contours, calibrated, result.options?.measurements === "all"), 200, {
      "content-type": "text/csv; charset=utf-8; header=present",
    });
  }
  if (points === "false") {
    result.contours = result.contours.map(({ points: _p, ...rest }) => rest) as typeof result.contours;
  }
  return c.json(result, 200);
}
