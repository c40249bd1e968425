import { Unavailable } from "../errors.ts";
import { log } from "../log.ts";
import { StorageUnavailable } from "../storage/object_store.ts";

/** The 503 for an unreachable object store: nothing was stored, so trying again later is safe. */
export function storageUnavailable(): Unavailable {
  return new Unavailable("object storage is not reachable; try again shortly");
}

/**
 * Runs storage work and says what went wrong in the API's terms: an unreachable or failing store (STORAGE=s3) is a 503
 * with Retry-After; the store's own words (its address, its error codes) go to the log, not to the client.
 */
export async function fromStorage<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof StorageUnavailable)) throw err;
    log("warn", "object storage unavailable", { error: err.message });
    throw storageUnavailable();
  }
}
