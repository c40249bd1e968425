import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { AppError, NotFound } from "../errors.ts";
import { contoursToGeoJson, contoursToSvg } from "../imaging/export.ts";
import type { AnalysisReport } from "../imaging/pipeline.ts";
import { getTaskStatus } from "../queue/contour_queue.ts";
import { serviceKeys } from "../queue/keys.ts";
import { forgetResult } from "../queue/results_index.ts";
import { removeFile, removeResultFiles, resultFiles } from "../storage/files.ts";
import type { AppDeps } from "./deps.ts";
import { fromRedis } from "./redis_errors.ts";
import { documentedError, errorResponses, TaskIdSchema, TaskStatusSchema } from "./schemas.ts";

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
    point_count: z.number().int(),
    points: z.array(z.tuple([z.number(), z.number()])).optional(),
  })
  .openapi("Contour");

const ContoursSchema = z
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

// Only what can be fetched now: the exports and files exist once the task has completed.
const LinksSchema = z.object({
  status: z.string(),
  contours: z.string().optional(),
  svg: z.string().optional(),
  geojson: z.string().optional(),
  image: z.string().optional(),
  data: z.string().optional(),
});

const params = z.object({ task_id: TaskIdSchema });

const taskRoute = createRoute({
  method: "get",
  path: "/api/v1/images/{task_id}",
  tags: ["images"],
  summary: "A task's status plus links to its image and every export",
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
  tags: ["images"],
  summary: "Remove a task, its upload and its result files",
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

const contoursRoute = createRoute({
  method: "get",
  path: "/api/v1/images/{task_id}/contours",
  tags: ["images"],
  summary: "Contours with measurements, as JSON, SVG or GeoJSON",
  request: {
    params,
    query: z.object({
      format: z.enum(["json", "svg", "geojson"]).default("json"),
      points: z.enum(["true", "false"]).default("true").openapi({ description: "false omits the vertices (JSON)" }),
    }),
  },
  responses: {
    200: {
      description: "The contours",
      content: {
        "application/json": { schema: ContoursSchema },
        "image/svg+xml": { schema: z.string() },
        "application/geo+json": { schema: z.object({ type: z.literal("FeatureCollection") }).passthrough() },
      },
    },
    ...errorResponses(400, 401, 404, 503),
  },
});

type StoredResult = AnalysisReport & { task_id: string; filename: string };

async function readResult(resultDir: string, taskId: string): Promise<StoredResult> {
  try {
    return JSON.parse(await Deno.readTextFile(resultFiles(resultDir, taskId).data));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new NotFound(`no contours for task ${taskId} (not finished, or failed)`);
    }
    throw err;
  }
}

/** Registers `GET`/`DELETE /api/v1/images/{task_id}` and the contour exports. */
export function registerImageRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const { config, queue } = deps;

  app.openapi(taskRoute, async (c) => {
    const { task_id } = c.req.valid("param");
    const status = await fromRedis(() => getTaskStatus(queue, task_id));
    if (!status) throw new NotFound(`no task with id ${task_id}`);
    const base = `/api/v1/images/${task_id}/contours`;
    const links = {
      status: `/api/v1/images/status/${task_id}`,
      ...(status.result
        ? {
          contours: base,
          svg: `${base}?format=svg`,
          geojson: `${base}?format=geojson`,
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
    await removeResultFiles(config.RESULT_DIR, task_id);
    await removeFile(job.data.upload_path);
    return c.body(null, 204);
  });

  app.openapi(contoursRoute, async (c) => {
    const { task_id } = c.req.valid("param");
    const { format, points } = c.req.valid("query");
    const result = await readResult(config.RESULT_DIR, task_id);
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
    if (points === "false") {
      result.contours = result.contours.map(({ points: _p, ...rest }) => rest) as typeof result.contours;
    }
    return c.json(result, 200);
  });
}
