import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { freeBytes } from "../storage/disk.ts";
import type { AppDeps } from "./deps.ts";
import { refuseOtherMethods } from "./method_not_allowed.ts";
import {
  anyClientError,
  API_KEY_SECURITY,
  ComponentHealthSchema,
  errorResponses,
  ErrorSchema,
  FullHealthSchema,
  NO_SECURITY,
} from "./schemas.ts";

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
    const latency_ms = round(performance.now() - t0);
    if (pong !== "PONG") return { status: "unhealthy", latency_ms };
    // A Redis that would lose the queue on a restart, or evict job keys, still works: degraded, not failing.
    const p = deps.redisPersistence?.current;
    if (!p) return { status: "healthy", latency_ms };
    const settings = { persistence: p.persistence, maxmemory_policy: p.maxmemory_policy };
    return p.warnings.length
      ? { status: "degraded", latency_ms, ...settings, warnings: p.warnings }
      : { status: "healthy", latency_ms, ...settings };
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

/** Free space where uploads and results are written; unhealthy under DISK_MIN_FREE_MB (uploads would get 507). */
export async function checkDisk(config: AppDeps["config"]): Promise<Health> {
  const minFree = config.DISK_MIN_FREE_MB * 1024 * 1024;
  const free_bytes: Record<string, number | null> = {
    upload_dir: await freeBytes(config.UPLOAD_DIR),
    result_dir: await freeBytes(config.RESULT_DIR),
  };
  const low = Object.entries(free_bytes).filter(([, n]) => n !== null && n < minFree).map(([k]) => k.toUpperCase());
  if (low.length) {
    const detail = `less than DISK_MIN_FREE_MB (${config.DISK_MIN_FREE_MB} MB) free in ${low.join(", ")}`;
    return { status: "unhealthy", free_bytes, min_free_bytes: minFree, detail };
  }
  // Unreadable (no --allow-sys=statfs): reported as null, not as a failure of the disk itself.
  return { status: "healthy", free_bytes, min_free_bytes: minFree };
}

// Every path below, which answer GET only.
const HEALTH_PATHS = [
  "/api/v1/health/",
  "/api/v1/health",
  "/api/v1/health/redis",
  "/api/v1/health/worker",
  "/api/v1/health/celery",
  "/api/v1/health/full",
];

const round = (ms: number) => Math.round(ms * 100) / 100;

// A process that has begun shutting down answers every request, probes included, with the one error shape (app.ts).
const DOWN_OR_DRAINING = "Unhealthy, or the process is shutting down (then the error shape, service_unavailable)";

const component = (path: string, operationId: string, summary: string, description?: string) =>
  createRoute({
    method: "get",
    path,
    operationId,
    tags: ["health"],
    summary,
    description,
    // Open to probes, with or without API_KEYS.
    security: NO_SECURITY,
    responses: {
      200: { description: "Healthy", content: { "application/json": { schema: ComponentHealthSchema } } },
      ...anyClientError(),
      503: {
        description: DOWN_OR_DRAINING,
        content: { "application/json": { schema: z.union([ComponentHealthSchema, ErrorSchema]) } },
      },
    },
  });

const fullRoute = createRoute({
  method: "get",
  path: "/api/v1/health/full",
  operationId: "getFullHealth",
  tags: ["health"],
  summary: "Every component; 503 naming the failing ones",
  security: API_KEY_SECURITY,
  responses: {
    200: { description: "All healthy", content: { "application/json": { schema: FullHealthSchema } } },
    503: {
      description: DOWN_OR_DRAINING,
      content: { "application/json": { schema: z.union([FullHealthSchema, ErrorSchema]) } },
    },
    ...errorResponses(401),
  },
});

/** Registers the health routes (the original service's paths included). */
export function registerHealthRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const respond = (h: Health) => (h.status === "unhealthy" ? 503 : 200) as 200 | 503;
  const api = (): Health => ({ status: "healthy", service: deps.config.APP_NAME, version: deps.config.VERSION });

  for (const path of HEALTH_PATHS) refuseOtherMethods(app, path, "GET", "read health");
  app.openapi(
    component(
      "/api/v1/health",
      "getHealth",
      "The API process is up",
      // A path with a trailing slash is refused by OpenAPI linters, so the original service's spelling is not listed.
      "Also served at `/api/v1/health/`, the original service's path.",
    ),
    (c) => c.json(api(), 200),
  );
  app.get("/api/v1/health/", (c) => c.json(api(), 200));
  app.openapi(component("/api/v1/health/redis", "getRedisHealth", "Redis answers PING (with latency)"), async (c) => {
    const h = await checkRedis(deps);
    return c.json(h, respond(h));
  });
  app.openapi(
    component("/api/v1/health/worker", "getWorkerHealth", "Live workers seen by the queue, and queue counts"),
    async (c) => {
      const h = await checkWorkers(deps);
      return c.json(h, respond(h));
    },
  );
  app.openapi(
    component(
      "/api/v1/health/celery",
      "getCeleryHealth",
      "Worker health under the original service's path (no Celery here: BullMQ)",
    ),
    async (c) => {
      const h = await checkWorkers(deps);
      return c.json({ ...h, broker: "redis", backend: "bullmq" }, respond(h));
    },
  );
  app.openapi(fullRoute, async (c) => {
    const [redis, worker, disk] = await Promise.all([checkRedis(deps), checkWorkers(deps), checkDisk(deps.config)]);
    const components: Record<string, Health> = { api: api(), redis, worker, disk };
    const failing = Object.entries(components).filter(([, h]) => h.status === "unhealthy").map(([k]) => k);
    const degraded = Object.values(components).some((h) => h.status === "degraded");
    const status = failing.length ? "unhealthy" : degraded ? "degraded" : "healthy";
    return c.json({ status, failing, components }, failing.length ? 503 : 200);
  });
}
