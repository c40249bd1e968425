import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { fileURLToPath } from "node:url";
import { publicConfig } from "../config.ts";
import { NotFound, Unavailable } from "../errors.ts";
import type { AppDeps } from "./deps.ts";

// Browser bundles shipped inside npm packages, served by the app itself so the docs render with no internet.
const VENDOR: Record<string, string> = {
  "scalar.js": "../node_modules/@scalar/api-reference/dist/browser/standalone.js",
  "redoc.js": "../node_modules/redoc/bundles/redoc.standalone.js",
};

const page = (title: string, body: string) =>
  `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title></head>
<body>${body}</body></html>`;

const SCALAR_PAGE = page(
  "API reference",
  `<div id="app"></div>
<script src="/static/vendor/scalar.js"></script>
<script>
  Scalar.createApiReference("#app", { url: "/openapi.json", withDefaultFonts: false, hideClientButton: false });
</script>`,
);

const REDOC_PAGE = page(
  "API reference (ReDoc)",
  `<redoc spec-url="/openapi.json"></redoc>
<script src="/static/vendor/redoc.js"></script>`,
);

const InfoSchema = z
  .object({
    name: z.string(),
    version: z.string(),
    runtime: z.record(z.string(), z.string()),
    config: z.record(z.string(), z.unknown()),
    docs: z.object({
      scalar: z.string(),
      redoc: z.string(),
      openapi: z.string(),
      ui: z.string(),
      dashboard: z.string(),
    }),
  })
  .openapi("Info");

const infoRoute = createRoute({
  method: "get",
  path: "/info",
  tags: ["service"],
  summary: "Name, version, runtime versions and configuration (no secrets)",
  responses: { 200: { description: "Service information", content: { "application/json": { schema: InfoSchema } } } },
});

/** Registers `/`, `/docs`, `/redoc`, `/openapi.json`, `/info` and the bundled browser scripts. */
export function registerDocsRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const { config } = deps;
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: config.APP_NAME,
      version: config.VERSION,
      description: "Upload images; contours are detected in the background on a BullMQ job queue. " +
        "Try it in a browser at [/ui](/ui); recent results at [/ui/results](/ui/results).",
    },
    tags: [
      { name: "images", description: "Upload, status and results" },
      { name: "health", description: "Liveness and dependencies" },
      { name: "service", description: "About this service" },
    ],
  });
  app.get("/", (c) => c.redirect("/docs"));
  app.get("/docs", (c) => c.html(SCALAR_PAGE));
  app.get("/redoc", (c) => c.html(REDOC_PAGE));
  app.get("/static/vendor/:name", async (c) => {
    const rel = VENDOR[c.req.param("name")];
    if (!rel) throw new NotFound("no such file");
    let file: Deno.FsFile;
    try {
      file = await Deno.open(fileURLToPath(new URL(rel, import.meta.url)));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      throw new Unavailable(`the bundled script ${rel} is missing: run \`deno install\``);
    }
    return c.body(file.readable, 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "public, max-age=86400",
    });
  });
  app.openapi(infoRoute, (c) =>
    c.json({
      name: config.APP_NAME,
      version: config.VERSION,
      runtime: { deno: Deno.version.deno, v8: Deno.version.v8, typescript: Deno.version.typescript, ...deps.versions },
      config: publicConfig(config),
      docs: { scalar: "/docs", redoc: "/redoc", openapi: "/openapi.json", ui: "/ui", dashboard: "/admin/queues" },
    }, 200));
}
