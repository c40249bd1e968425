// The HTTP server: an accept loop of our own, with connection limits, in front of Deno's HTTP server.
//
// Deno.serve accepts connections inside the runtime and exposes none of them: a connection that never sends a request
// is invisible to the program, there are no header, idle or connection-count limits, and an accept error such as
// EMFILE rejects `finished` and ends the process. node:http, which has the limits, stops accepting for good after one
// EMFILE without an 'error' event (deno_core's uv_compat `poll_tcp_handle` drops the error of `poll_accept`). So
// connections are accepted here with Deno.listen, whose errors reach the program, counted and timed, and each is handed
// to Deno's HTTP server with `serveHttpOnConnection`: the function Deno.serve's module has for serving one connection.
// Deno 2.9 has no public API for that (Deno.serveHttp was removed in 2.0) but keeps it among its internals; where a
// runtime lacks it, each connection is relayed byte for byte over loopback to a Deno.serve that only this process
// reaches, which costs about a millisecond of CPU per image end to end (docs/performance.md). Either way the guard
// knows each request's start and end from the handler and `info.completed`, which is what the deadlines need.

import { withDeadline } from "./deadline.ts";
import { log } from "./log.ts";

/** What the request handler learns about a request's connection: Deno.ServeHandlerInfo, with the client's address. */
export interface ClientInfo {
  /** The client's address (not the loopback hop's). */
  remoteAddr: Deno.NetAddr;
  /** Settles once the response has been sent (rejects when the client went away first). */
  completed: Promise<void>;
  /**
   * When the request began to arrive (performance.now()): its connection's accept for a connection's first request,
   * else its first byte. A graceful shutdown serves the requests that arrived before it (routes/lifecycle.ts).
   */
  arrivedAt: number;
}

/** Counters of the connection layer, read by the metrics at scrape time. */
export interface ConnectionStats {
  /** Client connections open now. */
  open: number;
  /** Connections refused at MAX_CONNECTIONS. */
  refused: number;
  /** Connections closed because no complete request head arrived within HEADER_TIMEOUT_MS. */
  headerTimeouts: number;
  /** Keep-alive connections closed after IDLE_TIMEOUT_MS without a request. */
  idleTimeouts: number;
  /** Failed accepts (EMFILE, ENFILE, …), the HTTP server's included. */
  acceptErrors: number;
}

/** Fresh counters, to share between the server and the metrics. */
export function createConnectionStats(): ConnectionStats {
  return { open: 0, refused: 0, headerTimeouts: 0, idleTimeouts: 0, acceptErrors: 0 };
}

/** Where to listen and the connection limits. */
export interface HttpServerOptions {
  hostname: string;
  port: number;
  /** Connections above this many are answered with a bare 503 and closed at once. */
  maxConnections: number;
  /** From accept, or from a keep-alive connection's first new byte, until the request head is complete. */
  headerTimeoutMs: number;
  /** A keep-alive connection without a request for this long is closed. */
  idleTimeoutMs: number;
  /**
   * False: serve with Deno.serve alone, for deployments behind a proxy that enforces the deadlines and the cap (they
   * then do not apply here); accept errors are still survived. Default true.
   */
  guard?: boolean;
  /**
   * True: relay every connection to a Deno.serve over loopback even where Deno can serve the connection accepted here
   * (what a runtime without `serveHttpOnConnection` gets; tests use it to cover that path).
   */
  relay?: boolean;
  stats?: ConnectionStats;
}

/** A running server. */
export interface HttpServer {
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  /** Connections with a request arriving or being answered: what a graceful shutdown waits for. */
  readonly pending: number;
  /** Stops accepting, closes connections without a request in flight, lets the others finish, then closes them. */
  shutdown(): Promise<void>;
}

/** Handles one request, as Deno.serve's handler does. */
export type Handler = (request: Request, info: ClientInfo) => Response | Promise<Response>;

// A pending read holds its buffer for as long as the peer sends nothing, so reads use a small one (a silent or idle
// connection costs 8 KiB, both directions) until one fills it: then data is streaming (an upload's body, an image),
// and a large one cuts the number of reads and writes until a read comes back short again.
const SMALL_READ_BYTES = 4 * 1024;
const LARGE_READ_BYTES = 64 * 1024;
// Back-off of the accept loop (and of restarting the HTTP server) while accepts fail.
const MIN_BACKOFF_MS = 10;
const MAX_BACKOFF_MS = 1000;
// At most one log line per kind of trouble this often, with the count of events since the previous line.
const LOG_EVERY_MS = 10_000;
// At shutdown, how long connections may take to pass on the last bytes of responses the HTTP server has finished.
const FLUSH_MS = 2000;
// At shutdown, how long requests in flight on connections served where they were accepted may take to be answered
// (the API drains its requests before it shuts the server down: this bounds only what that left).
const DRAIN_MS = 5000;
// Sent before reading anything from the client: a status and when to try again, nothing that needs its request.
const REFUSAL = new TextEncoder().encode(
  "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
);

type Phase = "head" | "busy" | "idle";

/**
 * A connection under the guard: its phase ("head": a request is due or arriving; "busy": requests in flight; "idle":
 * kept alive between requests), the deadline of that phase, and how to end it.
 */
abstract class Guarded {
  phase: Phase = "head";
  /** When the "head" or "idle" phase runs out (performance.now() time). */
  deadline: number;
  /** When the request now arriving began to (see ClientInfo.arrivedAt). */
  arrivedAt: number;
  #active = 0;

  constructor(readonly limits: HttpServerOptions) {
    this.arrivedAt = performance.now();
    this.deadline = this.arrivedAt + limits.headerTimeoutMs;
  }

  /** Whether a request is arriving or being answered: what a graceful shutdown waits for. */
  abstract readonly pending: boolean;

  /** Closes the connection: a relayed one at once, one served where accepted once a response in flight is out. */
  abstract close(): void;

  /**
   * The HTTP server has parsed a request head; the request ends with `completed`. A request that comes after a
   * response without the guard seeing its first byte (served where accepted) counts from here.
   */
  begin(completed: Promise<void>): void {
    if (this.phase === "idle") this.arrivedAt = performance.now();
    this.#active++;
    this.phase = "busy";
    const end = () => this.end();
    completed.then(end, end);
  }

  /** A response has been sent (or the client left): with none left in flight, the idle deadline runs. */
  protected end(): void {
    if (--this.#active > 0) return;
    this.phase = "idle";
    this.deadline = performance.now() + this.limits.idleTimeoutMs;
  }
}

/** A client connection relayed to the HTTP server. */
class Connection extends Guarded {
  /** Our end of the loopback hop to the HTTP server, once the client has sent something. */
  inner: Deno.TcpConn | null = null;
  /** Whether any of the request now arriving has been received yet. */
  heard = false;
  #closed = false;

  constructor(readonly client: Deno.TcpConn, limits: HttpServerOptions) {
    super(limits);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get pending(): boolean {
    return this.phase === "busy" || (this.phase === "head" && this.heard);
  }

  /** Bytes from the client: on an idle connection they start a request, whose head gets HEADER_TIMEOUT_MS. */
  received(): void {
    this.heard = true;
    if (this.phase !== "idle") return;
    this.phase = "head";
    this.arrivedAt = performance.now();
    this.deadline = this.arrivedAt + this.limits.headerTimeoutMs;
  }

  protected override end(): void {
    super.end();
    if (this.phase === "idle") this.heard = false;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const conn of [this.client, this.inner]) {
      try {
        conn?.close();
      } catch {
        // already closed
      }
    }
  }
}

/**
 * Serves `handler` on hostname:port with connection limits: a cap on open connections, header and keep-alive
 * deadlines, and an accept loop that survives running out of file descriptors (it sheds idle connections, backs off
 * and carries on). Throws, as Deno.serve does, when the address cannot be bound.
 *
 * @example
 * ```ts
 * const server = serveHttp(
 *   { hostname: "127.0.0.1", port: 8000, maxConnections: 1000, headerTimeoutMs: 10_000, idleTimeoutMs: 75_000 },
 *   (_req, info) => new Response(`hello ${info.remoteAddr.hostname}`),
 * );
 * await server.shutdown();
 * ```
 */
export function serveHttp(options: HttpServerOptions, handler: Handler): HttpServer {
  const stats = options.stats ?? createConnectionStats();
  if (options.guard === false) return serveDirect(options, handler, stats);
  if (serveOnConnection && !options.relay) return serveAccepted(options, handler, stats, serveOnConnection);
  return serveRelayed(options, handler, stats);
}

/** Deno's HTTP server on one connection: what Deno.serve runs on each connection it accepts. */
type ServeOnConnection = (
  connection: Deno.TcpConn,
  signal: AbortSignal | undefined,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  onError: (error: unknown) => Response,
  onListen: (scheme: string) => void,
) => { finished: Promise<void>; shutdown(): Promise<void> };

/**
 * Deno.serve's own `serveHttpOnConnection`, which Deno 2 keeps among its internals (`Deno[Deno.internal]`, beside
 * `serveHttpOnListener`, which Deno.serve itself calls); null in a runtime without it, which then gets the relay.
 */
const serveOnConnection: ServeOnConnection | null = (() => {
  const deno = Deno as unknown as { internal?: symbol } & Record<symbol, Record<string, unknown> | undefined>;
  const fn = deno.internal === undefined ? undefined : deno[deno.internal]?.serveHttpOnConnection;
  return typeof fn === "function" ? fn as ServeOnConnection : null;
})();

/** Whether connections are served where they were accepted (true) or relayed to a Deno.serve over loopback. */
export const SERVES_ACCEPTED_CONNECTIONS: boolean = serveOnConnection !== null;

/**
 * Accepts connections for `open` under the guard's limits: the cap (a bare 503 at once), the header and idle deadlines
 * (one sweep for all), and accept errors (idle connections shed, accepts paused with back-off). `open` serves a client
 * and gives back its guarded connection and a promise that settles once the connection has ended.
 */
function guardConnections(
  listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>,
  options: HttpServerOptions,
  stats: ConnectionStats,
  open: (client: Deno.TcpConn) => { conn: Guarded; ended: Promise<unknown> },
) {
  const connections = new Set<Guarded>();
  const ending = new Set<Promise<unknown>>();
  let closing = false;
  let pauseTimer: ReturnType<typeof setTimeout> | undefined;
  let wake: (() => void) | undefined;
  const logAcceptError = throttledLog("error", "accept failed: shedding idle connections and pausing accepts");
  const logRefusal = throttledLog("warn", "connection limit reached: refusing new connections");

  /** Closes every connection without a request in flight: the cheapest way to get descriptors back. */
  const shedIdle = () => {
    for (const conn of connections) if (conn.phase !== "busy") conn.close();
  };

  // Awaited by the accept loop, so refused connections never pile up holding descriptors: a few bytes into a fresh
  // socket's empty send buffer do not wait for the client.
  const refuse = async (client: Deno.TcpConn) => {
    stats.refused++;
    logRefusal({ max_connections: options.maxConnections });
    await client.write(REFUSAL).catch(() => 0);
    try {
      client.close();
    } catch {
      // already closed
    }
  };

  let backoff = 0;
  const acceptLoop = (async () => {
    while (!closing) {
      let client: Deno.TcpConn;
      try {
        client = await listener.accept();
      } catch (err) {
        if (closing) break;
        stats.acceptErrors++;
        logAcceptError({ error: String(err), code: errorCode(err), open: connections.size });
        // Out of descriptors: idle connections give them back at once; the backlog waits in the kernel meanwhile.
        if (["EMFILE", "ENFILE"].includes(errorCode(err) ?? "")) shedIdle();
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2 || MIN_BACKOFF_MS);
        await new Promise<void>((resolve) => {
          wake = resolve;
          pauseTimer = setTimeout(resolve, backoff);
        });
        continue;
      }
      backoff = 0;
      if (connections.size >= options.maxConnections) {
        await refuse(client);
        continue;
      }
      let opened: { conn: Guarded; ended: Promise<unknown> };
      try {
        opened = open(client);
      } catch (err) {
        // The client went away before it could be served: nothing to keep, and the loop carries on.
        log("warn", "could not serve an accepted connection", { error: String(err) });
        try {
          client.close();
        } catch {
          // already closed
        }
        continue;
      }
      const { conn, ended } = opened;
      connections.add(conn);
      stats.open = connections.size;
      const settled = ended.catch(() => {}).then(() => {
        connections.delete(conn);
        stats.open = connections.size;
        ending.delete(settled);
      });
      ending.add(settled);
    }
  })();

  // One sweep for every deadline, often enough for the shortest one to be met within a quarter of itself.
  const sweepMs = Math.max(10, Math.min(1000, Math.min(options.headerTimeoutMs, options.idleTimeoutMs) / 4));
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const conn of connections) {
      if (conn.phase === "busy" || now < conn.deadline) continue;
      if (conn.phase === "head") stats.headerTimeouts++;
      else stats.idleTimeouts++;
      // Counted once, however long the connection takes to end.
      conn.deadline = Infinity;
      conn.close();
    }
  }, sweepMs);

  return {
    connections,
    shedIdle,
    logAcceptError,
    get pending() {
      let n = 0;
      for (const conn of connections) if (conn.pending) n++;
      return n;
    },
    /** Stops accepting. */
    async stop() {
      closing = true;
      listener.close();
      clearTimeout(pauseTimer);
      wake?.();
      await acceptLoop;
    },
    /** Asks every connection to close (see Guarded.close). */
    closeAll() {
      for (const conn of connections) conn.close();
    },
    /**
     * Gives the connections still open `ms` to end, then closes them and waits for them to end, `ms` again at most, and
     * stops the sweep.
     */
    async settle(ms: number) {
      await withDeadline(Promise.all(ending), ms);
      for (const conn of connections) conn.close();
      await withDeadline(Promise.all(ending), ms);
      clearInterval(sweeper);
    },
  };
}

/** A connection Deno serves where it was accepted. */
class AcceptedConnection extends Guarded {
  /** Deno's server on this connection, once started. */
  server: { finished: Promise<void>; shutdown(): Promise<void> } | null = null;
  #closing: Promise<void> | undefined;

  get pending(): boolean {
    return this.phase === "busy";
  }

  /**
   * Closes the connection: at once when no request is in flight (silent, half a head, idle), after its response
   * otherwise. Deno's shutdown, not an abort signal: aborting a connection Deno has just closed throws from inside
   * Deno's listener, where nothing can catch it.
   */
  close(): void {
    this.#closing ??= this.server?.shutdown().catch(() => {});
  }
}

/**
 * The guard with each accepted connection handed to Deno's HTTP server: no relay, and Deno answers on the client's own
 * socket. What the guard needs of a request it learns from the handler being called and from `info.completed`.
 */
function serveAccepted(
  options: HttpServerOptions,
  handler: Handler,
  stats: ConnectionStats,
  serveOn: ServeOnConnection,
): HttpServer {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
  const onError = (error: unknown) => {
    log("error", "request failed in the HTTP server", { error: String(error) });
    return new Response("Internal Server Error", { status: 500 });
  };
  const guard = guardConnections(listener, options, stats, (client) => {
    const conn = new AcceptedConnection(options);
    const remoteAddr = client.remoteAddr;
    try {
      client.setNoDelay(true);
    } catch {
      // the client is gone already; serving it ends at once
    }
    const served: Deno.ServeHandler<Deno.NetAddr> = (request, info) => {
      conn.begin(info.completed);
      return handler(request, { remoteAddr, completed: info.completed, arrivedAt: conn.arrivedAt });
    };
    const server = conn.server = serveOn(client, undefined, served, onError, () => {});
    // A connection that breaks (the client resets it, or leaves while a response is written) rejects `finished`
    // without Deno releasing its server: shutting that down releases it.
    return { conn, ended: server.finished.catch(() => server.shutdown().catch(() => {})) };
  });

  return guardedServer(listener, guard, async () => {
    await guard.stop();
    // Connections answering a request finish it (Deno closes each once its response is out); the others close now.
    guard.closeAll();
    await guard.settle(DRAIN_MS);
  });
}

/** The guard in a runtime without `serveHttpOnConnection`: every accepted connection relayed to a Deno.serve. */
function serveRelayed(options: HttpServerOptions, handler: Handler, stats: ConnectionStats): HttpServer {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
  // The loopback hop's local port names the client connection it relays (the HTTP server sees it as remoteAddr).
  const byHopPort = new Map<number, Connection>();
  const retired: Promise<void>[] = [];
  let upstream: { server: Deno.HttpServer<Deno.NetAddr>; port: number } | null = null;
  let closing = false;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;

  const relayed: Deno.ServeHandler<Deno.NetAddr> = (request, info) => {
    const conn = byHopPort.get(info.remoteAddr.port);
    // Someone else on this machine found the loopback port: not a connection these limits cover.
    if (!conn) return new Response(null, { status: 421 });
    conn.begin(info.completed);
    return handler(request, {
      remoteAddr: conn.client.remoteAddr,
      completed: info.completed,
      arrivedAt: conn.arrivedAt,
    });
  };

  const relay = async (conn: Connection) => {
    const { client } = conn;
    let toServer: Promise<void> | undefined;
    let hopPort: number | undefined;
    try {
      client.setNoDelay(true);
      const fromClient = new Reader(client);
      const first = await fromClient.read();
      if (first === null || !upstream) return;
      conn.received();
      const inner = await Deno.connect({ hostname: "127.0.0.1", port: upstream.port });
      // A deadline or a shutdown may have closed the client while the hop was being opened.
      if (conn.closed) return inner.close();
      conn.inner = inner;
      inner.setNoDelay(true);
      hopPort = inner.localAddr.port;
      byHopPort.set(hopPort, conn);
      toServer = (async () => {
        try {
          await writeAll(inner, first);
          for (let data; (data = await fromClient.read()) !== null;) {
            conn.received();
            await writeAll(inner, data);
          }
          // The client is done sending: the server answers what it has, then closes, which ends the relay.
          await inner.closeWrite();
        } catch {
          conn.close();
        }
      })();
      const fromServer = new Reader(inner);
      for (let data; (data = await fromServer.read()) !== null;) await writeAll(client, data);
    } catch {
      // The client reset, a deadline closed the connection, or no descriptor was left for the hop.
    } finally {
      conn.close();
      if (hopPort !== undefined && byHopPort.get(hopPort) === conn) byHopPort.delete(hopPort);
      await toServer;
    }
  };

  const guard = guardConnections(listener, options, stats, (client) => {
    const conn = new Connection(client, options);
    return { conn, ended: relay(conn) };
  });

  let restartBackoff = 0;
  const startUpstream = () => {
    restartTimer = undefined;
    if (closing || upstream) return;
    try {
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, relayed);
      upstream = { server, port: server.addr.port };
      restartBackoff = 0;
      // Deno.serve ends its accept loop on an accept error and rejects `finished`, which unhandled ends the process:
      // start another server instead (its port is looked up per connection) and retire this one.
      server.finished.catch((err) => {
        if (upstream?.server === server) upstream = null;
        if (closing) return;
        stats.acceptErrors++;
        guard.logAcceptError({ error: String(err), code: errorCode(err), open: stats.open, in: "http server" });
        guard.shedIdle();
        retired.push(server.shutdown().catch(() => {}));
        startUpstream();
      });
    } catch (err) {
      // No descriptor for the listening socket either: try again shortly.
      stats.acceptErrors++;
      guard.logAcceptError({ error: String(err), code: errorCode(err), open: stats.open, in: "http server" });
      restartBackoff = Math.min(MAX_BACKOFF_MS, restartBackoff * 2 || MIN_BACKOFF_MS);
      restartTimer = setTimeout(startUpstream, restartBackoff);
    }
  };
  startUpstream();

  return guardedServer(listener, guard, async () => {
    closing = true;
    clearTimeout(restartTimer);
    await guard.stop();
    // Not shedIdle(): a connection turns idle when the server has written its response to the hop, which can be
    // before the relay has passed those bytes on, so closing it here could cut off the answer to the last request.
    // The server's shutdown closes idle hops itself, and a relay ends once it has passed on the last bytes.
    await upstream?.server.shutdown();
    await Promise.all(retired);
    await guard.settle(FLUSH_MS);
  });
}

/** The server a guarded listener makes: its port, the connections pending, and `stop` run once on shutdown. */
function guardedServer(listener: Deno.Listener, guard: { readonly pending: number }, stop: () => Promise<void>) {
  let stopped: Promise<void> | undefined;
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get pending() {
      return guard.pending;
    },
    shutdown: () => stopped ??= stop(),
  } satisfies HttpServer;
}

/**
 * Deno.serve on the public address, without the relay: no deadlines or cap of its own, but an accept error (EMFILE)
 * still does not end the process: Deno.serve ends its accept loop and rejects `finished`, and the address is served
 * again after a pause.
 */
function serveDirect(options: HttpServerOptions, handler: Handler, stats: ConnectionStats): HttpServer {
  const logAcceptError = throttledLog("error", "accept failed: pausing accepts");
  let server: Deno.HttpServer<Deno.NetAddr> | null = null;
  let port = options.port;
  let inFlight = 0;
  let closing = false;
  let backoff = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const retired: Promise<void>[] = [];
  const serve: Deno.ServeHandler<Deno.NetAddr> = (request, info) => {
    inFlight++;
    const done = () => inFlight--;
    info.completed.then(done, done);
    return handler(request, { remoteAddr: info.remoteAddr, completed: info.completed, arrivedAt: performance.now() });
  };
  const failed = (err: unknown) => {
    stats.acceptErrors++;
    logAcceptError({ error: String(err), code: errorCode(err), in: "http server" });
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2 || MIN_BACKOFF_MS);
    timer = setTimeout(start, backoff);
  };
  const start = () => {
    timer = undefined;
    if (closing) return;
    try {
      const current = Deno.serve({ hostname: options.hostname, port, onListen: () => {} }, serve);
      server = current;
      // With port 0, the port first given is kept: clients were told it.
      port = current.addr.port;
      current.finished.catch((err) => {
        if (server === current) server = null;
        retired.push(current.shutdown().catch(() => {}));
        if (!closing) failed(err);
      });
      backoff = 0;
    } catch (err) {
      // The first bind reports its error to the caller, as Deno.serve does; later ones are retried.
      if (server === null && port === options.port && stats.acceptErrors === 0) throw err;
      failed(err);
    }
  };
  start();
  return {
    port,
    get pending() {
      return inFlight;
    },
    async shutdown() {
      closing = true;
      clearTimeout(timer);
      await server?.shutdown();
      await Promise.all(retired);
    },
  };
}

/** Reads whatever has arrived on a connection, sizing the buffer as SMALL_READ_BYTES explains. */
class Reader {
  #small = new Uint8Array(SMALL_READ_BYTES);
  #large: Uint8Array | null = null;

  constructor(readonly conn: Deno.Conn) {}

  /** The bytes read (valid until the next read), or null at the end. */
  async read(): Promise<Uint8Array | null> {
    const buffer = this.#large ?? this.#small;
    const n = await this.conn.read(buffer);
    if (n === null) return null;
    this.#large = n < buffer.length ? null : this.#large ?? new Uint8Array(LARGE_READ_BYTES);
    return buffer.subarray(0, n);
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

/**
 * The errno name of an accept error: Deno.listen's errors carry it as `code`, while Deno.serve's only say it in the
 * message ("Too many open files (os error 24)").
 */
function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  const errno = /\(os error (\d+)\)/.exec(String(err))?.[1];
  return errno === "24" ? "EMFILE" : errno === "23" ? "ENFILE" : undefined;
}

/** A log call that writes at most one line per LOG_EVERY_MS, counting the events it left out. */
function throttledLog(level: "warn" | "error", msg: string): (fields: Record<string, unknown>) => void {
  let events = 0;
  let last = -Infinity;
  return (fields) => {
    events++;
    const now = performance.now();
    if (now - last < LOG_EVERY_MS) return;
    log(level, msg, { ...fields, events });
    events = 0;
    last = now;
  };
}
