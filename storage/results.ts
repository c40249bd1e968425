import { RESULT_EXTENSIONS, resultNames } from "./files.ts";
import type { ObjectStore } from "./object_store.ts";

const FORMATS = Object.keys(RESULT_EXTENSIONS) as (keyof typeof RESULT_EXTENSIONS)[];

/** Removes a task's result document, its packed polygons and its annotated image in every output format. */
export async function removeResults(store: ObjectStore, taskId: string): Promise<void> {
  await store.remove("results", resultNames(taskId).polygons);
  await store.remove("results", resultNames(taskId).data);
  for (const format of FORMATS) await store.remove("results", resultNames(taskId, format).image);
}

/** Whether the task's annotated image exists, in either output format. */
export async function imageStored(store: ObjectStore, taskId: string): Promise<boolean> {
  for (const format of FORMATS) {
    if (await store.exists("results", resultNames(taskId, format).image)) return true;
  }
  return false;
}
