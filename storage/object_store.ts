import { basename, dirname, join } from "node:path";
import type { Config } from "../config.ts";
import { ensureStorageDirs } from "./files.ts";
import { localIo } from "./local_io.ts";

/** The two places objects live: uploads as received, and what the workers make of them. */
export type Area = "uploads" | "results";

/** An object opened for reading: its bytes when a local store read it whole, else a stream. */
export interface StoredObject {
  body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>;
  size: number;
  modified: Date;
}

/** One object of a listing. */
export interface ListedObject {
  name: string;
  /** Last modification, ms since the epoch. */
  modified: number;
}

/**
 * Where uploads and results are kept: folders on a disk (`STORAGE=local`) or a bucket (`STORAGE=s3`). Objects are named
 * by task id and written whole or not at all, so a retried job overwrites its own results and a reader never sees half
 * of one. Knows nothing of HTTP or of the imaging pool; an unreachable store throws {@link StorageUnavailable}.
 */
export interface ObjectStore {
  readonly kind: "local" | "s3";
  /** Checks the store can be used (folders created, bucket reachable); throws a one-line error when not. */
  prepare(): Promise<void>;
  /** Where an object lives, as a job's `upload_path` and an upload's `file_path` name it. */
  locate(area: Area, name: string): string;
  /** Writes an object whole (atomically). */
  write(area: Area, name: string, data: Uint8Array | string): Promise<void>;
  /** Stores the file at `path` (`size` bytes) as an object; the file is consumed (moved or removed). */
  writeFile(area: Area, name: string, path: string, size: number): Promise<void>;
  /** An object's bytes, or null when there is none. */
  read(area: Area, name: string): Promise<Uint8Array | null>;
  /** The bytes at a location {@link locate} returned (a job's upload_path), or null. */
  readAt(location: string): Promise<Uint8Array | null>;
  /** An object for streaming, or null. */
  open(area: Area, name: string): Promise<StoredObject | null>;
  exists(area: Area, name: string): Promise<boolean>;
  /** Removes an object; whether there was one. */
  remove(area: Area, name: string): Promise<boolean>;
  /**
   * Removes the object at a location {@link locate} returned. With `reuse`, a local store may keep the emptied file for
   * a later write to fill (createLocalStore): only for an object nothing can be reading any more.
   */
  removeAt(location: string, options?: { reuse?: boolean }): Promise<boolean>;
  /** Every object of an area. */
  list(area: Area): AsyncIterable<ListedObject>;
  /** A URL that serves the object for `expiresSeconds` without credentials; undefined when the store has none. */
  presignedUrl?(area: Area, name: string, expiresSeconds: number): Promise<string>;
}

/** The store is unreachable or answers with a server error: worth trying again later. */
export class StorageUnavailable extends Error {
  override name = "StorageUnavailable";
}

/** The store the configuration names. */
export async function createObjectStore(config: Config): Promise<ObjectStore> {
  if (config.STORAGE === "s3") {
    // Loaded only when used, so a local deployment never imports the S3 client.
    const { createS3Store } = await import("./s3_store.ts");
    return createS3Store(config);
  }
  return createLocalStore(config);
}

/** Removed uploads a local store keeps, emptied, for its next writes to fill (see createLocalStore). */
export const SPARE_FILES = 16;
/** The name of such a file in the uploads folder. */
export const SPARE_NAME = /^\.spare-[0-9a-f-]{36}$/;

/**
 * Uploads and results as files under UPLOAD_DIR and RESULT_DIR. An upload removed with `reuse` (a worker's, once its
 * task completed and its image is drawn) is not unlinked but emptied and kept, up to SPARE_FILES of them, as
 * `.spare-<uuid>` in the uploads folder, and the next write fills one of those instead of creating a file: each task
 * then creates one file fewer. Creating a file can cost far more CPU than renaming and truncating one
 * (docs/performance.md). Only such uploads: a reader that has the file open would see it emptied, where an unlinked
 * file stays whole for it. A spare holds no bytes, and one that is gone when it is wanted (the retention sweep removes
 * those left by a stopped process) only means a file is created.
 */
export function createLocalStore(
  config: Pick<Config, "UPLOAD_DIR" | "RESULT_DIR"> & Partial<Pick<Config, "FILE_IO_SYNC_MAX_KIB">>,
): ObjectStore {
  const io = localIo(config.FILE_IO_SYNC_MAX_KIB === undefined ? undefined : config.FILE_IO_SYNC_MAX_KIB * 1024);
  const dirs: Record<Area, string> = { uploads: config.UPLOAD_DIR, results: config.RESULT_DIR };
  const path = (area: Area, name: string) => join(dirs[area], basename(name));
  const uploadFolder = dirname(path("uploads", "x"));
  const spares: string[] = [];
  // Results take spares too when both folders are on one filesystem (a rename cannot cross filesystems).
  let resultsTakeSpares = false;
  const takeSpare = (area: Area) => (area === "uploads" || resultsTakeSpares ? spares.pop() : undefined);
  const removeAt = async (p: string, { reuse = false } = {}): Promise<boolean> => {
    if (!reuse || spares.length >= SPARE_FILES || dirname(p) !== uploadFolder || SPARE_NAME.test(basename(p))) {
      return io.remove(p);
    }
    const spare = join(uploadFolder, `.spare-${crypto.randomUUID()}`);
    try {
      // Moved first, so that its name is gone at once, as an unlink would make it.
      await io.rename(p, spare);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      return io.remove(p);
    }
    try {
      await io.truncate(spare);
      spares.push(spare);
    } catch {
      await io.remove(spare).catch(() => false);
    }
    return true;
  };
  return {
    kind: "local",
    async prepare() {
      await ensureStorageDirs({ uploadDir: config.UPLOAD_DIR, resultDir: config.RESULT_DIR });
      const [uploads, results] = await Promise.all([Deno.stat(dirs.uploads), Deno.stat(dirs.results)]);
      resultsTakeSpares = uploads.dev === results.dev;
    },
    locate: path,
    write: (area, name, data) => io.writeAtomically(path(area, name), data, takeSpare(area)),
    writeFile: (area, name, from) => io.rename(from, path(area, name)),
    read: (area, name) => io.read(path(area, name)),
    readAt: (p) => io.read(p),
    open: (area, name) => io.open(path(area, name)),
    exists: (area, name) => io.exists(path(area, name)),
    remove: (area, name) => io.remove(path(area, name)),
    removeAt,
    async *list(area) {
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(dirs[area]));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return;
        throw err;
      }
      for (const e of entries) {
        if (!e.isFile) continue;
        const stat = await Deno.stat(join(dirs[area], e.name)).catch(() => undefined);
        if (stat) yield { name: e.name, modified: stat.mtime?.getTime() ?? 0 };
      }
    },
  };
}
