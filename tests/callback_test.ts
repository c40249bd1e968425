import assert from "node:assert/strict";
import { isInternalAddress } from "../callbacks/address.ts";
import { createCallbackQueue, enqueueCallback, sign, startCallbackWorker } from "../callbacks/callback.ts";
import { closeRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue, getTaskStatus } from "../queue/contour_queue.ts";
import { startContourWorker } from "../worker.ts";
import { pngWithBrokenData } from "./bombs.ts";
import { fixture } from "./fixtures.ts";
import { startTestService } from "./harness.ts";

const SECRET = "test-secret-0123456789";

interface Received {
  body: string;
  signature: string | null;
}

/** A loopback receiver that fails the first `failFirst` deliveries with 500. */
function receiver(failFirst = 0) {
  const received: Received[] = [];
  let calls = 0;
  const waiters: (() => void)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    calls++;
    const body = await req.text();
    if (calls <= failFirst) return new Response("not yet", { status: 500 });
    received.push({ body, signature: req.headers.get("x-signature-256") });
    waiters.splice(0).forEach((w) => w());
    return new Response("ok");
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    received,
    calls: () => calls,
    async next(timeoutMs = 20_000): Promise<Received> {
      const until = Date.now() + timeoutMs;
      const before = received.length;
      while (received.length === before && Date.now() < until) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 200);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      assert.ok(received.length > before, `no callback within ${timeoutMs} ms`);
      return received[received.length - 1];
    },
    close: () => server.shutdown(),
  };
}

async function uploadWithCallback(base: string, bytes: Uint8Array, callback: string): Promise<Response> {
  const form = new FormData();
  form.append("file", new File([bytes as Uint8Array<ArrayBuffer>], "img.png"));
  form.append("callback_url", callback);
  return await fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
}

Deno.test("callbacks: signed POST of the final status, retried, SSRF-guarded", async (t) => {
  const svc = await startTestService({ CALLBACK_SECRET: SECRET, CALLBACK_ALLOWED_HOSTS: "127.0.0.1" });
  const hook = receiver(1);
  try {
    await t.step("completed: the body is the final status, the signature verifies, a 500 was retried", async () => {
      const res = await uploadWithCallback(svc.base, await fixture("coins.png"), hook.url);
      assert.equal(res.status, 202);
      const { task_id } = await res.json();
      const got = await hook.next();
      const status = JSON.parse(got.body);
      assert.equal(status.task_id, task_id);
      assert.equal(status.state, "completed");
      assert.equal(status.result.contour_count, 61);
      assert.equal(got.signature, `sha256=${await sign(SECRET, got.body)}`);
      assert.equal(hook.calls(), 2, "the first delivery got a 500 and was retried");
    });
    await t.step("failed: the callback carries the error", async () => {
      const broken = pngWithBrokenData(await fixture("coins.png"));
      const res = await uploadWithCallback(svc.base, broken, hook.url);
      const { task_id } = await res.json();
      const status = JSON.parse((await hook.next()).body);
      assert.equal(status.task_id, task_id);
      assert.equal(status.state, "failed");
      assert.equal(status.error.code, "corrupt_image");
    });
    await t.step(
      "refused at upload: other schemes, credentials, internal addresses not on the allow-list",
      async () => {
        for (
          const url of [
            "ftp://example.com/x",
            "http://user:pw@example.com/",
            "http://10.0.0.8/x",
            "http://localhost:9/x",
            "http://[::1]/x",
            "not a url",
          ]
        ) {
          const res = await uploadWithCallback(svc.base, await fixture("coins.png"), url);
          const body = await res.json();
          assert.equal(res.status, 400, url);
          assert.match(body.error.message, /^callback_url:/, url);
        }
      },
    );
  } finally {
    await svc.close();
    await hook.close();
  }
});

/** Polls `read` until it returns `want`, failing after `ms`. */
async function until<T>(read: () => Promise<T>, want: T, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last = await read();
  while (last !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = await read();
  }
  assert.equal(last, want);
}

Deno.test("callbacks: one queued before its task ended waits for the end, then is sent once", async (t) => {
  // No embedded worker: the task stays queued until this test starts one.
  const svc = await startTestService({
    CALLBACK_SECRET: SECRET,
    CALLBACK_ALLOWED_HOSTS: "127.0.0.1",
    EMBEDDED_WORKER: "false",
  });
  const hook = receiver();
  const redis = createRedis(svc.config, "worker");
  const senderConnection = createRedis(svc.config, "worker");
  const callbacks = createCallbackQueue(svc.config, redis);
  const tasks = createContourQueue(svc.config, redis);
  const sender = startCallbackWorker(svc.config, senderConnection, (id) => getTaskStatus(tasks, id));
  let worker: Awaited<ReturnType<typeof startContourWorker>> | undefined;
  try {
    const res = await uploadWithCallback(svc.base, await fixture("coins.png"), hook.url);
    const { task_id } = await res.json();
    await t.step(
      "queued while the task is unfinished (as a worker that died after queueing it leaves it): it waits",
      async () => {
        await enqueueCallback(callbacks, svc.config, { task_id, url: hook.url });
        await until(() => callbacks.getJobState(task_id), "delayed");
        assert.equal(hook.calls(), 0);
        assert.equal((await getTaskStatus(tasks, task_id))?.state, "queued");
      },
    );
    await t.step(
      "the task ends: the final status is sent, once, though the worker queues the callback again",
      async () => {
        worker = await startContourWorker(svc.config);
        const status = JSON.parse((await hook.next()).body);
        assert.equal(status.task_id, task_id);
        assert.equal(status.state, "completed");
        await until(() => callbacks.getJobState(task_id), "completed");
        assert.equal(hook.calls(), 1);
        assert.equal((await callbacks.getJobCounts("completed", "delayed", "waiting", "active")).completed, 1);
      },
    );
    await t.step("a task that no longer exists: the callback is dropped, not sent", async () => {
      await enqueueCallback(callbacks, svc.config, { task_id: "no-such-task", url: hook.url });
      await until(() => callbacks.getJobState("no-such-task"), "completed");
      assert.equal(hook.calls(), 1);
    });
  } finally {
    await worker?.close(1000);
    await sender.close();
    await callbacks.close();
    await tasks.close();
    await closeRedis(senderConnection);
    await closeRedis(redis);
    await svc.close();
    await hook.close();
  }
});

Deno.test("callbacks: refused when no CALLBACK_SECRET is configured", async () => {
  const svc = await startTestService();
  try {
    const res = await uploadWithCallback(svc.base, await fixture("coins.png"), "https://example.com/hook");
    const body = await res.json();
    assert.equal(res.status, 400);
    assert.equal(body.error.code, "callbacks_disabled");
  } finally {
    await svc.close();
  }
});

Deno.test("internal addresses", () => {
  for (
    const ip of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "::1",
      "fd00::1",
      "fe80::1",
      "::ffff:10.0.0.1",
    ]
  ) {
    assert.ok(isInternalAddress(ip), ip);
  }
  for (const ip of ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "172.32.0.1"]) assert.ok(!isInternalAddress(ip), ip);
});
