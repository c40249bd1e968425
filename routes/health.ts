import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import type { AppDeps } from "./deps.ts";
import { ComponentHealthSchema, errorResponses, FullHealthSchema } from "./schemas.ts";

type Health = z.infer<typeof ComponentHealthSchema>;

const TIMEOUT_MS = 2000;

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  const result = await withDeadline(p, TIMEOUT_MS);
  if (result === TIMED_OUT) throw new Error(`${what} did not answer within ${TIMEOUT_MS} ms`);
  return result;
}

async function checkRedis(deps: AppDeps): Promise<Health> {
  const t0 = performance.now();
  try {
    const pong = await withTimeout(deps.redis.ping(), "Redis");
    return { status: pong === "PONG" ? "healthy" : "unhealthy", latency_ms: round(performance.now() - t0) };
  } catch (err) {
    return { status: "unhealthy", detail: (err as Error).message };
  }
}

async function checkWorkers(deps: AppDeps): Promise<Health> {
  try {
    const [workers, counts] = await withTimeout(
      Promise.all([
        deps.queue.getWorkers(),
        deps.queue.getJobCounts("waiting", "active", "completed", "failed", "delayed", "prioritized"),
      ]),
      "Redis",
    );
    const live = workers.length;
    return {
      status: live > 0 ? "healthy" : "unhealthy",
      workers: live,
      queue: counts,
      ...(live === 0 ? { detail: "no live workers are connected to the queue" } : {}),
    };
  } catch (err) {
    return { status: "unhealthy", detail: (err as Error).message };
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;

const component = (path: string, summary: string) =>
  createRoute({
    method: "get",
    path,
    tags: ["health"],
    summary,
    responses: {
      200: { description: "Healthy", content: { "application/json": { schema: ComponentHealthSchema } } },
      503: { description: "Unhealthy", content: { "application/json": { schema: ComponentHealthSchema } } },
    },
  });

const fullRoute = createRoute({
  method: "get",
  path: "/api/v1/health/full",
  tags: ["health"],
  summary: "Every component; 503 naming the failing ones",
  responses: {
    200: { description: "All healthy", content: { "application/json": { schema: FullHealthSchema } } },
    503: { description: "Something is down", content: { "application/json": { schema: FullHealthSchema } } },
    ...errorResponses(401),
  },
});

/** Registers the health routes (the original service's paths included). */
export function registerHealthRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const respond = (h: Health) => (h.status === "healthy" ? 200 : 503) as 200 | 503;
  const api = (): Health => ({ status: "healthy", service: deps.config.APP_NAME, version: deps.config.VERSION });

  app.openapi(component("/api/v1/health/", "The API process is up"), (c) => c.json(api(), 200));
  app.get("/api/v1/health", (c) => c.json(api(), 200));
  app.openapi(component("/api/v1/health/redis", "Redis answers PING (with latency)"), async (c) => {
    const h = await checkRedis(deps);
    return c.json(h, respond(h));
  });
  app.openapi(component("/api/v1/health/worker", "Live workers seen by the queue, and queue counts"), async (c) => {
    const h = await checkWorkers(deps);
    return c.json(h, respond(h));
  });
  app.openapi(
    component("/api/v1/health/celery", "Worker health under the original service's path (no Celery here: BullMQ)"),
    async (c) => {
      const h = await checkWorkers(deps);
      return c.json({ ...h, broker: "redis", backend: "bullmq" }, respond(h));
    },
  );
  app.openapi(fullRoute, async (c) => {
    const [redis, worker] = await Promise.all([checkRedis(deps), checkWorkers(deps)]);
    const components: Record<string, Health> = { api: api(), redis, worker };
    const failing = Object.entries(components).filter(([, h]) => h.status !== "healthy").map(([k]) => k);
    const status = failing.length ? "unhealthy" : "healthy";
    return c.json({ status, failing, components }, failing.length ? 503 : 200);
  });
}
