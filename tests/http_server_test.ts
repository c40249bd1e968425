import assert from "node:assert/strict";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { createConnectionStats, serveHttp, SERVES_ACCEPTED_CONNECTIONS } from "../http_server.ts";
import { waitUntil } from "./harness.ts";

// The connection guard on its own, in both of its implementations: connections served where they were accepted (what
// this Deno does, and what the service tests exercise end to end) and relayed over loopback (what a runtime without
// `serveHttpOnConnection` gets).

const enc = new TextEncoder();
const dec = new TextDecoder();
const LIMITS = { hostname: "127.0.0.1", port: 0, maxConnections: 3, headerTimeoutMs: 400, idleTimeoutMs: 400 };

/** Everything the server sends until it closes the connection, and after how long; throws if still open after `ms`. */
async function untilClosed(
  conn: Deno.Conn,
  ms: number,
  since = performance.now(),
): Promise<{ ms: number; text: string }> {
  const buffer = new Uint8Array(4096);
  let text = "";
  for (;;) {
    const n = await withDeadline(conn.read(buffer).catch(() => null), since + ms - performance.now());
    if (n === TIMED_OUT) throw new Error(`still open after ${ms} ms; received ${JSON.stringify(text)}`);
    if (n === null) return { ms: performance.now() - since, text };
    text += dec.decode(buffer.subarray(0, n));
  }
}

/** Reads one whole response with a Content-Length body. */
async function response(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  for (;;) {
    const end = text.indexOf("\r\n\r\n");
    const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? NaN);
    if (end >= 0 && text.length >= end + 4 + length) return text;
    const n = await conn.read(buffer);
    if (n === null) return text;
    text += dec.decode(buffer.subarray(0, n));
  }
}

const GET = (path: string) => enc.encode(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);

for (const relay of [false, true]) {
  const name = relay ? "relayed" : "served where accepted";
  Deno.test({
    name: `connection guard, ${name}: requests, deadlines, the cap and a graceful shutdown`,
    ignore: !relay && !SERVES_ACCEPTED_CONNECTIONS,
    async fn(t) {
      const stats = createConnectionStats();
      let release: (() => void) | undefined;
      const server = serveHttp({ ...LIMITS, relay, stats }, async (request, info) => {
        const path = new URL(request.url).pathname;
        if (path === "/slow") await new Promise<void>((r) => release = r);
        if (path === "/big") return new Response(new Uint8Array(16 * 2 ** 20));
        return new Response(`${path} from ${info.remoteAddr.hostname}:${info.remoteAddr.port}`);
      });
      const conns: Deno.Conn[] = [];
      const open = async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        conns.push(conn);
        return conn;
      };
      try {
        await t.step("kept-alive requests are answered, with the client's own address", async () => {
          const conn = await open();
          for (const path of ["/a", "/b"]) {
            await conn.write(GET(path));
            const text = await response(conn);
            assert.match(text, /^HTTP\/1\.1 200 /);
            assert.ok(text.endsWith(`${path} from 127.0.0.1:${(conn.localAddr as Deno.NetAddr).port}`), text);
          }
          // Idle from here: closed after the idle deadline.
          const { ms } = await untilClosed(conn, 3000);
          assert.ok(ms >= 300, `closed after ${ms} ms`);
        });
        await t.step(
          "a connection that sends nothing, or half a head, is closed after the header deadline",
          async () => {
            const since = performance.now();
            const silent = await open();
            const half = await open();
            await half.write(enc.encode("GET /a HTTP/1.1\r\nHost: x\r\n"));
            for (const conn of [silent, half]) {
              const { ms, text } = await untilClosed(conn, 3000, since);
              assert.ok(ms >= 300, `closed after ${ms} ms`);
              assert.equal(text, "");
            }
            assert.ok(stats.headerTimeouts >= 2 && stats.idleTimeouts >= 1, JSON.stringify(stats));
          },
        );
        await t.step(
          "over the cap a connection gets a bare 503 at once; a request in flight is not cut off",
          async () => {
            await waitUntil("the earlier connections are gone", 2000, () => stats.open === 0);
            const busy = await open();
            await busy.write(GET("/slow"));
            await waitUntil("the slow request reaches the handler", 2000, () => release !== undefined);
            const others = [await open(), await open()];
            const refused = await open();
            const { text } = await untilClosed(refused, 1000);
            assert.match(text, /^HTTP\/1\.1 503 /);
            assert.ok(stats.refused >= 1);
            // The two idle ones time out; the busy one stays, whatever its deadline.
            for (const conn of others) await untilClosed(conn, 3000);
            assert.equal(server.pending, 1);
            release!();
            release = undefined;
            assert.match(await response(busy), /\/slow from/);
          },
        );
        await t.step(
          "a client that leaves while its response is written: the connection ends and is released",
          async () => {
            await waitUntil("the earlier connections are gone", 2000, () => stats.open === 0);
            const conn = await open();
            await conn.write(GET("/big"));
            await conn.read(new Uint8Array(1024));
            conn.close();
            // The test's resource sanitizer fails the test if Deno's server on this connection is never released.
            await waitUntil("the broken connection is gone", 3000, () => stats.open === 0);
          },
        );
        await t.step(
          "shutdown: a request in flight is answered, idle connections close, nothing new is accepted",
          async () => {
            const busy = await open();
            const idle = await open();
            await idle.write(GET("/a"));
            await response(idle);
            await busy.write(GET("/slow"));
            await waitUntil("the slow request reaches the handler", 2000, () => release !== undefined);
            const stopping = server.shutdown();
            await untilClosed(idle, 2000);
            release!();
            const { text } = await untilClosed(busy, 3000);
            assert.match(text, /\/slow from/);
            await stopping;
            await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: server.port }));
            assert.equal(stats.open, 0);
          },
        );
      } finally {
        for (const conn of conns) {
          try {
            conn.close();
          } catch {
            // closed by the server
          }
        }
        release?.();
        await server.shutdown();
      }
    },
  });
}
