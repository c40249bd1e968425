import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { type ErrorCode, NotFound } from "../errors.ts";
import { getTaskStatus, type TaskStatus } from "../queue/contour_queue.ts";
import type { AppDeps } from "./deps.ts";
import { onDrain } from "./lifecycle.ts";
import { fromRedis } from "./redis_errors.ts";
import { API_KEY_SECURITY, errorResponses, TaskIdSchema } from "./schemas.ts";

const KEEPALIVE_MS = 15_000;
// Reconnection delay suggested to clients when a shutdown ends their stream: a reconnect to this draining instance would
// get a 503, on which EventSource gives up for good; after the delay it reaches another (or the restarted) instance.
const DRAIN_RETRY_MS = 5_000;

const eventsRoute = createRoute({
  method: "get",
  path: "/api/v1/images/status/{task_id}/events",
  operationId: "streamTaskStatus",
  tags: ["images"],
  summary: "Live status as Server-Sent Events, ending at completed, failed or gone",
  description:
    "Each `status` event carries the same JSON as GET /status/{task_id}: first the current state, then one " +
    "event per change (queued → active → completed | failed), after which the stream closes. " +
    "If the task disappears instead (deleted, or expired by retention), one `gone` event carries the 404 body " +
    'GET /status/{task_id} now answers, `{"error": {"code": "not_found", "message": …}}`, and the stream closes.',
  security: API_KEY_SECURITY,
  request: { params: z.object({ task_id: TaskIdSchema }) },
  responses: {
    200: { description: "An event stream", content: { "text/event-stream": { schema: z.string() } } },
    ...errorResponses(400, 401, 404, 503),
  },
});

const finished = (s: TaskStatus) => s.state === "completed" || s.state === "failed";

/** Registers the SSE status stream, driven by BullMQ's queue events (no polling). */
export function registerEventRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const { queue, events } = deps;
  app.openapi(eventsRoute, async (c) => {
    const { task_id } = c.req.valid("param");
    const first = await fromRedis(() => getTaskStatus(queue, task_id));
    if (!first) throw new NotFound(`no task with id ${task_id}`);
    return streamSSE(c, async (stream) => {
      let last = "";
      let done = false;
      let drained = false;
      let wake: () => void = () => {};
      const send = async (status: TaskStatus) => {
        const data = JSON.stringify(status);
        if (data !== last) {
          last = data;
          await stream.writeSSE({ event: "status", data, id: String(Date.now()) });
        }
        if (finished(status)) {
          done = true;
          wake();
        }
      };
      const sendGone = async () => {
        done = true;
        const message = `task ${task_id} no longer exists (deleted or expired)`;
        const data = JSON.stringify({ error: { code: "not_found" satisfies ErrorCode, message } });
        try {
          await stream.writeSSE({ event: "gone", data, id: String(Date.now()) });
        } finally {
          wake();
        }
      };
      // Events may overtake each other; each one just triggers a fresh read of the whole status.
      let chain = Promise.resolve();
      const refresh = (args: { jobId: string }) => {
        if (args.jobId !== task_id || done) return;
        chain = chain.then(async () => {
          // Reads queued before the end must not add a `gone` after `completed`, or a second `gone`.
          if (done) return;
          let s: TaskStatus | undefined;
          try {
            s = await getTaskStatus(queue, task_id);
          } catch {
            // A Redis blip is no proof the task is gone; the next event (or the client's reconnect) reads again.
            return;
          }
          if (s) await send(s);
          else await sendGone();
        }).catch(() => {
          // The client went away mid-write: the abort handler ends the stream.
        });
      };
      const names = ["waiting", "active", "completed", "failed", "removed"] as const;
      for (const n of names) events?.on(n, refresh as never);
      const keepalive = setInterval(() => stream.write(": keep-alive\n\n").catch(() => {}), KEEPALIVE_MS);
      const unregister = onDrain(deps.lifecycle, () => {
        drained = done = true;
        wake();
      });
      try {
        await send(first);
        // The job may have moved, or been deleted, between the first read and the subscription; either way no event
        // for it is coming, so read it again now that any later one will be heard.
        refresh({ jobId: task_id });
        if (!done) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            stream.onAbort(resolve);
          });
        }
        await chain;
        if (drained) await stream.write(`retry: ${DRAIN_RETRY_MS}\n\n`).catch(() => {});
      } finally {
        unregister();
        clearInterval(keepalive);
        for (const n of names) events?.off(n, refresh as never);
      }
    });
  });
}
