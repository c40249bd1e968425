import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { Hono, type MiddlewareHandler } from "hono";
import { serveStatic } from "hono/deno";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ERROR_CODES, type ErrorCode } from "../errors.ts";
import type { AppDeps } from "./deps.ts";
import { redisUnavailable } from "./redis_errors.ts";

/** Where the queue dashboard is mounted (behind the API-key middleware app.ts puts on `/admin/*`). */
export const ADMIN_QUEUES_PATH = "/admin/queues";

// The UI package is a dependency of @bull-board/hono, not of this project, so Deno does not link it at the top
// of node_modules; Node's resolution from the adapter's own location finds it in any node_modules layout.
const UI_PACKAGE_DIR = dirname(
  createRequire(import.meta.resolve("@bull-board/hono")).resolve("@bull-board/ui/package.json"),
);
const UI_STATIC_DIR = join(UI_PACKAGE_DIR, "dist", "static");

// The stock page pulls its fonts from Google; without them it falls back to the system sans-serif.
const EXTERNAL_STYLESHEET = /<link\b[^>]*\bhref="https?:\/\/[^"]*"[^>]*>\s*/gi;

// Everything the page loads comes from the app: the policy makes the browser refuse anything else, should a
// future UI version add an outside resource. Inline styles are the UI's own (the loading spinner, React styles).
const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join("; ");

const localOnlyPage: MiddlewareHandler = async (c, next) => {
  await next();
  if (!c.res.headers.get("content-type")?.startsWith("text/html")) return;
  c.res = new Response((await c.res.text()).replace(EXTERNAL_STYLESHEET, ""), c.res);
  // The body got shorter than any length the original response declared.
  c.res.headers.delete("content-length");
  c.header("Content-Security-Policy", PAGE_CSP);
};

// bull-board's keys for the errors its read-only API gives, and the service's codes for them.
const DASHBOARD_CODES: Record<string, ErrorCode> = {
  "ERRORS.QUEUE_READ_ONLY": "read_only",
  "ERRORS.QUEUE_NOT_FOUND": "not_found",
  "ERRORS.JOB_NOT_FOUND": "not_found",
  "ERRORS.JOB_SCHEDULER_NOT_FOUND": "not_found",
  "ERRORS.JOB_SCHEDULER_RUN_NOT_SUPPORTED": "read_only",
  "ERRORS.JOB_SCHEDULER_EDIT_NOT_SUPPORTED": "read_only",
};

/**
 * Gives the dashboard API's errors the service's `{"error": {"code", "message"}}` shape, keeping bull-board's `key`
 * (its page translates it), and reports a Redis outage as 503 like every other route instead of bull-board's 500.
 */
const serviceErrors: MiddlewareHandler = async (c, next) => {
  await next();
  if (c.res.status < 400 || !c.res.headers.get("content-type")?.startsWith("application/json")) return;
  const body = await c.res.clone().json().catch(() => null) as
    | { error?: { key?: string } | string; message?: string }
    | null;
  const key = typeof body?.error === "object" ? body.error.key : undefined;
  if (!key) return;
  const outage = c.res.status >= 500;
  const code = outage ? "service_unavailable" : DASHBOARD_CODES[key] ?? "dashboard_error";
  const status = ERROR_CODES[code];
  const message = outage
    ? redisUnavailable().message
    : key === "ERRORS.QUEUE_READ_ONLY"
    ? "the dashboard is read-only: jobs cannot be retried, removed, promoted, added or paused here"
    : body?.message ?? key;
  c.res = new Response(JSON.stringify({ error: { code, message, key } }), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      ...(outage ? { "retry-after": String(redisUnavailable().retryAfterSeconds) } : {}),
    },
  });
};

const mounted = new WeakSet<OpenAPIHono>();

/** Mounts the read-only bull-board dashboard for the service's queue at `/admin/queues`. */
export function registerAdminRoutes(app: OpenAPIHono, deps: AppDeps): void {
  // Idempotent, so a caller that cannot tell whether createApp already mounted the board may mount it again.
  if (mounted.has(app)) return;
  mounted.add(app);
  const serverAdapter = new HonoAdapter(
    // bull-board passes a root made relative to the working directory at mount time; an absolute one does not
    // depend on where the service was started from (or on a later chdir).
    (options: Parameters<typeof serveStatic>[0]) => serveStatic({ ...options, root: UI_STATIC_DIR }),
  ).setBasePath(ADMIN_QUEUES_PATH);
  createBullBoard({
    // Read-only: the page may be reachable by more people than should be able to delete or retry jobs.
    queues: [new BullMQAdapter(deps.queue, { readOnlyMode: true })],
    serverAdapter,
    options: { uiBasePath: UI_PACKAGE_DIR, uiConfig: { boardTitle: deps.config.APP_NAME } },
  });
  const board = new Hono();
  board.use("*", localOnlyPage);
  board.use("/api/*", serviceErrors);
  board.route("/", serverAdapter.registerPlugin());
  app.route(ADMIN_QUEUES_PATH, board);
  // bull-board only answers without the slash; a bookmarked or typed "/admin/queues/" should not be a 404.
  app.get(`${ADMIN_QUEUES_PATH}/`, (c) => c.redirect(ADMIN_QUEUES_PATH));
}
