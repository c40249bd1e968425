import type { OpenAPIHono } from "@hono/zod-openapi";
import { AppError, errorResponse } from "../errors.ts";

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/**
 * Answers the methods `path` does not take with 405 method_not_allowed and an Allow header naming those it does (HEAD
 * with GET: Hono answers it from the GET route). Register it before routes with parameters that could take the path.
 */
export function refuseOtherMethods(app: OpenAPIHono, path: string, allowed: "GET" | "POST", purpose: string): void {
  const allow = allowed === "GET" ? ["GET", "HEAD"] : [allowed];
  app.on(METHODS.filter((m) => !allow.includes(m)), path, (c) => {
    c.header("Allow", allow.join(", "));
    return errorResponse(new AppError("method_not_allowed", `use ${allowed} to ${purpose} (not ${c.req.method})`), c);
  });
}
