import type { MiddlewareHandler } from "hono";
import { BadRequest } from "../errors.ts";

// Option values are short words and numbers; a callback URL is the longest legitimate field.
const MAX_FIELD_BYTES = 4096;

/**
 * Refuses multipart forms the schema alone would accept silently: more than one `file` (the parser would keep one
 * and drop the rest), files under other names, and oversized text fields.
 */
export function requireSingleFileForm(): MiddlewareHandler {
  return async (c, next) => {
    if (!(c.req.header("content-type") ?? "").toLowerCase().startsWith("multipart/form-data")) return next();
    let form: FormData;
    try {
      form = await c.req.formData();
    } catch {
      throw new BadRequest("malformed_form", "the multipart body could not be parsed");
    }
    let files = 0;
    const misplaced: string[] = [];
    for (const [name, value] of form.entries()) {
      if (typeof value === "string") {
        if (new TextEncoder().encode(value).length > MAX_FIELD_BYTES) {
          throw new BadRequest("validation_error", `${name}: longer than ${MAX_FIELD_BYTES} bytes`);
        }
      } else if (name !== "file") misplaced.push(name);
      else files++;
    }
    if (misplaced.length && files === 0) {
      throw new BadRequest(
        "missing_file",
        `file: the form needs a 'file' field holding the image (found a file under '${misplaced[0]}')`,
      );
    }
    if (misplaced.length) {
      throw new BadRequest("validation_error", `${misplaced[0]}: only the field 'file' may hold a file`);
    }
    if (files > 1) throw new BadRequest("too_many_files", `send one image per upload (got ${files} files)`);
    return next();
  };
}
