import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { createCallbackQueue, enqueueCallback } from "../callbacks/callback_queue.ts";
import { AppError, NotFound } from "../errors.ts";
import { log } from "../log.ts";
import { cancelTask } from "../queue/cancel.ts";
import { getTaskStatus, TaskStatusSchema } from "../queue/contour_queue.ts";
import type { AppDeps } from "./deps.ts";
import { fromRedis } from "./redis_errors.ts";
import { API_KEY_SECURITY, documentedError, errorResponses, TaskIdSchema } from "./schemas.ts";

const TASK_ID = "3b241101-e2bb-4255-8caf-4136c566a962";

/** The documented path. */
const CANCEL_PATH = "/api/v1/images/cancel/{task_id}";

// The same operation, by the same handler, at the path beside the task's own (`/api/v1/images/{task_id}`). It is left
// out of the document, as the contours' alias is (routes/images.ts): beside /api/v1/images/status/{task_id} it would
// make an ambiguous pair (both match /api/v1/images/status/cancel), which the document's linter refuses.
const CANCEL_ALIAS_PATH = "/api/v1/images/{task_id}/cancel";

const cancelRoute = createRoute({
  method: "post",
  path: CANCEL_PATH,
  operationId: "cancelImage",
  tags: ["images"],
  summary: "Cancel a queued or running task",
  description:
    "A queued task is failed at once with `error.code` `cancelled`. A running one is stopped on the worker " +
    "that runs it, whichever process that is; the answer shows it still `active`, and it ends `failed` with " +
    "`cancelled` moments later (poll its status). A task that finishes before the cancellation reaches its worker " +
    "keeps its result. Its callback (if any) is sent as for any failure; it is not retried. Cancelling a cancelled " +
    "task again answers the same. Also served at `/api/v1/images/{task_id}/cancel`, which this document leaves out: " +
    "that template and `/api/v1/images/status/{task_id}` both match some paths.",
  security: API_KEY_SECURITY,
  request: { params: z.object({ task_id: TaskIdSchema }) },
  responses: {
    202: {
      description: "Cancelled (a queued task), or being stopped (a running one): the task's status",
      content: {
        "application/json": {
          schema: TaskStatusSchema,
          examples: {
            queued: {
              summary: "A queued task: failed at once",
              value: {
                task_id: TASK_ID,
                state: "failed",
                progress: 0,
                filename: "coins.png",
                submitted_at: "2026-12-06T18:00:00.000Z",
                started_at: null,
                finished_at: "2026-12-06T18:00:02.000Z",
                attempts: 0,
                error: { code: "cancelled", message: "the task was cancelled at the client's request" },
              },
            },
            active: {
              summary: "A running task: being stopped",
              value: {
                task_id: TASK_ID,
                state: "active",
                progress: 10,
                filename: "coins.png",
                submitted_at: "2026-12-06T18:00:00.000Z",
                started_at: "2026-12-06T18:00:01.000Z",
                finished_at: null,
                attempts: 0,
              },
            },
          },
        },
      },
    },
    ...errorResponses(400, 401, 404, 503),
    ...documentedError(409, "The task has already completed or failed", [
      ["task_finished", "the task has already completed: there is nothing to cancel"],
    ]),
  },
});

const cancelAliasRoute = createRoute({ ...cancelRoute, path: CANCEL_ALIAS_PATH, hide: true });

/** Registers `POST /api/v1/images/cancel/{task_id}` and its alias `POST /api/v1/images/{task_id}/cancel`. */
export function registerCancelRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const { config, queue, redis } = deps;
  // The API queues the callback of a task it cancelled while queued; no worker ever sees that task again.
  const callbacks = createCallbackQueue(config, redis);

  const cancel = async (task_id: string, requestId: string) => {
    const outcome = await fromRedis(() => cancelTask(queue, redis, config, task_id));
    if (outcome === "missing") throw new NotFound(`no task with id ${task_id}`);
    if (outcome === "completed" || outcome === "failed") {
      throw new AppError("task_finished", `the task has already ${outcome}: there is nothing to cancel`);
    }
    if (outcome === "cancelled") {
      log("info", "task cancelled while queued", { request_id: requestId, task_id });
    }
    // Queued again on a repeated request too (the task id makes it once only): the first may have been cut off.
    if (outcome === "cancelled" || outcome === "already_cancelled") {
      const job = await fromRedis(() => queue.getJob(task_id));
      if (job?.data.callback_url) {
        await fromRedis(() =>
          enqueueCallback(callbacks, config, {
            task_id,
            url: job.data.callback_url!,
            request_id: job.data.request_id,
          })
        );
      }
    }
    const status = await fromRedis(() => getTaskStatus(queue, task_id));
    // Removed in the meantime (DELETE, the retention sweep).
    if (!status) throw new NotFound(`no task with id ${task_id}`);
    return status;
  };
  app.openapi(cancelRoute, async (c) => c.json(await cancel(c.req.valid("param").task_id, c.get("requestId")), 202));
  app.openapi(
    cancelAliasRoute,
    async (c) => c.json(await cancel(c.req.valid("param").task_id, c.get("requestId")), 202),
  );
}
