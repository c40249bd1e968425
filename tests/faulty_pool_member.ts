/// <reference lib="deno.worker" />
// An analysis pool member for tests: the real one, except that an analysis whose header holds `fault` misbehaves as a
// broken member would. "crash" ends the thread with an uncaught error; "hang" never answers (as a member waiting on
// something that never comes). Not a busy loop: Deno 2.9 cannot end a Web Worker stuck in synchronous code
// (https://github.com/denoland/deno/pull/35657), so such a thread would outlive the test.
import "../imaging/pool_worker.ts";

// The real member's handler is an arrow function: it needs no `this`.
const member = self.onmessage as (e: MessageEvent) => unknown;

self.onmessage = (e: MessageEvent<{ kind: string; header?: { fault?: string } }>) => {
  const fault = e.data.kind === "analyse" ? e.data.header?.fault : undefined;
  if (fault === "crash") throw new Error("simulated crash of a pool member");
  if (fault === "hang") return;
  return member(e);
};
