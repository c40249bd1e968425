import { join } from "node:path";
import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import { EXTENSIONS, type ImageFormat } from "../imaging/format.ts";
import type { AnalysisPool } from "../imaging/pool.ts";
import { fileExists, removeFile, RESULT_EXTENSIONS, resultFiles, writeAtomically } from "./files.ts";

/** Draws lazily rendered annotated images (RENDER=lazy) when they are first requested. */
export interface OnDemandRenderer {
  /**
   * Makes sure the task's annotated image with this extension exists in RESULT_DIR, drawing it from the upload and the
   * result document when missing. False when the task has no such result (not analysed, or another format).
   */
  ensure(taskId: string, extension: string): Promise<boolean>;
}

/** 410: the result's image was never drawn and the upload it would be drawn from is gone. */
export class ImageGone extends AppError {
  constructor(taskId: string) {
    super(
      "image_gone",
      `the annotated image of ${taskId} was never drawn and its upload no longer exists; the contour data is still ` +
        `available`,
    );
  }
}

/**
 * A renderer on the given pool (obtained on first use); one drawing per task at a time in this process, and at most
 * `slots` drawings at once (the pool's members: more could not run anyway).
 */
export function createOnDemandRenderer(
  config: Config,
  pool: () => Promise<AnalysisPool>,
  slots = config.WORKER_CONCURRENCY,
): OnDemandRenderer {
  const drawing = new Map<string, Promise<boolean>>();
  // The pool queues requests itself, but each would hold its upload and result document (tens of MB for a noisy
  // image) while it waited: with 32 images requested at once that was 4 GiB. Waiting here, a request holds nothing.
  const limit = createLimit(slots);
  const draw = (taskId: string, extension: string) => limit(() => drawNow(taskId, extension));
  const drawNow = async (taskId: string, extension: string): Promise<boolean> => {
    const document = await readIfExists(resultFiles(config.RESULT_DIR, taskId).data);
    if (!document) return false;
    const { format, options } = JSON.parse(new TextDecoder().decode(document)) as {
      format: ImageFormat;
      options: { output_format: keyof typeof RESULT_EXTENSIONS };
    };
    if (RESULT_EXTENSIONS[options.output_format] !== extension) return false;
    const files = resultFiles(config.RESULT_DIR, taskId, options.output_format);
    // Another process may have drawn it since the caller looked.
    if (await fileExists(files.image)) return true;
    const uploadPath = join(config.UPLOAD_DIR, `${taskId}.${EXTENSIONS[format]}`);
    const upload = await readIfExists(uploadPath);
    if (!upload) {
      // Another process may have drawn it and removed the upload in between.
      if (await fileExists(files.image)) return true;
      throw new ImageGone(taskId);
    }
    const image = await (await pool()).render(upload, document);
    // Same bytes whichever process draws it, so concurrent writers are harmless.
    await writeAtomically(files.image, image);
    // Needed no more, as with RENDER=eager once the worker wrote the image.
    if (!config.KEEP_UPLOADS) await removeFile(uploadPath);
    return true;
  };
  return {
    ensure(taskId, extension) {
      const key = `${taskId}.${extension}`;
      let pending = drawing.get(key);
      if (!pending) {
        pending = draw(taskId, extension).finally(() => drawing.delete(key));
        drawing.set(key, pending);
      }
      return pending;
    },
  };
}

/** Runs at most `slots` of the functions given at once; the rest wait in order. */
function createLimit(slots: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (running >= slots) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next in line, so `running` counts it still taken.
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}

/** The file's bytes; null when it does not exist. */
async function readIfExists(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}
