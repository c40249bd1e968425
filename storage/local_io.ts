import { fileExists, removeFile, writeAtomically } from "./files.ts";

/** A file opened for reading: its bytes when it was read whole, else a stream. */
export interface OpenedFile {
  body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>;
  size: number;
  modified: Date;
}

/** The file operations of the local store (createLocalStore). */
export interface LocalIo {
  /** Writes bytes atomically (temp file + rename), filling `spare` (an empty file of the same filesystem) if given. */
  writeAtomically(path: string, data: Uint8Array | string, spare?: string): Promise<void>;
  /** A file's bytes, or null when there is none. */
  read(path: string): Promise<Uint8Array | null>;
  /** A file for serving, or null when there is none. */
  open(path: string): Promise<OpenedFile | null>;
  rename(from: string, to: string): Promise<void>;
  /** Empties a file. */
  truncate(path: string): Promise<void>;
  /** Removes a file; whether there was one. */
  remove(path: string): Promise<boolean>;
  exists(path: string): Promise<boolean>;
}

/** FILE_IO_SYNC_MAX_KIB's default, in bytes. */
export const DEFAULT_SYNC_MAX_BYTES = 1024 * 1024;

const encoder = new TextEncoder();

/**
 * The local store's file operations. Files of up to `syncMaxBytes` are read and written on the calling thread, and
 * renames, stats and removals run there too: each asynchronous file operation is a round trip to Deno's blocking
 * thread pool, which on a virtual machine costs more CPU than the operation itself on a local disk (a rename 49 µs
 * against 5, reading 150 KB 207 against 94: docs/performance.md). Larger files, and every operation when
 * `syncMaxBytes` is 0 (a network filesystem, where one may take milliseconds), go through the pool and leave the
 * thread free meanwhile.
 */
export function localIo(syncMaxBytes = DEFAULT_SYNC_MAX_BYTES): LocalIo {
  if (syncMaxBytes <= 0) return asyncIo;
  return {
    writeAtomically(path, data, spare) {
      const bytes = typeof data === "string" ? encoder.encode(data) : data;
      if (bytes.byteLength > syncMaxBytes) return writeAtomically(path, bytes, spare);
      return settled(() => writeAtomicallySync(path, bytes, spare));
    },
    async read(path) {
      const file = openOrNull(path);
      if (!file) return null;
      try {
        const { size } = file.statSync();
        return size > syncMaxBytes ? await readWholeAsync(file, size) : readWhole(file, size);
      } finally {
        file.close();
      }
    },
    open(path) {
      return settled(() => {
        const file = openOrNull(path);
        if (!file) return null;
        let streamed = false;
        try {
          const { size, mtime } = file.statSync();
          const modified = mtime ?? new Date(0);
          // The stream closes the file when it ends or is cancelled.
          if (size > syncMaxBytes) {
            streamed = true;
            return { body: file.readable, size, modified };
          }
          const bytes = readWhole(file, size);
          return { body: bytes, size: bytes.byteLength, modified };
        } finally {
          if (!streamed) file.close();
        }
      });
    },
    rename: (from, to) => settled(() => Deno.renameSync(from, to)),
    truncate: (path) => settled(() => Deno.truncateSync(path, 0)),
    remove: (path) => settled(() => removeFileSync(path)),
    exists: (path) => settled(() => unlessMissing(() => (Deno.statSync(path), true), false)),
  };
}

/** Every operation through Deno's blocking thread pool. */
const asyncIo: LocalIo = {
  writeAtomically,
  async read(path) {
    try {
      return await Deno.readFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
  },
  async open(path) {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    const { size, mtime } = await file.stat();
    return { body: file.readable, size, modified: mtime ?? new Date(0) };
  },
  rename: (from, to) => Deno.rename(from, to),
  truncate: (path) => Deno.truncate(path, 0),
  remove: removeFile,
  exists: fileExists,
};

/** `fn`'s result or error as a promise, so callers see one behaviour whichever way the operation ran. */
function settled<T>(fn: () => T): Promise<Awaited<T>> {
  try {
    return Promise.resolve(fn()) as Promise<Awaited<T>>;
  } catch (err) {
    return Promise.reject(err);
  }
}

/** `fn`'s result, or `missing` when it fails because the file is not there. */
function unlessMissing<T, M>(fn: () => T, missing: M): T | M {
  try {
    return fn();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return missing;
    throw err;
  }
}

const openOrNull = (path: string) => unlessMissing(() => Deno.openSync(path), null);

/** Removes a file; whether there was one. */
const removeFileSync = (path: string) => unlessMissing(() => (Deno.removeSync(path), true), false);

/** Reads an open file to its end (`size` is what stat gave; a file written atomically does not change under us). */
function readWhole(file: Deno.FsFile, size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  let at = 0;
  while (at < size) {
    const n = file.readSync(bytes.subarray(at));
    if (n === null) break;
    at += n;
  }
  return at === size ? bytes : bytes.subarray(0, at);
}

/** As readWhole, each read through Deno's thread pool. */
async function readWholeAsync(file: Deno.FsFile, size: number): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = new Uint8Array(size);
  let at = 0;
  while (at < size) {
    const n = await file.read(bytes.subarray(at));
    if (n === null) break;
    at += n;
  }
  return at === size ? bytes : bytes.subarray(0, at);
}

function writeAtomicallySync(path: string, data: Uint8Array, spare?: string): void {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  if (spare) {
    try {
      Deno.renameSync(spare, tmp);
    } catch {
      try {
        removeFileSync(spare);
      } catch { /* a new file is created instead */ }
    }
  }
  try {
    // Creates the file, or truncates the spare moved here (it is empty already).
    Deno.writeFileSync(tmp, data);
    Deno.renameSync(tmp, path);
  } catch (err) {
    try {
      removeFileSync(tmp);
    } catch { /* the write's error is the one to report */ }
    throw err;
  }
}
