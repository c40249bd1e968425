import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { BadRequest, errorResponse, NotFound, Unavailable } from "./errors.ts";
import { log } from "./log.ts";
import { createMetrics } from "./metrics.ts";
import { registerAdminRoutes } from "./routes/admin.ts";
import { registerCancelRoutes } from "./routes/cancel.ts";
import { requireApiKey } from "./routes/auth.ts";
import { identifyClient } from "./routes/client_address.ts";
import { rateLimit } from "./routes/rate_limit.ts";
import type { AppDeps } from "./routes/deps.ts";
import { registerDocsRoutes } from "./routes/docs.ts";
import { registerEventRoutes } from "./routes/events.ts";
import { registerHealthRoutes } from "./routes/health.ts";
import { registerImageRoutes } from "./routes/images.ts";
import { registerStaticRoutes } from "./routes/static.ts";
import { registerStatusRoutes } from "./routes/status.ts";
import { registerUiRoutes } from "./routes/ui.ts";
import { anyClientError, NO_SECURITY } from "./routes/schemas.ts";
import { registerUploadRoutes } from "./routes/upload.ts";
import { registerBatchRoutes } from "./routes/batch.ts";
import { nameServerSpans } from "./tracing.ts";

// Documented for scrapers; served as Prometheus text by the metrics module, not through a zod-validated handler.
const METRICS_ROUTE = createRoute({
  method: "get",
  path: "/metrics",
  operationId: "getMetrics",
  tags: ["service"],
  summary: "Prometheus metrics: HTTP requests, queue counts, workers, job stage durations, process memory",
  security: NO_SECURITY,
  responses: {
    200: {
      description: "Prometheus text exposition format",
      content: { "text/plain; version=0.0.4": { schema: z.string() } },
    },
    ...anyClientError(),
  },
});

/** Builds the HTTP app from explicit dependencies. */
export function createApp(deps: AppDeps): OpenAPIHono {
  const app = new OpenAPIHono({
    // Every validation failure becomes the one error shape, naming the field.
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        const field = issue.path.join(".") || "request";
        const code = field === "file" ? "missing_file" : "validation_error";
        throw new BadRequest(code, `${field}: ${issue.message}`);
      }
    },
  });
  // Only with tracing on: otherwise a request does no tracing work at all.
  if (deps.config.OTEL_DENO) app.use("*", nameServerSpans());
  const lifecycle = deps.lifecycle;
  if (lifecycle) {
    // Deno's server.shutdown() cuts off request bodies still being received, so shutting down first drains: new
    // requests are refused with 503 while those in flight (an upload halfway through its body) finish.
    app.use("*", async (c, next) => {
      // The HTTP server stamps when a request began to arrive (http_server.ts): one that began before the shutdown is
      // in flight, even if its head was still on its way through the server when draining started.
      const arrivedAt = (c.env as { arrivedAt?: number } | undefined)?.arrivedAt;
      if (lifecycle.draining && !(arrivedAt !== undefined && arrivedAt < lifecycle.drainingSince!)) {
        c.header("Connection", "close");
        c.header("Retry-After", "5");
        throw new Unavailable("the server is shutting down; retry on another instance");
      }
      lifecycle.inFlight++;
      try {
        await next();
      } finally {
        lifecycle.inFlight--;
      }
    });
  }
  const metrics = createMetrics(deps.queue, deps.events, deps.connections, {
    upload: deps.config.UPLOAD_DIR,
    result: deps.config.RESULT_DIR,
  });
  // A client's X-Request-Id (if sane) is kept, else one is made; it is echoed, logged and carried into the job.
  app.use("*", requestId({ limitLength: 128 }));
  // Behind a load balancer the socket's peer is the balancer: TRUST_PROXY says whose X-Forwarded-For to believe.
  app.use("*", identifyClient(deps.config.TRUST_PROXY));
  app.use("*", async (c, next) => {
    const start = performance.now();
    await next();
    log(c.res.status >= 500 ? "error" : "info", "request", {
      request_id: c.get("requestId"),
      client: c.get("clientAddress"),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - start) * 100) / 100,
    });
  });
  app.use("*", metrics.middleware);
  const origins = deps.config.CORS_ORIGINS;
  app.use("*", cors({ origin: origins.includes("*") ? "*" : origins }));
  // The docs pages run inline scripts of their own; the rest is JSON and images.
  app.use("*", secureHeaders({ contentSecurityPolicy: undefined, crossOriginEmbedderPolicy: false }));
  app.onError((err, c) => errorResponse(err, c));
  app.notFound((c) => errorResponse(new NotFound(`no route for ${c.req.method} ${c.req.path}`), c));

  // Health stays open for probes, except the full report, which reveals the deployment's state.
  const auth = requireApiKey(deps.config.API_KEYS);
  app.use("/api/v1/images/*", auth);
  app.use("/api/v1/batches/*", auth);
  app.use("/api/v1/health/full", auth);
  // The dashboard is opened in browsers, which cannot add a key header: a Basic challenge makes them ask for the key.
  app.use("/admin/*", requireApiKey(deps.config.API_KEYS, "Basic"));
  // Uploads are the expensive call; reads (status, polling, results) are not limited.
  app.on(
    "POST",
    // A batch counts as one upload request: its files are queued behind single uploads instead (docs/batches.md).
    ["/api/v1/images/upload", "/api/v1/images/batch"],
    rateLimit(deps.redis, {
      limit: deps.config.RATE_LIMIT,
      windowSeconds: deps.config.RATE_LIMIT_WINDOW,
      prefix: deps.config.QUEUE_PREFIX,
    }),
  );

  registerUploadRoutes(app, deps);
  registerBatchRoutes(app, deps);
  registerStatusRoutes(app, deps);
  registerEventRoutes(app, deps);
  // After the fixed paths (/results, /status/…), so they are not taken for a task id.
  registerImageRoutes(app, deps);
  registerCancelRoutes(app, deps);
  registerHealthRoutes(app, deps);
  registerStaticRoutes(
    app,
    deps.store ?? deps.config.RESULT_DIR,
    deps.renderer,
    deps.config.S3_PRESIGNED_RESULTS ? deps.config.S3_PRESIGNED_EXPIRY_SECONDS : undefined,
  );
  registerDocsRoutes(app, deps);
  registerAdminRoutes(app, deps);
  registerUiRoutes(app);
  app.openAPIRegistry.registerPath(METRICS_ROUTE);
  app.get(
    "/metrics",
    async (c) => c.body(await metrics.render(), 200, { "content-type": metrics.registry.contentType }),
  );
  return app;
}
