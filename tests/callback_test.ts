import assert from "node:assert/strict";
import { UnrecoverableError } from "bullmq";
import { isInternalAddress } from "../net/address.ts";
import { createCallbackQueue, enqueueCallback, startCallbackWorker } from "../callbacks/callback_queue.ts";
import { assertDeliverable, validateCallbackUrl } from "../callbacks/callback_url.ts";
import { deliverCallback } from "../callbacks/delivery.ts";
import { sign } from "../callbacks/signature.ts";
import { parseConfig } from "../config.ts";
import { BadRequest } from "../errors.ts";
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

/** IPv6 forms that carry an internal IPv4 address (or are special-purpose), as a client would write them. */
const INTERNAL_IPV6 = [
  "::ffff:127.0.0.1",
  "::ffff:7f00:1",
  "0:0:0:0:0:ffff:7f00:1",
  "::ffff:169.254.169.254",
  "::ffff:10.0.0.1",
  "::ffff:192.168.1.1",
  "::ffff:0:127.0.0.1", // IPv4-translated (SIIT)
  "64:ff9b::7f00:1", // NAT64 well-known prefix
  "64:ff9b::169.254.169.254",
  "64:ff9b:1::a00:1", // NAT64 local-use
  "::127.0.0.1", // IPv4-compatible
  "::a9fe:a9fe",
  "2002:7f00:1::1", // 6to4 of 127.0.0.1
  "2002:a9fe:a9fe::", // 6to4 of 169.254.169.254
  "2002:c0a8:101::1", // 6to4 of 192.168.1.1
  "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
  "2001:db8::1",
  "::",
  "::1",
  "fc00::1",
  "fe80::1",
  "fec0::1",
  "ff02::1",
  "100::1",
];

/** Public addresses written as IPv6, which callbacks may reach. */
const PUBLIC_IPV6 = [
  "2606:4700:4700::1111",
  "2001:4860:4860::8888",
  "::ffff:8.8.8.8",
  "64:ff9b::808:808",
  "2002:808:808::1",
];

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
      "192.0.0.8",
      "192.0.2.1",
      "198.51.100.7", // documentation
      "203.0.113.9", // documentation
      "198.18.0.1", // benchmarking
      "255.255.255.255",
      "127.1", // a lenient IPv4 form no resolver returns
      "::1",
      "fd00::1",
      "fe80::1",
      "::ffff:10.0.0.1",
      "[::ffff:7f00:1]",
      "not an address",
      "1::2::3",
      "::ffff:300.0.0.1",
      ...INTERNAL_IPV6,
    ]
  ) {
    assert.ok(isInternalAddress(ip), ip);
  }
  for (
    const ip of [
      "8.8.8.8",
      "93.184.216.34",
      "192.0.78.9",
      "2606:4700::1111",
      "172.32.0.1",
      "[2606:4700::1111]",
      ...PUBLIC_IPV6,
    ]
  ) {
    assert.ok(!isInternalAddress(ip), ip);
  }
});

Deno.test("callbacks: IPv6 forms of internal addresses are refused at upload, public ones accepted", async (t) => {
  // No allow-list, as in production; no worker, so that accepted uploads send nothing.
  const svc = await startTestService({ CALLBACK_SECRET: SECRET, EMBEDDED_WORKER: "false" });
  try {
    await t.step("refused with 400, like 127.0.0.1", async () => {
      for (const url of ["http://127.0.0.1:8799/e", ...INTERNAL_IPV6.map((ip) => `http://[${ip}]:8799/e`)]) {
        const res = await uploadWithCallback(svc.base, await fixture("coins.png"), url);
        const body = await res.json();
        assert.equal(res.status, 400, url);
        assert.equal(body.error.code, "validation_error", url);
        assert.match(
          body.error.message,
          /^callback_url: \S+ is an internal address \(not in CALLBACK_ALLOWED_HOSTS\)$/,
          url,
        );
      }
    });
    await t.step("accepted: public IPv6, and public IPv4 written as IPv6", async () => {
      for (const ip of PUBLIC_IPV6) {
        const res = await uploadWithCallback(svc.base, await fixture("coins.png"), `https://[${ip}]/hook`);
        await res.body?.cancel();
        assert.equal(res.status, 202, ip);
      }
    });
  } finally {
    await svc.close();
  }
});

Deno.test("callbacks: CALLBACK_ALLOWED_HOSTS lets an internal address through, in any spelling, at upload and send", async () => {
  const config = parseConfig({
    CALLBACK_SECRET: SECRET,
    CALLBACK_ALLOWED_HOSTS: "::1,[::ffff:127.0.0.1],hook.internal",
  });
  // Allowed names are still resolved, so that the delivery connects to the addresses looked up, but not refused.
  const internalDns = () => Promise.resolve(["10.1.2.3"]);
  for (
    const raw of ["http://[::1]/x", "http://[0:0::1]/x", "http://[::ffff:7f00:1]:8799/e", "http://hook.internal/x"]
  ) {
    const url = validateCallbackUrl(config, raw);
    const addresses = await assertDeliverable(config, new URL(url), internalDns);
    assert.deepEqual(addresses, raw.includes("hook.internal") ? ["10.1.2.3"] : [new URL(url).hostname.slice(1, -1)]);
  }
  assert.throws(() => validateCallbackUrl(config, "http://127.0.0.1/x"), BadRequest, "the v4 spelling is not listed");
  assert.throws(() => validateCallbackUrl(config, "http://localhost./x"), BadRequest);
});

Deno.test("callbacks: the send-time check refuses internal addresses, literal or resolved", async (t) => {
  const config = parseConfig({ CALLBACK_SECRET: SECRET });
  await t.step("IP literals, whatever the resolver says", async () => {
    const noDns = () => Promise.reject(new Error("a literal is not resolved"));
    for (const ip of INTERNAL_IPV6) {
      await assert.rejects(assertDeliverable(config, new URL(`http://[${ip}]/e`), noDns), UnrecoverableError, ip);
    }
    for (const host of ["127.0.0.1", "localhost", "localhost.", "a.localhost"]) {
      await assert.rejects(assertDeliverable(config, new URL(`http://${host}/e`), noDns), UnrecoverableError, host);
    }
    for (const ip of PUBLIC_IPV6) await assertDeliverable(config, new URL(`http://[${ip}]/e`), noDns);
  });
  await t.step("names resolving to an IPv6 form of an internal address", async () => {
    for (const ip of INTERNAL_IPV6) {
      await assert.rejects(
        assertDeliverable(config, new URL("https://hook.example.com/e"), () => Promise.resolve(["93.184.216.34", ip])),
        (err: Error) => err instanceof UnrecoverableError && err.message.endsWith(`resolves to internal address ${ip}`),
        ip,
      );
    }
    for (const ip of PUBLIC_IPV6) {
      await assertDeliverable(config, new URL("https://hook.example.com/e"), () => Promise.resolve([ip]));
    }
  });
});

Deno.test("callbacks: a queued callback to [::ffff:127.0.0.1] fails at send time without a request", async () => {
  // The job is queued directly, as one queued before the upload check was tightened would be.
  const svc = await startTestService({ CALLBACK_SECRET: SECRET, EMBEDDED_WORKER: "false" });
  const hook = receiver();
  const redis = createRedis(svc.config, "worker");
  const senderConnection = createRedis(svc.config, "worker");
  const callbacks = createCallbackQueue(svc.config, redis);
  const sender = startCallbackWorker(svc.config, senderConnection, () => Promise.resolve({ state: "completed" }));
  try {
    const url = hook.url.replace("127.0.0.1", "[::ffff:127.0.0.1]");
    await enqueueCallback(callbacks, svc.config, { task_id: "mapped-loopback", url, body: "{}" });
    await until(() => callbacks.getJobState("mapped-loopback"), "failed");
    const job = await callbacks.getJob("mapped-loopback");
    assert.equal(job?.failedReason, "callback host ::ffff:7f00:1 is an internal address");
    assert.equal(job?.attemptsMade, 1, "not retried");
    assert.equal(hook.calls(), 0);
  } finally {
    await sender.close();
    await callbacks.close();
    await closeRedis(senderConnection);
    await closeRedis(redis);
    await svc.close();
    await hook.close();
  }
});

Deno.test("callbacks: the connection goes to the address the check approved (DNS rebinding), Host and TLS name kept", async (t) => {
  const config = parseConfig({ CALLBACK_SECRET: SECRET, CALLBACK_ALLOWED_HOSTS: "hooks.example" });
  await t.step(
    "a name that is public for the check and 127.0.0.1 a moment later: nothing reaches 127.0.0.1",
    async () => {
      const hook = receiver();
      let lookups = 0;
      // What a rebinding DNS server does: a public address for the first question, loopback for the next.
      const rebinding = () => Promise.resolve(lookups++ === 0 ? ["203.0.113.7"] : ["127.0.0.1"]);
      try {
        const url = new URL(`http://rebind.example:${new URL(hook.url).port}/hook`);
        // The test may not connect to 203.0.113.7, so the delivery fails; what matters is where it tried to go.
        await assert.rejects(deliverCallback(config, url, "{}", "rebinding", rebinding), /203\.0\.113\.7/);
        assert.equal(lookups, 1, "looked up once, for the check");
        assert.equal(hook.calls(), 0);
      } finally {
        await hook.close();
      }
    },
  );
  await t.step("the Host header, path and query are the URL's", async () => {
    const seen: string[] = [];
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      seen.push(
        `${req.headers.get("host")} ${new URL(req.url).pathname}${new URL(req.url).search} ${await req.text()}`,
      );
      return new Response("ok");
    });
    try {
      const port = server.addr.port;
      const url = new URL(`http://hooks.example:${port}/hook?task=1`);
      const status = await deliverCallback(config, url, '{"a":1}', "host", () => Promise.resolve(["127.0.0.1"]));
      assert.equal(status, 200);
      assert.deepEqual(seen, [`hooks.example:${port} /hook?task=1 {"a":1}`]);
    } finally {
      await server.shutdown();
    }
  });
  await t.step("TLS: the server name (SNI) in the handshake is the URL's host, not the address", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const hello = (async () => {
      const conn = await listener.accept();
      const buf = new Uint8Array(16 * 1024);
      const n = await conn.read(buf);
      conn.close();
      return new TextDecoder("latin1").decode(buf.subarray(0, n ?? 0));
    })();
    try {
      const url = new URL(`https://hooks.example:${(listener.addr as Deno.NetAddr).port}/hook`);
      await assert.rejects(deliverCallback(config, url, "{}", "tls", () => Promise.resolve(["127.0.0.1"])));
      assert.ok((await hello).includes("hooks.example"), "the ClientHello names hooks.example");
    } finally {
      listener.close();
    }
  });
});
