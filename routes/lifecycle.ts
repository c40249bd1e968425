import type { Lifecycle } from "./deps.ts";

/** Calls `end` once draining starts (at once if it already has); returns a function that cancels the registration. */
export function onDrain(lifecycle: Lifecycle | undefined, end: () => void): () => void {
  if (!lifecycle) return () => {};
  if (lifecycle.draining) {
    end();
    return () => {};
  }
  const hooks = lifecycle.drainHooks ??= new Set();
  hooks.add(end);
  return () => hooks.delete(end);
}

/** Starts a graceful shutdown: new requests are refused, and long-lived responses (event streams) are told to end. */
export function startDraining(lifecycle: Lifecycle): void {
  lifecycle.drainingSince ??= performance.now();
  lifecycle.draining = true;
  const hooks = [...lifecycle.drainHooks ?? []];
  lifecycle.drainHooks?.clear();
  for (const end of hooks) end();
}

/**
 * Waits until no request is in flight (`lifecycle.inFlight`, plus `pending()`: requests the HTTP server has begun
 * reading), or `timeoutMs`. It looks only after a turn of the event loop, so bytes that had arrived are read first: a
 * request whose head is still on its way through the HTTP server counts as in flight rather than being cut off.
 */
export async function waitForRequests(lifecycle: Lifecycle, pending: () => number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  do {
    await new Promise((r) => setTimeout(r, 20));
  } while ((lifecycle.inFlight > 0 || pending() > 0) && Date.now() < until);
}
