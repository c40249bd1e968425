/**
 * POSTs `body` to `url`, connecting only to `addresses` (those the SSRF check approved, tried in turn) rather than
 * resolving the host again, and resolves to the answer's status. Between a lookup and a connection of its own, a DNS
 * server could switch its answer from a public address to 127.0.0.1 (DNS rebinding); pinned, the connection goes
 * where the check looked. The Host header and the TLS server name (SNI and the certificate check) stay the URL's host.
 * Redirects are not followed, only the status line is read, and `signal` aborts the request at any stage.
 *
 * Deno's fetch cannot be handed addresses (Deno.createHttpClient's "tcp" proxy sends https URLs as plain HTTP), and
 * node:https needs --allow-sys for the certificate store; a TCP connection upgraded with Deno.startTls needs neither.
 *
 * ```ts
 * const status = await postPinned(new URL("https://hooks.example/x"), ["93.184.215.14"], "{}", {}, signal);
 * ```
 */
export async function postPinned(
  url: URL,
  addresses: string[],
  body: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<number> {
  const https = url.protocol === "https:";
  const port = Number(url.port || (https ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, "");
  // Written into the request as they are: a line break would start a header (or a request) of someone else's choosing.
  const unsafe = Object.entries(headers).find(([name, value]) => /[\r\n]/.test(name + value));
  if (unsafe) throw new Error(`callback header ${JSON.stringify(unsafe[0])} holds a line break`);
  const payload = new TextEncoder().encode(body);
  const head = [
    `POST ${url.pathname}${url.search} HTTP/1.1`,
    `Host: ${url.host}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${payload.length}`,
    "Connection: close",
  ].join("\r\n");
  let conn: Deno.Conn = await connectToAny(addresses, port, signal);
  const close = () => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  signal.addEventListener("abort", close, { once: true });
  try {
    if (https) conn = await Deno.startTls(conn as Deno.TcpConn, { hostname: host });
    await writeAll(conn, new TextEncoder().encode(`${head}\r\n\r\n`));
    await writeAll(conn, payload);
    return await readStatus(conn);
  } catch (err) {
    throw signal.aborted ? signal.reason : err;
  } finally {
    signal.removeEventListener("abort", close);
    close();
  }
}

/** A connection to the first of `addresses` that accepts one; the last failure when none does. */
async function connectToAny(addresses: string[], port: number, signal: AbortSignal): Promise<Deno.TcpConn> {
  let failure: unknown = new Error("no address to connect to");
  for (const hostname of addresses) {
    try {
      return await Deno.connect({ hostname, port, signal });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      failure = err;
    }
  }
  throw failure;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

// Ample for a status line and any interim (1xx) answers before it.
const MAX_HEAD_BYTES = 64 * 1024;

/** The status of the final answer, skipping interim 1xx ones; the headers and body are not needed. */
async function readStatus(conn: Deno.Conn): Promise<number> {
  let text = "";
  const buf = new Uint8Array(4096);
  const decoder = new TextDecoder("latin1");
  for (;;) {
    const status = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(text);
    if (status && !status[1].startsWith("1")) return Number(status[1]);
    const end = text.indexOf("\r\n\r\n");
    if (status && end >= 0) {
      text = text.slice(end + 4);
      continue;
    }
    if (text.length > MAX_HEAD_BYTES || (text.length >= 12 && !/^HTTP\/1\.[01] \d{3}/.test(text))) {
      throw new Error("the callback's answer is not HTTP/1.1");
    }
    const n = await conn.read(buf);
    if (n === null) throw new Error("the callback's server closed the connection without an answer");
    text += decoder.decode(buf.subarray(0, n));
  }
}
