import assert from "node:assert/strict";
import { Queue } from "bullmq";
import { closeRedis, createRedis } from "../queue/connection.ts";
import { fixture } from "./fixtures.ts";
import { listDir, startTestService, waitForTask } from "./harness.ts";

function send(
  base: string,
  bytes: Uint8Array,
  headers: Record<string, string>,
  fields: Record<string, string> = {},
  name = "coins.png",
): Promise<Response> {
  const form = new FormData();
  form.append("file", new File([bytes as Uint8Array<ArrayBuffer>], name));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form, headers });
}

Deno.test("Idempotency-Key: a retried upload gets the first one's task, nothing is created twice", async (t) => {
  // Uploads stay until their image is drawn on request, so the folder shows what each request stored.
  const svc = await startTestService({ API_KEYS: "key-one,key-two", RENDER: "lazy" });
  const redis = createRedis(svc.config, "worker");
  const queue = new Queue(svc.config.QUEUE_NAME, { connection: redis, prefix: svc.config.QUEUE_PREFIX });
  const coins = await fixture("coins.png");
  const one = { "x-api-key": "key-one" };
  try {
    let first = "";
    await t.step(
      "the same key and upload twice → the same 202 body, replayed, one job and one stored file",
      async () => {
        const key = { ...one, "idempotency-key": crypto.randomUUID() };
        const a = await send(svc.base, coins, key);
        assert.equal(a.status, 202);
        assert.equal(a.headers.get("idempotent-replayed"), null);
        const bodyA = await a.json();
        first = bodyA.task_id;
        assert.equal(a.headers.get("location"), bodyA.status_url);
        const b = await send(svc.base, coins, key);
        assert.equal(b.status, 202);
        assert.equal(b.headers.get("idempotent-replayed"), "true");
        assert.equal(b.headers.get("location"), bodyA.status_url);
        assert.deepEqual(await b.json(), bodyA);
        // Even once the task has finished, a retry still names it.
        assert.equal((await waitForTask(svc.base, first, 30_000, one)).state, "completed");
        const c = await send(svc.base, coins, key);
        assert.equal((await c.json()).task_id, first);
        const counts = await queue.getJobCounts("waiting", "active", "completed", "failed");
        assert.equal(counts.waiting + counts.active + counts.completed + counts.failed, 1, JSON.stringify(counts));
        const uploads = (await listDir(svc.config.UPLOAD_DIR)).filter((f) => !f.startsWith("."));
        assert.deepEqual(uploads, [`${first}.png`], "no second copy, no leftover temp file");
      },
    );

    await t.step("the same key with other options → 422 idempotency_key_reused", async () => {
      const key = { ...one, "idempotency-key": crypto.randomUUID() };
      assert.equal((await (await send(svc.base, coins, key)).json()).status, "queued");
      const res = await send(svc.base, coins, key, { blur: "3" });
      const body = await res.json();
      assert.equal(res.status, 422, JSON.stringify(body));
      assert.equal(body.error.code, "idempotency_key_reused");
      const other = await send(svc.base, await fixture("page.png"), key, {}, "coins.png");
      assert.equal(other.status, 422, "another file under the same name");
      await other.body?.cancel();
    });

    await t.step("a refused upload leaves the key free for the corrected one", async () => {
      const key = { ...one, "idempotency-key": crypto.randomUUID() };
      const bad = await send(svc.base, coins, key, { blur: "4" });
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
      const good = await send(svc.base, coins, key, { blur: "3" });
      assert.equal(good.status, 202);
      await good.body?.cancel();
    });

    await t.step("keys belong to their API key: the same key under another API key is another upload", async () => {
      const id = crypto.randomUUID();
      const a = await (await send(svc.base, coins, { ...one, "idempotency-key": id })).json();
      const b = await (await send(svc.base, coins, { "x-api-key": "key-two", "idempotency-key": id })).json();
      assert.notEqual(a.task_id, b.task_id);
    });

    await t.step(
      "concurrent requests with one key: one task; any other answer is 409 idempotency_key_in_use",
      async () => {
        const key = { ...one, "idempotency-key": crypto.randomUUID() };
        const answers = await Promise.all(Array.from({ length: 6 }, () => send(svc.base, coins, key)));
        const ids = new Set<string>();
        for (const res of answers) {
          const body = await res.json();
          if (res.status === 202) ids.add(body.task_id);
          else assert.deepEqual([res.status, body.error.code], [409, "idempotency_key_in_use"]);
        }
        assert.equal(ids.size, 1, [...ids].join(", "));
      },
    );

    await t.step("a malformed key → 400 validation_error naming the header", async () => {
      for (const bad of ["x".repeat(256), "with space"]) {
        const res = await send(svc.base, coins, { ...one, "idempotency-key": bad });
        const body = await res.json();
        assert.equal(res.status, 400);
        assert.equal(body.error.code, "validation_error");
        assert.match(body.error.message, /^Idempotency-Key: /);
      }
    });
    assert.ok(first);
  } finally {
    await queue.close();
    await closeRedis(redis);
    await svc.close();
  }
});
