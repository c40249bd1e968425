import assert from "node:assert/strict";
import { pngWithBrokenData } from "./bombs.ts";
import { fixture } from "./fixtures.ts";
import { startTestService, upload, waitForTask } from "./harness.ts";

/** Reads a whole SSE response (it ends by itself) into its `status` events. */
async function readEvents(res: Response, timeoutMs = 30_000): Promise<Record<string, unknown>[]> {
  const abort = setTimeout(() => res.body?.cancel(), timeoutMs);
  try {
    const text = await res.text();
    return text.split("\n\n").filter((b) => b.includes("event: status")).map((block) => {
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      return JSON.parse(data);
    });
  } finally {
    clearTimeout(abort);
  }
}

Deno.test("live status over Server-Sent Events", async (t) => {
  const svc = await startTestService();
  try {
    await t.step("a new task streams its changes and the stream ends at completed", async () => {
      const up = await upload(svc.base, await fixture("hubble_deep_field.jpg"), "hubble.jpg");
      const { task_id } = await up.json();
      const res = await fetch(`${svc.base}/api/v1/images/status/${task_id}/events`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
      const events = await readEvents(res);
      assert.ok(events.length >= 1);
      const last = events.at(-1)!;
      assert.equal(last.state, "completed", JSON.stringify(events.map((e) => e.state)));
      assert.equal(last.progress, 100);
      assert.ok((last.result as { contour_count: number }).contour_count > 0);
      // Progress never goes backwards.
      const progress = events.map((e) => e.progress as number);
      assert.deepEqual(progress, [...progress].sort((a, b) => a - b));
    });
    await t.step("a finished task sends its final status once and closes", async () => {
      const up = await upload(svc.base, await fixture("coins.png"), "coins.png");
      const { task_id } = await up.json();
      await waitForTask(svc.base, task_id);
      const events = await readEvents(await fetch(`${svc.base}/api/v1/images/status/${task_id}/events`));
      assert.equal(events.length, 1);
      assert.equal(events[0].state, "completed");
    });
    await t.step("a failing task ends with failed and its reason", async () => {
      const broken = pngWithBrokenData(await fixture("coins.png"));
      const up = await upload(svc.base, broken, "broken.png");
      const { task_id } = await up.json();
      const events = await readEvents(await fetch(`${svc.base}/api/v1/images/status/${task_id}/events`));
      assert.equal(events.at(-1)!.state, "failed");
      assert.equal((events.at(-1)!.error as { code: string }).code, "corrupt_image");
    });
    await t.step("unknown task → 404 JSON, not a stream", async () => {
      const res = await fetch(`${svc.base}/api/v1/images/status/${crypto.randomUUID()}/events`);
      assert.equal(res.status, 404);
      assert.equal((await res.json()).error.code, "not_found");
    });
  } finally {
    await svc.close();
  }
});
