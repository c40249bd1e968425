import type { Config } from "../config.ts";
import { type AnalysisPool, createAnalysisPool } from "../imaging/pool.ts";
import { type PolygonsMeta, readPolygonsMeta } from "../imaging/polygons.ts";
import { RESULT_EXTENSIONS, resultNames, uploadName } from "../storage/files.ts";
import { createLocalStore, type ObjectStore } from "../storage/object_store.ts";
import { ImageGone } from "./image_gone.ts";

/** Draws lazily rendered annotated images (RENDER=lazy) when they are first requested. */
export interface OnDemandRenderer {
  /**
   * Makes sure the task's annotated image with this extension exists in the store, drawing it from the upload and the
   * result document when missing. False when the task has no such result (not analysed, or another format).
   */
  ensure(taskId: string, extension: string): Promise<boolean>;
}

/**
 * A renderer on the given pool (obtained on first use); one drawing per task at a time in this process, and at most
 * `slots` drawings at once (the pool's members: more could not run anyway).
 */
export function createOnDemandRenderer(
  config: Config,
  pool: () => Promise<AnalysisPool>,
  slots = config.WORKER_CONCURRENCY,
  store: ObjectStore = createLocalStore(config),
): OnDemandRenderer {
  const drawing = new Map<string, Promise<boolean>>();
  // The pool queues requests itself, but each would hold its upload and result document (tens of MB for a noisy
  // image) while it waited: with 32 images requested at once that was 4 GiB. Waiting here, a request holds nothing.
  const limit = createLimit(slots);
  const draw = (taskId: string, extension: string) => limit(() => drawNow(taskId, extension));
  const drawNow = async (taskId: string, extension: string): Promise<boolean> => {
    const stored = resultNames(taskId);
    // The packed polygons when the analysis left them, else the document (a result written without them).
    let drawing = await store.read("results", stored.polygons);
    const packed = drawing !== null;
    drawing ??= await store.read("results", stored.data);
    if (!drawing) return false;
    const { format, options } = packed
      ? readPolygonsMeta(drawing)
      : JSON.parse(new TextDecoder().decode(drawing)) as PolygonsMeta;
    if (RESULT_EXTENSIONS[options.output_format] !== extension) return false;
    const names = resultNames(taskId, options.output_format);
    // Another process may have drawn it since the caller looked.
    if (await store.exists("results", names.image)) return true;
    const upload = await store.read("uploads", uploadName(taskId, format));
    if (!upload) {
      // Another process may have drawn it and removed the upload in between.
      if (await store.exists("results", names.image)) return true;
      throw new ImageGone(taskId);
    }
    const image = await (await pool()).render(upload, drawing, packed);
    // Same bytes whichever process draws it, so concurrent writers are harmless.
    await store.write("results", names.image, image);
    // Needed no more, as with RENDER=eager once the worker wrote the image.
    await store.remove("results", names.polygons);
    if (!config.KEEP_UPLOADS) await store.remove("uploads", uploadName(taskId, format));
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

/** The API's renderer and how to stop the pool it may have started. */
export interface ApiRenderer extends OnDemandRenderer {
  close(): Promise<void>;
}

/**
 * The API process's renderer: on the embedded workers' pool when there is one (`workerPool`), else on a one-member
 * pool of its own, started on the first request that needs it, so an API without workers pays nothing until then.
 */
export function createApiRenderer(config: Config, store: ObjectStore, workerPool?: AnalysisPool): ApiRenderer {
  let ownPool: Promise<AnalysisPool> | undefined;
  const pool = () =>
    workerPool ? Promise.resolve(workerPool) : (ownPool ??= createAnalysisPool(1, config.WORKER_NICE, {
      timeoutMs: config.ANALYSIS_TIMEOUT_MS,
      memberMaxBytes: config.ANALYSIS_MEMBER_MAX_MIB * 2 ** 20,
    }));
  const renderer = createOnDemandRenderer(config, pool, workerPool ? config.WORKER_CONCURRENCY : 1, store);
  return {
    ensure: renderer.ensure,
    async close() {
      // A pool that failed to start has nothing to close.
      (await ownPool?.catch(() => undefined))?.close();
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
