import { EXTENSIONS, type ImageFormat } from "../imaging/format.ts";

/** Where the service keeps uploads and results. */
export interface StorageDirs {
  uploadDir: string;
  resultDir: string;
}

/** Creates the storage folders when missing. */
export async function ensureStorageDirs(dirs: StorageDirs): Promise<void> {
  await Deno.mkdir(dirs.uploadDir, { recursive: true });
  await Deno.mkdir(dirs.resultDir, { recursive: true });
}

/** Whether a file exists. */
export function fileExists(path: string): Promise<boolean> {
  return Deno.stat(path).then(() => true, (err) => {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  });
}

/** Removes a file, ignoring one that is already gone; whether there was one to remove. */
export async function removeFile(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    return false;
  }
}

/**
 * Writes bytes atomically (temp file + rename), so readers never see half a result. With `spare`, an empty file of
 * the same filesystem, that file becomes the temp file instead of a new one being created; a spare that is gone (or
 * cannot be moved there) is removed if it can be and a new file is created as usual.
 */
export async function writeAtomically(path: string, data: Uint8Array | string, spare?: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  if (spare) {
    await Deno.rename(spare, tmp).catch(() => removeFile(spare).catch(() => {}));
  }
  try {
    // Creates the file, or truncates the spare moved here (it is empty already).
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (err) {
    await removeFile(tmp);
    throw err;
  }
}

/** The object name of a task's upload (in the uploads area of an ObjectStore). */
export function uploadName(taskId: string, format: ImageFormat): string {
  return `${taskId}.${EXTENSIONS[format]}`;
}

/** Extension of the annotated image for each output format. */
export const RESULT_EXTENSIONS = { png: "png", jpeg: "jpg" } as const;

/** The object names of one task's result (in the results area of an ObjectStore). */
export function resultNames(
  taskId: string,
  format: keyof typeof RESULT_EXTENSIONS = "png",
): { image: string; data: string; polygons: string } {
  return { image: `${taskId}.${RESULT_EXTENSIONS[format]}`, data: `${taskId}.json`, polygons: `${taskId}.polygons` };
}
