import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { NotFound } from "../errors.ts";
import { createLocalStore, type ObjectStore } from "../storage/object_store.ts";
import type { OnDemandRenderer } from "../rendering/render_on_demand.ts";
import { ContoursSchema } from "./images.ts";
import { documentedError, NO_SECURITY } from "./schemas.ts";
import { fromStorage } from "./storage_errors.ts";

// Only names the worker writes are served, so no path can reach outside RESULT_DIR.
const RESULT_NAME = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(png|jpg|json)$/;
const TYPES: Record<string, string> = { png: "image/png", jpg: "image/jpeg", json: "application/json" };

const resultRoute = createRoute({
  method: "get",
  path: "/static/results/{name}",
  operationId: "getResultFile",
  tags: ["images"],
  summary: "A result file: the annotated image or the contour data",
  description: "`{task_id}.png` (or `.jpg` with output_format=jpeg) is the annotated image, drawn on its first " +
    "request when RENDER=lazy; `{task_id}.json` is the result document. Served with an ETag and Last-Modified: " +
    "send them back (If-None-Match, If-Modified-Since) for a 304. No API key is asked for, with or without " +
    "API_KEYS: the name holds the task's id, a random UUID.",
  security: NO_SECURITY,
  request: {
    params: z.object({
      name: z.string().regex(RESULT_NAME).openapi({
        param: { name: "name", in: "path" },
        example: "3b241101-e2bb-4255-8caf-4136c566a962.png",
      }),
    }),
  },
  responses: {
    200: {
      description: "The file",
      content: {
        "image/png": { schema: z.string().openapi({ format: "binary" }) },
        "image/jpeg": { schema: z.string().openapi({ format: "binary" }) },
        "application/json": { schema: ContoursSchema },
      },
    },
    304: { description: "Not modified since the ETag or date the client sent" },
    307: {
      description: "With STORAGE=s3 and S3_PRESIGNED_RESULTS=true: the file is at a presigned URL of the bucket, " +
        "valid for S3_PRESIGNED_EXPIRY_SECONDS",
      headers: { Location: { description: "The presigned URL", schema: { type: "string" } } },
    },
    ...documentedError(404, "No such result", [["not_found", "no such result file"]]),
    ...documentedError(410, "Never drawn, and the upload it would be drawn from is gone", [
      ["image_gone", "the annotated image was never drawn and the upload it is drawn from has been removed"],
    ]),
    ...documentedError(503, "The object storage (STORAGE=s3) is not reachable (Retry-After says when to try again)", [
      ["service_unavailable", "object storage is not reachable; try again shortly"],
    ]),
    ...documentedError(507, "The disk is full: the image could not be drawn (Retry-After says when to try again)", [
      ["insufficient_storage", "the server has no storage space left for this request; retry later"],
    ]),
  },
});

/**
 * Registers `/static/results/{name}`: the annotated images and contour data, from RESULT_DIR or the store given. An
 * annotated image not drawn yet (RENDER=lazy) is drawn by `renderer` on its first request, so `result_url` always
 * serves it. With `presignSeconds` (S3_PRESIGNED_RESULTS) the answer is a redirect to a presigned URL of the object.
 */
export function registerStaticRoutes(
  app: OpenAPIHono,
  where: string | ObjectStore,
  renderer?: OnDemandRenderer,
  presignSeconds?: number,
): void {
  const store = typeof where === "string" ? createLocalStore({ UPLOAD_DIR: where, RESULT_DIR: where }) : where;
  // Documented only: the handler below reads the name itself, so a bad one is a 404 like any missing file.
  app.openAPIRegistry.registerPath(resultRoute);
  app.get("/static/results/:name", async (c) => {
    const name = c.req.param("name");
    const m = RESULT_NAME.exec(name);
    if (!m) throw new NotFound("no such result file");
    const [, taskId, extension] = m;
    if (presignSeconds && store.presignedUrl) {
      const url = await fromStorage(async () => {
        let there = await store.exists("results", name);
        if (!there && extension !== "json" && renderer) there = await renderer.ensure(taskId, extension);
        return there ? await store.presignedUrl!("results", name, presignSeconds) : null;
      });
      if (!url) throw new NotFound("no such result file");
      // Never cached: the URL expires, and a deleted result must stop being offered at once.
      c.header("cache-control", "no-store");
      return c.redirect(url, 307);
    }
    const open = () => fromStorage(() => store.open("results", name));
    let file = await open();
    if (!file && extension !== "json" && renderer && await fromStorage(() => renderer.ensure(taskId, extension))) {
      file = await open();
    }
    if (!file) throw new NotFound("no such result file");
    const { size } = file;
    const modified = file.modified;
    const etag = `W/"${size.toString(16)}-${modified.getTime().toString(16)}"`;
    const headers = {
      etag,
      "last-modified": modified.toUTCString(),
      // Revalidated on every use (a 304 costs nothing), so a deleted result stops being served from caches at once.
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "content-security-policy": "default-src 'none'; sandbox",
    };
    if (notModified(c.req.header("if-none-match"), c.req.header("if-modified-since"), etag, modified)) {
      if (file.body instanceof ReadableStream) await file.body.cancel();
      return c.body(null, 304, headers);
    }
    return c.body(file.body, 200, { ...headers, "content-type": TYPES[extension], "content-length": String(size) });
  });
}

/** Whether the client's copy is current (RFC 9110: If-None-Match, when present, decides alone). */
function notModified(ifNoneMatch: string | undefined, ifModifiedSince: string | undefined, etag: string, at: Date) {
  if (ifNoneMatch !== undefined) {
    const weak = (tag: string) => tag.trim().replace(/^W\//, "");
    return ifNoneMatch.trim() === "*" || ifNoneMatch.split(",").some((tag) => weak(tag) === weak(etag));
  }
  if (ifModifiedSince === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  // HTTP dates have whole seconds; the file's time has milliseconds.
  return !Number.isNaN(since) && Math.floor(at.getTime() / 1000) * 1000 <= since;
}
