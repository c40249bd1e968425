import { trace } from "@opentelemetry/api";

/** Log levels in increasing severity. */
export type Level = "debug" | "info" | "warn" | "error";

let pretty = false;
let traced = false;

/**
 * Switches between one-JSON-object-per-line (default) and readable lines (DEBUG=true); with `tracing` (OTEL_DENO), lines
 * written inside a span carry its `trace_id` and `span_id`.
 */
export function configureLog(options: { pretty: boolean; tracing?: boolean }): void {
  pretty = options.pretty;
  traced = options.tracing ?? false;
}

/** Writes one structured log event. */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  if (level === "debug" && !pretty) return;
  const time = new Date().toISOString();
  if (traced) fields = { ...fields, ...traceIds() };
  const line = pretty
    ? `${time} ${level.toUpperCase().padEnd(5)} ${msg}${
      Object.keys(fields).length
        ? " " + Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")
        : ""
    }`
    : JSON.stringify({ time, level, msg, ...fields });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

/** The active span's ids, when there is a valid one. */
function traceIds(): { trace_id: string; span_id: string } | undefined {
  const context = trace.getActiveSpan()?.spanContext();
  return context && trace.isSpanContextValid(context)
    ? { trace_id: context.traceId, span_id: context.spanId }
    : undefined;
}
