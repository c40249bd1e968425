import { Buffer } from "node:buffer";
import { HTTPParser } from "http-parser-js";

/** What {@link requestPinned} sends. */
export interface PinnedRequestInit {
  method: "GET" | "POST";
  headers: Record<string, string>;
  /** Sent with a Content-Length; none for a GET. */
  body?: string;
}

/** The final (non-1xx) answer: status, headers, and the body as it arrives from the connection. */
export interface PinnedResponse {
  status: number;
  headers: Headers;
  /** Cancelling it closes the connection at once, with the rest of the body unread. */
  body: ReadableStream<Uint8Array>;
}

// Ample for a status line and headers; http-parser-js's own default, stated so the limit is visible here.
const MAX_HEAD_BYTES = 80 * 1024;
const READ_BYTES = 64 * 1024;

/**
 * Sends one HTTP/1.1 request to `url`, connecting only to `addresses` (those the SSRF check approved, tried in turn)
 * rather than resolving the host again, and resolves once the final answer's headers are in; its body is then read
 * from the connection only as fast as the caller reads the stream. Between a lookup and a connection of its own, a
 * DNS server could switch its answer from a public address to 127.0.0.1 (DNS rebinding); pinned, the connection goes
 * where the check looked. The Host header and the TLS server name (SNI and the certificate check) stay the URL's
 * host. Redirects are not followed (the caller decides), and `signal` aborts the request and the body at any stage.
 *
 * Deno's fetch cannot be handed addresses (Deno.createHttpClient's "tcp" proxy sends https URLs as plain HTTP), and
 * node:https needs --allow-sys for the certificate store; a TCP connection upgraded with Deno.startTls needs neither.
 * The answer is parsed by http-parser-js (Content-Length, chunked and close-delimited bodies, interim 1xx answers).
 *
 * ```ts
 * const res = await requestPinned(new URL("https://img.example/a.png"), ["93.184.215.14"], {
 *   method: "GET",
 *   headers: {},
 * }, signal);
 * ```
 */
export async function requestPinned(
  url: URL,
  addresses: string[],
  init: PinnedRequestInit,
  signal: AbortSignal,
): Promise<PinnedResponse> {
  const https = url.protocol === "https:";
  const port = Number(url.port || (https ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, "");
  // Written into the request as they are: a line break would start a header (or a request) of someone else's choosing.
  const unsafe = Object.entries(init.headers).find(([name, value]) => /[\r\n]/.test(name + value));
  if (unsafe) throw new Error(`header ${JSON.stringify(unsafe[0])} holds a line break`);
  const payload = init.body === undefined ? undefined : new TextEncoder().encode(init.body);
  const head = [
    `${init.method} ${url.pathname}${url.search} HTTP/1.1`,
    `Host: ${url.host}`,
    ...Object.entries(init.headers).map(([name, value]) => `${name}: ${value}`),
    ...(payload ? [`Content-Length: ${payload.length}`] : []),
    "Connection: close",
  ].join("\r\n");
  let conn: Deno.Conn = await connectToAny(addresses, port, signal);
  if (signal.aborted) {
    conn.close();
    throw signal.reason;
  }
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    signal.removeEventListener("abort", abort);
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const abort = () => {
    close();
    fail(signal.reason);
  };
  signal.addEventListener("abort", abort, { once: true });

  let answer: { status: number; headers: Headers } | undefined;
  let complete = false;
  let body!: ReadableStreamDefaultController<Uint8Array>;
  let bodyEnded = false;
  let chunks = 0;
  const fail = (err: unknown) => {
    if (bodyEnded) return;
    bodyEnded = true;
    body.error(err);
  };
  const parser = new HTTPParser(HTTPParser.RESPONSE);
  parser.maxHeaderSize = MAX_HEAD_BYTES;
  parser[HTTPParser.kOnHeadersComplete] = (info) => {
    // An interim answer (100 Continue, 103 Early Hints): the parser goes on to the next one on the same connection.
    if (info.statusCode < 200) return;
    const headers = new Headers();
    for (let i = 0; i + 1 < info.headers.length; i += 2) headers.append(info.headers[i], info.headers[i + 1]);
    answer = { status: info.statusCode, headers };
  };
  parser[HTTPParser.kOnBody] = (chunk, offset, length) => {
    if (!answer || bodyEnded || length === 0) return;
    body.enqueue(new Uint8Array(chunk.subarray(offset, offset + length)));
    chunks++;
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    if (answer) complete = true;
  };
  const buf = new Uint8Array(READ_BYTES);
  /** Reads once from the connection into the parser; false once the connection has ended. */
  const readMore = async (): Promise<boolean> => {
    const n = await conn.read(buf);
    if (n === null) {
      // Ends a body delimited by the connection's close; any other body should have ended by itself.
      parser.finish();
      if (!answer) throw new Error("the server closed the connection without an answer");
      if (!complete) throw new Error("the server closed the connection before the end of the body");
      return false;
    }
    const result = parser.execute(Buffer.from(buf.subarray(0, n)));
    if (result instanceof Error) throw new Error(`the answer is not valid HTTP/1.1 (${result.message})`);
    return true;
  };
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      body = controller;
    },
    async pull(controller) {
      try {
        const before = chunks;
        // Until a chunk is handed on (a read may hold only chunk framing) or the body is complete: the connection is
        // read no faster than the caller reads.
        while (!complete && chunks === before && await readMore());
        if (complete && !bodyEnded) {
          bodyEnded = true;
          controller.close();
          close();
        }
      } catch (err) {
        close();
        fail(signal.aborted ? signal.reason : err);
      }
    },
    cancel() {
      bodyEnded = true;
      close();
    },
  }, { highWaterMark: 0 });

  try {
    if (https) conn = await Deno.startTls(conn as Deno.TcpConn, { hostname: host });
    await writeAll(conn, new TextEncoder().encode(`${head}\r\n\r\n`));
    if (payload) await writeAll(conn, payload);
    while (!answer) {
      if (!await readMore()) break;
    }
    if (!answer) throw new Error("the server closed the connection without an answer");
  } catch (err) {
    close();
    fail(err);
    throw signal.aborted ? signal.reason : err;
  }
  if (complete && !bodyEnded) {
    bodyEnded = true;
    body.close();
    close();
  }
  return { ...answer, body: stream };
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
