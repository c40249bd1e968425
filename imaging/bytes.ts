/** The parts joined into one new Uint8Array (a plain one, unlike Buffer.concat's Node Buffer). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Buffers below this are left to the collector (and may be slices of Buffer's shared 8 KiB pool). */
const RELEASE_MIN_BYTES = 64 * 1024;

/**
 * Frees a large buffer's memory now instead of at V8's next full collection, by detaching it: a pool member allocates
 * megabytes per image, and until the collector ran, that memory stayed in the process (the load test's worker RSS grew
 * by a quarter). The caller must own the whole buffer and never read it again; WebAssembly memory cannot be detached
 * and is left alone.
 */
export function releaseBuffer(view: ArrayBufferView): void {
  const { buffer } = view;
  if (!(buffer instanceof ArrayBuffer) || buffer.detached || buffer.byteLength < RELEASE_MIN_BYTES) return;
  try {
    buffer.transfer(0);
  } catch {
    // Not detachable (WebAssembly memory): the collector frees it, as before.
  }
}
