import type { OpenAPIHono } from "@hono/zod-openapi";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NotFound } from "../errors.ts";

const UI_DIR = fileURLToPath(new URL("../static/ui/", import.meta.url));

// The pattern is the whole safety of the asset route: no slashes or dots beyond the extension, so no path escapes.
const ASSET_NAME = /^[a-z0-9_-]+\.(js|css|svg)$/;

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

// The pages run only their own module scripts and talk only to this server; blob: is the preview of a picked file.
const PAGE_CSP = [
  "default-src 'self'",
  "img-src 'self' blob: data:",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

async function readUiFile(name: string): Promise<Uint8Array<ArrayBuffer>> {
  try {
    // Read per request: the files are small, and edits show up without a restart.
    return await Deno.readFile(join(UI_DIR, name));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new NotFound(`no such file: ${name}`);
    throw err;
  }
}

function serve(bytes: Uint8Array<ArrayBuffer>, ext: string, extra: Record<string, string> = {}): Response {
  return new Response(bytes, {
    headers: {
      "content-type": TYPES[ext],
      "x-content-type-options": "nosniff",
      // Revalidated every time, so a deploy never mixes an old page with new scripts.
      "cache-control": "no-cache",
      ...extra,
    },
  });
}

/** Registers the try-it pages `/ui` and `/ui/results` and their assets under `/ui/assets/{name}`. */
export function registerUiRoutes(app: OpenAPIHono): void {
  app.get("/ui", async () => serve(await readUiFile("index.html"), "html", { "content-security-policy": PAGE_CSP }));
  app.get("/ui/", (c) => c.redirect("/ui"));
  app.get(
    "/ui/results",
    async () => serve(await readUiFile("results.html"), "html", { "content-security-policy": PAGE_CSP }),
  );
  app.get("/ui/assets/:name", async (c) => {
    const name = c.req.param("name");
    const m = ASSET_NAME.exec(name);
    if (!m) throw new NotFound(`no such asset: ${name}`);
    return serve(await readUiFile(name), m[1]);
  });
}
