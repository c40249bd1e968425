/**
 * OpenTelemetry traces across the queue, on top of Deno's built-in OpenTelemetry (`OTEL_DENO=true`): Deno makes the
 * HTTP server and `fetch` spans and exports them over OTLP; this module names the server spans after their route,
 * carries the context through BullMQ (bullmq-otel), and adds the analysis stages and the callback delivery.
 *
 * With tracing off nothing here is installed: the queues get no `telemetry` (BullMQ then calls straight through), the
 * app no middleware and the log no lookups, so a request does no tracing work at all.
 *
 * ```ts
 * import { queueTelemetry } from "./tracing.ts";
 * const queue = new Queue("contours", { connection, telemetry: queueTelemetry(config) });
 * ```
 */
import { context, propagation, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { BullMQOtel } from "bullmq-otel";
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Config } from "./config.ts";

/** The instrumentation scope of the service's own spans. */
const SCOPE = "background-image-processor";

let telemetry: BullMQOtel | undefined;

/**
 * BullMQ's `telemetry` option for a queue or worker: the producer's context travels in the job's options, and the
 * worker's `process` span continues it. Undefined when tracing is off.
 */
export function queueTelemetry(config: Pick<Config, "OTEL_DENO">): BullMQOtel | undefined {
  if (!config.OTEL_DENO) return undefined;
  return telemetry ??= new BullMQOtel({ tracerName: "bullmq" });
}

/**
 * Names the HTTP server span Deno opened after the route that served the request (`POST /api/v1/images/upload`,
 * `GET /api/v1/images/status/{task_id}`), as OpenTelemetry's HTTP conventions ask: Deno names it after the method
 * alone, not knowing the routes. Requests that match no route keep that name.
 */
export function nameServerSpans(): MiddlewareHandler {
  return async (c, next) => {
    const span = trace.getActiveSpan();
    try {
      await next();
    } finally {
      // The last matched route is the one registered for the request (middlewares are registered first); wildcards
      // belong to middlewares and 404s.
      const route = routePath(c, -1);
      if (span && route && !route.endsWith("*")) {
        const template = route.replace(/:([A-Za-z0-9_]+)(?:\{[^}]*\})?/g, "{$1}");
        span.updateName(`${c.req.method} ${template}`);
        span.setAttribute("http.route", template);
      }
    }
  };
}

/** Milliseconds each analysis stage took, in the order they ran (a pool member's report). */
export interface StageTimings {
  decode: number;
  analyse: number;
  measure: number;
  draw: number;
  encode: number;
}

/**
 * Adds the analysis stages as child spans of the active span (the job's), from the member's own clock: the member
 * runs in another thread, so the spans are made here with explicit times, laid end to end from `startedAt` (epoch
 * ms). Stages that did not run (draw and encode of a lazily rendered image) are left out.
 */
export function recordStageSpans(
  config: Pick<Config, "OTEL_DENO">,
  startedAt: number | undefined,
  timings: StageTimings,
): void {
  if (!config.OTEL_DENO || startedAt === undefined || !trace.getActiveSpan()) return;
  const tracer = trace.getTracer(SCOPE);
  const ctx = context.active();
  let at = startedAt;
  for (const stage of ["decode", "analyse", "measure", "draw", "encode"] as const) {
    const ms = timings[stage];
    if (ms <= 0 && (stage === "draw" || stage === "encode")) continue;
    tracer.startSpan(stage, { startTime: at, attributes: { "image.stage": stage } }, ctx).end(at + ms);
    at += ms;
  }
}

/**
 * Runs `fn` in a span of its own (a child of the active span), recording an exception and an error status when it
 * throws; `fn` may add attributes to the span. With tracing off `fn` runs alone.
 */
export function withSpan<T>(
  config: Pick<Config, "OTEL_DENO">,
  name: string,
  kind: SpanKind,
  attributes: Record<string, string | number>,
  fn: (span?: Span) => Promise<T>,
): Promise<T> {
  if (!config.OTEL_DENO) return fn();
  return trace.getTracer(SCOPE).startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** W3C trace-context headers (`traceparent`) for the active span, so a receiver can continue the trace. */
export function traceHeaders(config: Pick<Config, "OTEL_DENO">): Record<string, string> {
  const headers: Record<string, string> = {};
  if (config.OTEL_DENO) propagation.inject(context.active(), headers);
  return headers;
}
