import assert from "node:assert/strict";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { pngWithBrokenData } from "./bombs.ts";
import { fixture } from "./fixtures.ts";
import { sseReader, startTestService, upload, waitForTask } from "./harness.ts";

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
      // Progress never goes backwards, and each state has its own.
      const progress = events.map((e) => e.progress as number);
      assert.deepEqual(progress, [...progress].sort((a, b) => a - b));
      const byState: Record<string, number> = { queued: 0, active: 10, completed: 100 };
      for (const e of events) assert.equal(e.progress, byState[e.state as string], JSON.stringify(e));
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

Deno.test("live status: a task deleted while queued ends the stream with one `gone` event", async (t) => {
  // No worker: the task stays queued, so only the deletion can end its stream.
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  try {
    const { task_id } = await (await upload(svc.base, await fixture("coins.png"), "coins.png")).json();
    const url = `${svc.base}/api/v1/images/status/${task_id}/events`;
    const res = await fetch(url);
    assert.equal(res.status, 200);
    const events = sseReader(res);
    try {
      await t.step("the stream opens with the queued status", async () => {
        const first = await events.next();
        assert.equal(first?.event, "status");
        assert.equal(JSON.parse(first!.data).state, "queued");
      });
      await t.step("DELETE: a final `gone` event with the 404 body, then the stream ends", async () => {
        const del = await fetch(`${svc.base}/api/v1/images/${task_id}`, { method: "DELETE" });
        assert.equal(del.status, 204);
        await del.body?.cancel();
        const gone = await events.next();
        assert.equal(gone?.event, "gone", JSON.stringify(gone));
        const body = JSON.parse(gone!.data);
        assert.equal(body.error.code, "not_found");
        assert.ok(body.error.message.includes(task_id), body.error.message);
        assert.equal(await events.next(), null, "the stream closes after `gone`");
      });
    } finally {
      await events.cancel();
    }
    await t.step("a stream opened after the deletion is a 404, not a stream", async () => {
      const again = await fetch(url);
      assert.equal(again.status, 404);
      assert.equal((await again.json()).error.code, "not_found");
    });
  } finally {
    await svc.close();
  }
});

Deno.test("live status: closing the service ends open streams at once, with a reconnection hint", async () => {
  // No worker: the task stays queued, so nothing but the shutdown ends its stream.
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  let closing: Promise<void> | undefined;
  let events: ReturnType<typeof sseReader> | undefined;
  try {
    const { task_id } = await (await upload(svc.base, await fixture("coins.png"), "coins.png")).json();
    events = sseReader(await fetch(`${svc.base}/api/v1/images/status/${task_id}/events`));
    assert.equal(JSON.parse((await events.next())!.data).state, "queued");
    closing = svc.close();
    const hint = await events.next(5000);
    assert.equal(hint?.retry, "5000", JSON.stringify(hint));
    assert.equal(hint?.event, "", "no event the UI would have to know");
    assert.equal(await events.next(5000), null, "the stream ends");
    // The drain does not count the stream as a request in flight (it would wait DRAIN_TIMEOUT_MS).
    assert.notEqual(await withDeadline(closing, 5000), TIMED_OUT, "the service closes within 5 s");
  } finally {
    // A client going away ends its stream too, so a failed assertion cannot leave the close hanging.
    await events?.cancel();
    await (closing ?? svc.close());
  }
});
