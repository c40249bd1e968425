import { trace } from "@opentelemetry/api";

/** Log levels in increasing severity. */
export type Level = "debug" | "info" | "warn" | "error";

const SEVERITY: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

let pretty = false;
let traced = false;
let least: Level = "info";

/**
 * Switches between one-JSON-object-per-line (default) and readable lines (DEBUG=true); with `tracing` (OTEL_DENO), lines
 * written inside a span carry its `trace_id` and `span_id`. Events less severe than `level` (LOG_LEVEL; by default
 * debug for readable lines, info otherwise) are not written.
 */
export function configureLog(options: { pretty: boolean; tracing?: boolean; level?: Level }): void {
  pretty = options.pretty;
  traced = options.tracing ?? false;
  least = options.level ?? (pretty ? "debug" : "info");
}

/** Writes one structured log event. */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  if (SEVERITY[level] < SEVERITY[least]) return;
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
