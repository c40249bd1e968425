import type { OpenAPIHono } from "@hono/zod-openapi";
import { join } from "node:path";
import { NotFound } from "../errors.ts";
import type { OnDemandRenderer } from "../storage/render_on_demand.ts";

// Only names the worker writes are served, so no path can reach outside RESULT_DIR.
const RESULT_NAME = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(png|jpg|json)$/;
const TYPES: Record<string, string> = { png: "image/png", jpg: "image/jpeg", json: "application/json" };

/**
 * Registers `/static/results/{name}`: the annotated images and contour data. An annotated image not drawn yet
 * (RENDER=lazy) is drawn by `renderer` on its first request, so `result_url` always serves it.
 */
export function registerStaticRoutes(app: OpenAPIHono, resultDir: string, renderer?: OnDemandRenderer): void {
  app.get("/static/results/:name", async (c) => {
    const name = c.req.param("name");
    const m = RESULT_NAME.exec(name);
    if (!m) throw new NotFound("no such result file");
    const [, taskId, extension] = m;
    const open = () =>
      Deno.open(join(resultDir, name)).catch((err) => {
        if (err instanceof Deno.errors.NotFound) return null;
        throw err;
      });
    let file = await open();
    if (!file && extension !== "json" && renderer && await renderer.ensure(taskId, extension)) file = await open();
    if (!file) throw new NotFound("no such result file");
    const { size } = await file.stat();
    return c.body(file.readable, 200, {
      "content-type": TYPES[extension],
      "content-length": String(size),
      "x-content-type-options": "nosniff",
      "content-security-policy": "default-src 'none'; sandbox",
      "cache-control": "public, max-age=3600",
    });
  });
}
