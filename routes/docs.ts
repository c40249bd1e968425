import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { Scalar } from "@scalar/hono-api-reference";
import { fileURLToPath } from "node:url";
import { publicConfig } from "../config.ts";
import { NotFound, Unavailable } from "../errors.ts";
import type { AppDeps } from "./deps.ts";
import { anyClientError, NO_SECURITY, SECURITY_SCHEMES } from "./schemas.ts";

// Browser bundles shipped inside npm packages, served by the app itself so the docs render with no internet.
const VENDOR: Record<string, string> = {
  "scalar.js": "../node_modules/@scalar/api-reference/dist/browser/standalone.js",
  "redoc.js": "../node_modules/redoc/bundles/redoc.standalone.js",
};

// Outside URLs a bundle would load at run time, replaced as it is served: ReDoc's footer fetched its logo from a CDN.
const REWRITES: Record<string, [string, string][]> = {
  "redoc.js": [[
    "https://cdn.redoc.ly/redoc/logo-mini.svg",
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E",
  ]],
};

// Scalar's hosted extras (the AI agent, MCP generation, the Share/Deploy developer tools, telemetry) send the API
// document or requests to scalar.com: a self-hosted reference keeps them off, and the page's policy refuses any host
// but this one should a later version add another. `cdn` is the bundle this app serves, so nothing loads from
// jsDelivr (its default).
const SCALAR_CONFIG = {
  pageTitle: "API reference",
  cdn: "/static/vendor/scalar.js",
  url: "/openapi.json",
  withDefaultFonts: false,
  hideClientButton: false,
  agent: { disabled: true },
  mcp: { disabled: true },
  showDeveloperTools: "never",
  telemetry: false,
} as const;

/**
 * The docs pages' Content-Security-Policy: this origin only (the bundles inject their own styles and web workers).
 * `/docs` also allows the one inline script @scalar/hono-api-reference writes (its configuration), by a nonce drawn
 * for each answer.
 */
const docsCsp = (nonce?: string): string =>
  [
    "default-src 'self'",
    nonce ? `script-src 'self' 'nonce-${nonce}'` : "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
  ].join("; ");

const scalarPage = Scalar((c) => {
  const nonce = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  c.header("content-security-policy", docsCsp(nonce));
  return { ...SCALAR_CONFIG, nonce };
});

const page = (title: string, body: string) =>
  `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title></head>
<body>${body}</body></html>`;

const REDOC_PAGE = page(
  "API reference (ReDoc)",
  `<redoc spec-url="/openapi.json"></redoc>
<script src="/static/vendor/redoc.js"></script>`,
);

// The project publishes no open-source licence; the document says so rather than implying one (an SPDX LicenseRef,
// which names a licence outside the SPDX list).
const LICENSE = { name: "Proprietary, all rights reserved", identifier: "LicenseRef-Proprietary" };

const InfoSchema = z
  .object({
    name: z.string(),
    version: z.string(),
    runtime: z.record(z.string(), z.string()),
    config: z.record(z.string(), z.unknown()),
    // What the Redis keeps across a restart; warnings name the risks (null until first checked, or no check wired).
    redis_persistence: z.object({
      persistence: z.enum(["aof", "rdb", "aof+rdb", "none", "unknown"]),
      maxmemory_policy: z.string(),
      warnings: z.array(z.string()),
      checked_at: z.string(),
    }).nullable(),
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
  operationId: "getInfo",
  tags: ["service"],
  summary: "Name, version, runtime versions and configuration (no secrets)",
  security: NO_SECURITY,
  responses: {
    200: { description: "Service information", content: { "application/json": { schema: InfoSchema } } },
    ...anyClientError(),
  },
});

/** Registers `/`, `/docs`, `/redoc`, `/openapi.json`, `/info` and the bundled browser scripts. */
export function registerDocsRoutes(app: OpenAPIHono, deps: AppDeps): void {
  const { config } = deps;
  for (const [name, scheme] of Object.entries(SECURITY_SCHEMES)) {
    app.openAPIRegistry.registerComponent("securitySchemes", name, scheme);
  }
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: config.APP_NAME,
      version: config.VERSION,
      description: "Upload images; contours are detected in the background on a BullMQ job queue. " +
        "Try it in a browser at [/ui](/ui); recent results at [/ui/results](/ui/results).\n\n" +
        "When the service runs with API_KEYS, the image routes and the full health report need a key, sent as " +
        "`X-API-Key: <key>` or `Authorization: Bearer <key>`; without API_KEYS no key is needed (the empty " +
        "security requirement of those operations).",
      license: LICENSE,
    },
    // Relative: the document is served by the service it describes, so clients resolve paths against its origin.
    servers: [{ url: "/", description: "The service that serves this document" }],
    tags: [
      { name: "images", description: "Upload an image, follow its task, fetch its contours and annotated image" },
      {
        name: "batches",
        description: "Upload many images with one set of options, follow them, fetch all results as a ZIP",
      },
      { name: "health", description: "Liveness of the API and its dependencies (Redis, workers, disk), for probes" },
      { name: "service", description: "About this service: versions, configuration, Prometheus metrics" },
    ],
  });
  app.get("/", (c) => c.redirect("/docs"));
  app.get("/docs", scalarPage);
  app.get("/redoc", (c) => c.html(REDOC_PAGE, 200, { "content-security-policy": docsCsp() }));
  const rewritten = new Map<string, string>();
  app.get("/static/vendor/:name", async (c) => {
    const name = c.req.param("name");
    const rel = VENDOR[name];
    if (!rel) throw new NotFound("no such file");
    const headers = { "content-type": "text/javascript; charset=utf-8", "cache-control": "public, max-age=86400" };
    const path = fileURLToPath(new URL(rel, import.meta.url));
    const missing = (err: unknown): never => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      throw new Unavailable(`the bundled script ${rel} is missing: run \`deno install\``);
    };
    if (REWRITES[name]) {
      let text = rewritten.get(name);
      if (text === undefined) {
        text = await Deno.readTextFile(path).catch(missing);
        for (const [from, to] of REWRITES[name]) text = text.replaceAll(from, to);
        rewritten.set(name, text);
      }
      return c.body(text, 200, headers);
    }
    const file = await Deno.open(path).catch(missing);
    return c.body(file.readable, 200, headers);
  });
  app.openapi(infoRoute, (c) =>
    c.json({
      name: config.APP_NAME,
      version: config.VERSION,
      runtime: { deno: Deno.version.deno, v8: Deno.version.v8, typescript: Deno.version.typescript, ...deps.versions },
      config: publicConfig(config),
      redis_persistence: deps.redisPersistence?.current ?? null,
      docs: { scalar: "/docs", redoc: "/redoc", openapi: "/openapi.json", ui: "/ui", dashboard: "/admin/queues" },
    }, 200));
}
