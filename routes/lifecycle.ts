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
