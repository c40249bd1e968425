// The open-file limit (RLIMIT_NOFILE) bounds how many connections the process can hold: each one is a descriptor, and a
// process that runs out cannot accept, open uploads or reach Redis.

import { log } from "./log.ts";

/** A process's open-file limit; `Infinity` for "unlimited". */
export interface OpenFileLimit {
  soft: number;
  hard: number;
}

/** What start-up found and did about the open-file limit. */
export interface OpenFileLimitReport {
  /** The limit in use now; null when it cannot be read (no `prlimit`, or not allowed to run it). */
  limit: OpenFileLimit | null;
  /** The soft limit before this process raised it; absent when it was already at the hard limit. */
  raisedFrom?: number;
  /** Why the limit could not be read or raised. */
  problem?: string;
}

// Descriptors kept for everything but client connections: Deno's own (caches, event loop, about 25), Redis connections,
// the analysis pool, log output and a private redis-server's pipes. The service uses about 45 with two pool members.
const FD_RESERVE = 128;
// A client connection holds its socket, both ends of the loopback hop to the HTTP server (http_server.ts) and, at most,
// one file: an upload being written to disk or a result being sent.
const FDS_PER_CONNECTION = 4;
// Past a few thousand connections memory weighs more than descriptors do: 8 KiB per idle connection, up to 136 KiB
// while data streams both ways (http_server.ts).
const MAX_DERIVED_CONNECTIONS = 4096;

/** The connection cap an open-file soft limit affords, keeping FD_RESERVE descriptors for everything else. */
export function maxConnectionsFor(softLimit: number): number {
  return Math.max(1, Math.min(MAX_DERIVED_CONNECTIONS, Math.floor((softLimit - FD_RESERVE) / FDS_PER_CONNECTION)));
}

/** MAX_CONNECTIONS when the open-file limit is unknown: what 1024 descriptors, the usual default, afford (224). */
export const FALLBACK_MAX_CONNECTIONS = maxConnectionsFor(1024);

/**
 * Reads this process's open-file limit and raises the soft limit to the hard one where it is lower.
 *
 * Deno has no getrlimit/setrlimit, and lets only `--allow-all` read `/proc/self/limits`; util-linux `prlimit` on our own
 * pid needs only `--allow-run=prlimit`, where FFI (`--allow-ffi`) would hand native code every permission. The Deno CLI
 * already raises the soft limit to the hard one when it starts, so the raise here is a fallback for a runtime that
 * does not. Never throws: a limit that cannot be read is reported as null, with the reason.
 *
 * @example
 * ```ts
 * const { limit } = await ensureOpenFileLimit();
 * const cap = limit ? maxConnectionsFor(limit.soft) : FALLBACK_MAX_CONNECTIONS;
 * ```
 */
export async function ensureOpenFileLimit(): Promise<OpenFileLimitReport> {
  let limit: OpenFileLimit;
  try {
    limit = await readLimit();
  } catch (err) {
    return { limit: null, problem: describe(err) };
  }
  if (limit.soft >= limit.hard) return { limit };
  const before = limit.soft;
  try {
    // `SOFT:` sets the soft limit alone; raising it up to the hard limit needs no privilege.
    await prlimit([`--nofile=${limit.hard === Infinity ? "unlimited" : limit.hard}:`]);
    limit = await readLimit();
  } catch (err) {
    return { limit, problem: `could not raise the soft limit: ${describe(err)}` };
  }
  return limit.soft > before
    ? { limit, raisedFrom: before }
    : { limit, problem: "the soft limit stayed below the hard" };
}

/**
 * Settles the connection cap at start-up: reads (and where possible raises) the open-file limit, logs one line with the
 * limit in use and the cap, and returns the cap: `configured` (MAX_CONNECTIONS) when set, else what the limit affords.
 *
 * @example
 * ```ts
 * const maxConnections = await connectionCap(config.MAX_CONNECTIONS);
 * ```
 */
export async function connectionCap(configured: number | undefined): Promise<number> {
  const { limit, raisedFrom, problem } = await ensureOpenFileLimit();
  const affordable = limit ? maxConnectionsFor(limit.soft) : undefined;
  const cap = configured ?? affordable ?? FALLBACK_MAX_CONNECTIONS;
  const above = configured !== undefined && affordable !== undefined && configured > affordable;
  log(problem || above ? "warn" : "info", "open-file limit", {
    soft: limit ? shown(limit.soft) : "unknown",
    hard: limit ? shown(limit.hard) : "unknown",
    raised_from: raisedFrom,
    max_connections: cap,
    max_connections_from: configured !== undefined ? "MAX_CONNECTIONS" : limit ? "open-file limit" : "fallback",
    problem,
    // Accepts then fail with EMFILE before the cap is reached; the server survives that, shedding idle connections.
    warning: above ? `MAX_CONNECTIONS is above the ${affordable} connections the soft limit affords` : undefined,
  });
  return cap;
}

function shown(n: number): number | string {
  return n === Infinity ? "unlimited" : n;
}

async function readLimit(): Promise<OpenFileLimit> {
  const out = await prlimit(["--nofile", "--raw", "--noheadings", "--output=SOFT,HARD"]);
  const [soft, hard] = out.trim().split(/\s+/).map((v) => v === "unlimited" ? Infinity : Number(v));
  if (!(soft > 0) || !(hard > 0)) throw new Error(`unexpected prlimit output: ${JSON.stringify(out)}`);
  return { soft, hard };
}

async function prlimit(args: string[]): Promise<string> {
  const out = await new Deno.Command("prlimit", {
    args: ["--pid", String(Deno.pid), ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`prlimit: ${new TextDecoder().decode(out.stderr).trim()}`);
  return new TextDecoder().decode(out.stdout);
}

function describe(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "prlimit (util-linux) is not installed";
  if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
    return "not allowed to run prlimit (--allow-run=prlimit)";
  }
  return (err as Error)?.message ?? String(err);
}
