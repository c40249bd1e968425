import assert from "node:assert/strict";
import { startTestService } from "./harness.ts";

function post(base: string, headers: Record<string, string> = {}): Promise<Response> {
  const form = new FormData();
  form.append("file", new File([new TextEncoder().encode("not an image")], "x.png"));
  return fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form, headers });
}

Deno.test("rate limit: per client, shared by every API process through Redis, 429 with Retry-After", async (t) => {
  // An hour-long window, so the four requests cannot straddle a window boundary.
  const a = await startTestService({ RATE_LIMIT: "3", RATE_LIMIT_WINDOW: "3600", EMBEDDED_WORKER: "false" });
  // A second API process on the same Redis and prefix: the limit must hold across both.
  const b = await startTestService({
    RATE_LIMIT: "3",
    RATE_LIMIT_WINDOW: "3600",
    EMBEDDED_WORKER: "false",
    QUEUE_PREFIX: a.config.QUEUE_PREFIX,
  });
  try {
    await t.step("the fourth upload in the window is refused, whichever API process takes it", async () => {
      const statuses = [];
      for (const base of [a.base, b.base, a.base]) {
        const res = await post(base);
        statuses.push(res.status);
        assert.ok(res.headers.get("ratelimit-remaining") !== null);
        await res.body?.cancel();
      }
      assert.deepEqual(statuses, [400, 400, 400]);
      const res = await post(b.base);
      const body = await res.json();
      assert.equal(res.status, 429);
      assert.equal(body.error.code, "rate_limited");
      const retry = Number(res.headers.get("retry-after"));
      assert.ok(retry >= 1 && retry <= 3600, `Retry-After ${retry}`);
    });
    await t.step("another client (another API key) has its own budget; reads are not limited", async () => {
      const res = await post(a.base, { "x-api-key": "someone-else" });
      assert.equal(res.status, 400);
      await res.body?.cancel();
      const read = await fetch(`${a.base}/api/v1/images/results`);
      assert.equal(read.status, 200);
      await read.body?.cancel();
    });
  } finally {
    await b.close();
    await a.close();
  }
});
