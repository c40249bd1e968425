/** What `withDeadline` returns when the deadline passed first. */
export const TIMED_OUT: unique symbol = Symbol("timed out");

/** Waits for `work` at most `ms` milliseconds; the timer is always cleared, so nothing outlives the call. */
export async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([work, new Promise<typeof TIMED_OUT>((r) => timer = setTimeout(() => r(TIMED_OUT), ms))]);
  } finally {
    clearTimeout(timer);
  }
}
