import assert from "node:assert/strict";
import { parseConfig } from "../config.ts";
import { clientAddress, parseTrustProxy } from "../routes/client_address.ts";
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

Deno.test("TRUST_PROXY: which forwarded address is the client", async (t) => {
  const h = (entries: Record<string, string>) => new Headers(entries);
  const xff = h({ "x-forwarded-for": "203.0.113.9, 198.51.100.7" });
  await t.step("off (the default): the socket's peer, whatever the headers say", () => {
    assert.deepEqual(parseConfig({}).TRUST_PROXY, { hops: 0 });
    assert.equal(clientAddress(xff, "10.0.0.2", parseTrustProxy("off")), "10.0.0.2");
  });
  await t.step("a hop count: the address the outermost trusted proxy received the request from", () => {
    assert.equal(clientAddress(xff, "10.0.0.2", parseTrustProxy("1")), "198.51.100.7");
    assert.equal(clientAddress(xff, "10.0.0.2", parseTrustProxy("2")), "203.0.113.9");
    // More hops than the request went through: the first address named.
    assert.equal(clientAddress(xff, "10.0.0.2", parseTrustProxy("5")), "203.0.113.9");
    assert.equal(clientAddress(h({}), "10.0.0.2", parseTrustProxy("1")), "10.0.0.2");
  });
  await t.step(
    "networks: trusted proxies are skipped from the nearest; a spoofed entry before them is not read",
    () => {
      const trust = parseTrustProxy("10.0.0.0/8, 198.51.100.0/24");
      assert.equal(clientAddress(xff, "10.0.0.2", trust), "203.0.113.9");
      const spoofed = h({ "x-forwarded-for": "1.2.3.4, 203.0.113.9, 198.51.100.7" });
      assert.equal(clientAddress(spoofed, "10.0.0.2", trust), "203.0.113.9");
      // A peer outside the trusted networks is the client, whatever it forwards.
      assert.equal(clientAddress(xff, "192.0.2.1", trust), "192.0.2.1");
    },
  );
  await t.step("Forwarded (RFC 7239) when there is no X-Forwarded-For; ports, quotes, brackets, IPv4-mapped", () => {
    const forwarded = h({ forwarded: 'for="[2001:db8:cafe::17]:4711";proto=https, for=198.51.100.7:8080' });
    assert.equal(clientAddress(forwarded, "::ffff:10.0.0.2", parseTrustProxy("2")), "2001:db8:cafe::17");
    assert.equal(clientAddress(forwarded, "::ffff:10.0.0.2", parseTrustProxy("1")), "198.51.100.7");
    assert.equal(clientAddress(forwarded, "::ffff:10.0.0.2", parseTrustProxy("10.0.0.0/8")), "198.51.100.7");
    assert.equal(clientAddress(h({}), "::ffff:10.0.0.2", parseTrustProxy("off")), "10.0.0.2");
    // "unknown" (or an obfuscated name) is no address: the proxy that wrote it is as far as can be told.
    assert.equal(clientAddress(h({ forwarded: "for=unknown" }), "10.0.0.2", parseTrustProxy("1")), "10.0.0.2");
  });
  await t.step("bad settings are refused, naming the entry", () => {
    assert.throws(() => parseTrustProxy("true"), /number of proxies/);
    assert.throws(() => parseTrustProxy("10.0.0.0/33"), /10\.0\.0\.0\/33/);
    assert.throws(() => parseTrustProxy("proxy.internal"), /proxy\.internal/);
  });
});

Deno.test("TRUST_PROXY through the API: clients behind one proxy get their own budgets and log lines", async (t) => {
  const svc = await startTestService({
    RATE_LIMIT: "2",
    RATE_LIMIT_WINDOW: "3600",
    EMBEDDED_WORKER: "false",
    TRUST_PROXY: "127.0.0.1/32",
  });
  const plain = await startTestService({
    RATE_LIMIT: "2",
    RATE_LIMIT_WINDOW: "3600",
    EMBEDDED_WORKER: "false",
    QUEUE_PREFIX: svc.config.QUEUE_PREFIX + "-plain",
  });
  const statuses = async (base: string, forwardedFor: string, n: number) => {
    const out = [];
    for (let i = 0; i < n; i++) {
      const res = await post(base, { "x-forwarded-for": forwardedFor });
      out.push(res.status);
      await res.body?.cancel();
    }
    return out;
  };
  try {
    await t.step(
      "behind the trusted proxy (this test, on 127.0.0.1), each forwarded client has its own bucket",
      async () => {
        assert.deepEqual(await statuses(svc.base, "203.0.113.1", 3), [400, 400, 429]);
        assert.deepEqual(await statuses(svc.base, "203.0.113.2", 2), [400, 400]);
      },
    );
    await t.step("without TRUST_PROXY a client cannot buy a fresh bucket with a made-up X-Forwarded-For", async () => {
      assert.deepEqual(await statuses(plain.base, "203.0.113.3", 2), [400, 400]);
      assert.deepEqual(await statuses(plain.base, "203.0.113.4", 1), [429]);
    });
    await t.step("the request log names the forwarded client", async () => {
      const lines: string[] = [];
      const { log } = console;
      console.log = (line: string) => lines.push(line);
      try {
        const res = await fetch(`${svc.base}/api/v1/health/`, { headers: { "x-forwarded-for": "198.51.100.23" } });
        await res.body?.cancel();
      } finally {
        console.log = log;
      }
      const request = lines.map((l) => JSON.parse(l)).find((e) => e.msg === "request");
      assert.equal(request?.client, "198.51.100.23", lines.join("\n"));
    });
  } finally {
    await plain.close();
    await svc.close();
  }
});

Deno.test("the default rate limit lets one client upload a folder of 500 images in a minute", async () => {
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  try {
    let limited = 0;
    for (let i = 0; i < 500; i++) {
      const res = await post(svc.base);
      if (res.status === 429) limited++;
      await res.body?.cancel();
    }
    assert.equal(limited, 0, `${limited} of 500 uploads refused with 429 (RATE_LIMIT=${svc.config.RATE_LIMIT})`);
  } finally {
    await svc.close();
  }
});
