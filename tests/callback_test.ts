import assert from "node:assert/strict";
import { isInternalAddress } from "../callbacks/address.ts";
import { sign } from "../callbacks/callback.ts";
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
