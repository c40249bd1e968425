import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { AppError, NotFound } from "../errors.ts";
import { contoursToCsv, contoursToGeoJson, contoursToSvg } from "../imaging/export.ts";
import { MeasuredContourSchema } from "../imaging/measurements.ts";
import { type AnalysisReport, AnalysisReportSchema } from "../imaging/report.ts";
import { getTaskStatus, TaskStatusSchema } from "../queue/contour_queue.ts";
import { serviceKeys } from "../queue/keys.ts";
import { forgetResult } from "../queue/results_index.ts";
import { resultNames } from "../storage/files.ts";
import { createLocalStore, type ObjectStore } from "../storage/object_store.ts";
import { removeResults } from "../storage/results.ts";
import type { AppDeps } from "./deps.ts";
import { fromRedis } from "./redis_errors.ts";
import { fromStorage } from "./storage_errors.ts";
import { API_KEY_SECURITY, documentedError, errorResponses, TaskIdSchema } from "./schemas.ts";

// The stored document may leave the vertices out (points=false).
const ContourSchema = MeasuredContourSchema.extend({ points: MeasuredContourSchema.shape.points.optional() })
  .openapi("Contour");

const report = AnalysisReportSchema.shape;

/**
 * The result document of a completed task: what `/contours` answers as JSON and `{task_id}.json` holds. It is the
 * analysis report with the task's id and filename; the document names the fields clients read and lets the rest pass.
 */
export const ContoursSchema = z
  .object({
    task_id: z.uuid(),
    filename: z.string(),
    width: report.width,
    height: report.height,
    threshold: report.threshold,
    contour_count: report.contour_count,
    top_level_count: report.top_level_count,
    total_area: report.total_area,
    mean_area: report.mean_area,
    // Promised as milliseconds by stage name, so that a stage added later is no breaking change.
    timings_ms: z.record(z.string(), z.number()),
    contours: z.array(ContourSchema),
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

/** A completed task's result document as the worker stored it. */
export type StoredResult = AnalysisReport & { task_id: string; filename: string };

/** The result document of a completed task; 404 when there is none. */
export async function readResult(store: ObjectStore, taskId: string): Promise<StoredResult> {
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
      // A source_url's task has no upload until the worker has downloaded it.
      if (job.data.upload_path) await store.removeAt(job.data.upload_path);
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
    return c.body(resultToCsv(result), 200, { "content-type": "text/csv; charset=utf-8; header=present" });
  }
  if (points === "false") {
    result.contours = result.contours.map(({ points: _p, ...rest }) => rest) as typeof result.contours;
  }
  return c.json(result, 200);
}

/** A result's contours as CSV: calibrated columns when the upload gave pixel_size, all measurements' when it asked. */
export function resultToCsv(result: StoredResult): string {
  const calibrated = result.options?.pixel_size !== undefined ? result.options.unit : undefined;
  return contoursToCsv(result.contours, calibrated, result.options?.measurements === "all");
}
