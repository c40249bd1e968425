import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { BadRequest, NotFound } from "../errors.ts";
import { fromRedis } from "./redis_errors.ts";
import { getTaskStatus, TaskStatusSchema } from "../queue/contour_queue.ts";
import { decodeCursor, listResults } from "../queue/results_index.ts";
import { serviceKeys } from "../queue/keys.ts";
import type { AppDeps } from "./deps.ts";
import { API_KEY_SECURITY, errorResponses, ResultsPageSchema, ResultsQuerySchema, TaskIdSchema } from "./schemas.ts";

const statusRoute = createRoute({
  method: "get",
  path: "/api/v1/images/status/{task_id}",
  operationId: "getTaskStatus",
  tags: ["images"],
  summary: "State, progress and result of a task",
  security: API_KEY_SECURITY,
  request: { params: z.object({ task_id: TaskIdSchema }) },
  responses: {
    200: { description: "The task", content: { "application/json": { schema: TaskStatusSchema } } },
    ...errorResponses(400, 401, 404, 503),
  },
});

const resultsRoute = createRoute({
  method: "get",
  path: "/api/v1/images/results",
  operationId: "listResults",
  tags: ["images"],
  summary: "Processed images, newest first",
  security: API_KEY_SECURITY,
  request: { query: ResultsQuerySchema },
  responses: {
    200: { description: "One page of results", content: { "application/json": { schema: ResultsPageSchema } } },
    ...errorResponses(400, 401, 503),
  },
});

/** Registers the status and results routes. */
export function registerStatusRoutes(app: OpenAPIHono, deps: AppDeps): void {
  app.openapi(statusRoute, async (c) => {
    const { task_id } = c.req.valid("param");
    const status = await fromRedis(() => getTaskStatus(deps.queue, task_id));
    if (!status) throw new NotFound(`no task with id ${task_id}`);
    return c.json(status, 200);
  });

  app.openapi(resultsRoute, async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const position = cursor === undefined ? undefined : decodeCursor(cursor);
    if (cursor !== undefined && !position) {
      throw new BadRequest("invalid_cursor", "cursor is not well-formed: pass next_cursor back as it came");
    }
    const page = await fromRedis(() => listResults(deps.redis, serviceKeys(deps.config), limit, position));
    return c.json(page, 200);
  });
}
