import { ImageError, type ImageErrorCode } from "./image_error.ts";
import type { AnalysisOptions } from "./options.ts";
import type { AnalysisReport } from "./report.ts";

/** The report without its contour list, which stays in the serialised document. */
export type AnalysisSummary = Omit<AnalysisReport, "contours">;

/** What one pooled analysis returns. */
export interface PooledAnalysis {
  report: AnalysisSummary;
  /** The encoded annotated image (null when not drawn). */
  image: Uint8Array | null;
  /** The result document: UTF-8 JSON of the header's fields followed by the full report, contours included. */
  document: Uint8Array;
  /** When the image was not drawn: what drawing it later needs (imaging/polygons.ts), for `render`. */
  polygons: Uint8Array | null;
  /** When the member began the analysis (epoch ms, fractional): its stages ran back to back from then (tracing.ts). */
  startedAt?: number;
}
import { log } from "../log.ts";
import type { PoolInit, PoolRequest } from "./pool_worker.ts";

/** A set of Web Workers, each with its own OpenCV.js, that run analyses in parallel. */
export interface AnalysisPool {
  size: number;
  /** The OpenCV.js version the members run. */
  opencvVersion: string;
  /**
   * Analyses one image on a free member (queued until one is free); `header` fields lead the result document, and
   * the annotated image is drawn only when `draw` is true. Aborting `signal` rejects with AnalysisCancelledError: at
   * once while the request waits for a member; on a member, once the member has stopped (it is asked to), or has been
   * ended and replaced for not stopping within the pool's `cancelGraceMs`.
   */
  analyse(
    bytes: Uint8Array,
    options: AnalysisOptions,
    maxPixels: number,
    header?: Record<string, unknown>,
    draw?: boolean,
    signal?: AbortSignal,
  ): Promise<PooledAnalysis>;
  /**
   * Renders the annotated image of an analysed upload from the polygons its analysis packed, or (`packed` false) from
   * its result document.
   */
  render(bytes: Uint8Array, drawing: Uint8Array, packed: boolean): Promise<Uint8Array>;
  /** Starts no more requests: queued and later ones reject with PoolClosedError, running ones go on. */
  stopStarting(): void;
  /** Ends every member: running requests reject with PoolClosedError (`started`), as do queued ones. */
  close(): void;
}

/** A request that ran past the pool's deadline: its member was terminated (it may be stuck) and replaced. */
export class AnalysisTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the analysis did not finish within ${timeoutMs} ms`);
    this.name = "AnalysisTimeoutError";
  }
}

/** A request whose AbortSignal was aborted: it never reached a member, its member stopped, or was ended and replaced. */
export class AnalysisCancelledError extends Error {
  constructor() {
    super("the analysis was cancelled");
    this.name = "AnalysisCancelledError";
  }
}

/** How a pool runs its members. */
export interface PoolOptions {
  /** How long one request may take on a member before the member is ended and replaced (0 = no limit). */
  timeoutMs?: number;
  /** The member module; tests substitute one that can be made to crash or hang. */
  memberUrl?: URL;
  /**
   * Most contours one result document keeps, the largest (default: no limit): each kept contour costs ~500 bytes of
   * JSON and more as objects in the member's heap, and a noisy image has tens of thousands.
   */
  maxContours?: number;
  /**
   * Bytes a member may keep between requests (JS heap plus WASM memories, neither of which shrinks): a member holding
   * more after a request is replaced by a fresh one (default: no limit).
   */
  memberMaxBytes?: number;
  /**
   * How long a member asked to stop a cancelled request may take to do so before it is ended and replaced (default
   * 1000 ms). A member looks only before it starts and before it serialises the result: the pipeline's OpenCV.js
   * calls cannot be interrupted.
   */
  cancelGraceMs?: number;
}

/** A request the pool did not finish because it was stopping or closed: `started` tells whether a member had it. */
export class PoolClosedError extends Error {
  constructor(readonly started: boolean) {
    super("analysis pool closed");
    this.name = "PoolClosedError";
  }
}

interface Member {
  worker: Worker;
  busy: boolean;
}

/** A member's answer; `held` is the memory it keeps afterwards. */
type Reply =
  & { id: number; held: number }
  & (PooledAnalysis | { image: Uint8Array } | {
    error: { image: boolean; code?: ImageErrorCode; message: string; cancelled?: boolean };
  });

const WORKER_URL = new URL("./pool_worker.ts", import.meta.url);

/**
 * Starts `size` pool members and waits until each has initialised OpenCV.js; their threads run at nice value `nice`
 * (0 = the process's own priority). A member that crashes or passes `options.timeoutMs` on a request is replaced.
 */
export async function createAnalysisPool(size: number, nice = 0, options: PoolOptions = {}): Promise<AnalysisPool> {
  const {
    timeoutMs = 0,
    memberUrl = WORKER_URL,
    maxContours = Infinity,
    memberMaxBytes = Infinity,
    cancelGraceMs = 1000,
  } = options;
  const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; member: Member }>();
  const waiting: { resolve: (m: Member) => void; reject: (e: Error) => void }[] = [];
  const members: Member[] = [];
  let nextId = 1;
  let closed = false;
  let stopping = false;
  let opencvVersion = "unknown";
  let warnedNice = false;

  const spawn = async (): Promise<Member> => {
    const worker = new Worker(memberUrl, { type: "module" });
    const member: Member = { worker, busy: true };
    await new Promise<void>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<{ version: string; niceError?: string }>) => {
        opencvVersion = e.data.version;
        // Every member fails alike (a missing permission): said once per pool, not once per member.
        if (e.data.niceError && !warnedNice) {
          warnedNice = true;
          log("warn", "analysis threads keep the normal CPU priority", { nice, error: e.data.niceError });
        }
        resolve();
      };
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`analysis worker failed to start: ${e.message}`));
      };
      worker.postMessage({ kind: "init", nice } satisfies PoolInit);
    });
    worker.onmessage = (e: MessageEvent<Reply>) => {
      const job = pending.get(e.data.id);
      if (!job) return;
      pending.delete(e.data.id);
      job.resolve(e.data);
    };
    worker.onerror = (e) => {
      // A crashed member (out of memory, a WASM abort) fails its job as a transient error and is replaced.
      e.preventDefault();
      retire(member, new Error(`analysis worker crashed: ${e.message}`));
    };
    return member;
  };

  /** Ends a member that crashed or ran past its deadline, fails its request with `why`, and starts a replacement. */
  const retire = (member: Member, why: Error) =>
    replace(member, why, "warn", "analysis worker ended; starting a replacement");

  /** Ends a member, failing any request it still has with `why`, and starts a replacement (logged at `level`). */
  const replace = (member: Member, why: Error, level: "warn" | "info", message: string) => {
    const i = members.indexOf(member);
    if (i < 0) return;
    // Unlisted before its request is failed: `call` then does not release it, so no later request is handed to a
    // thread that is gone and would never answer.
    members.splice(i, 1);
    member.worker.terminate();
    for (const [id, job] of pending) {
      if (job.member !== member) continue;
      pending.delete(id);
      job.reject(why);
    }
    if (closed) return;
    log(level, message, { reason: why.message });
    spawn().then((m) => {
      if (closed) return m.worker.terminate();
      members.push(m);
      release(m);
    }, (err) => {
      log("error", "could not replace an analysis worker", { error: String(err) });
      // With no member left, queued requests would wait forever.
      if (members.length === 0) { for (const w of waiting.splice(0)) w.reject(err); }
    });
  };

  const release = (m: Member) => {
    const next = waiting.shift();
    if (next) next.resolve(m);
    else m.busy = false;
  };
  const refuseWaiting = () => {
    for (const w of waiting.splice(0)) w.reject(new PoolClosedError(false));
  };
  const acquire = (signal?: AbortSignal): Promise<Member> => {
    if (stopping || closed) return Promise.reject(new PoolClosedError(false));
    if (signal?.aborted) return Promise.reject(new AnalysisCancelledError());
    const free = members.find((m) => !m.busy);
    if (free) {
      free.busy = true;
      return Promise.resolve(free);
    }
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: (m: Member) => {
          signal?.removeEventListener("abort", leave);
          resolve(m);
        },
        reject: (e: Error) => {
          signal?.removeEventListener("abort", leave);
          reject(e);
        },
      };
      // A cancelled request leaves the line at once: no member need be freed for it.
      const leave = () => {
        const i = waiting.indexOf(entry);
        if (i >= 0) waiting.splice(i, 1);
        reject(new AnalysisCancelledError());
      };
      signal?.addEventListener("abort", leave, { once: true });
      waiting.push(entry);
    });
  };

  /** Runs one request on a free member; the input bytes are transferred, not copied (callers do not reuse them). */
  const call = async (request: PoolRequest, signal?: AbortSignal): Promise<Exclude<Reply, { error: unknown }>> => {
    const member = await acquire(signal);
    // Closed while the free member was being handed over: its thread is gone and would never answer.
    if (closed) throw new PoolClosedError(false);
    const id = nextId++;
    let deadline: ReturnType<typeof setTimeout> | undefined;
    let grace: ReturnType<typeof setTimeout> | undefined;
    // Shared with the member, which reads it itself: its thread is busy in the pipeline and reads no messages meanwhile.
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => {
      Atomics.store(stop, 0, 1);
      grace = setTimeout(
        () =>
          replace(member, new AnalysisCancelledError(), "info", "analysis worker ended to stop a cancelled analysis"),
        cancelGraceMs,
      );
    };
    try {
      const reply = await new Promise<Reply>((resolve, reject) => {
        pending.set(id, { resolve, reject, member });
        member.worker.postMessage({ ...request, id, stop }, [request.bytes.buffer as ArrayBuffer]);
        if (signal?.aborted) onAbort();
        else signal?.addEventListener("abort", onAbort, { once: true });
        // A stuck member cannot be interrupted, only ended; its job's lock would otherwise be renewed forever. A thread
        // busy in synchronous code (a runaway OpenCV call) still runs until that call returns: Deno's terminate() does
        // not interrupt it (https://github.com/denoland/deno/pull/35657), so the replacement shares its core meanwhile.
        if (timeoutMs > 0) deadline = setTimeout(() => retire(member, new AnalysisTimeoutError(timeoutMs)), timeoutMs);
      });
      if (reply.held > memberMaxBytes) {
        // Its memory goes back to the system only with its thread: what one noisy image grew would otherwise stay
        // taken by every member that ever analysed one.
        const mib = Math.round(reply.held / 2 ** 20);
        replace(member, new Error(`it held ${mib} MiB after a request`), "info", "analysis worker replaced");
      }
      if ("error" in reply) {
        const { error } = reply;
        if (error.cancelled) throw new AnalysisCancelledError();
        throw error.image ? new ImageError(error.code!, error.message) : new Error(error.message);
      }
      // Finished just as it was cancelled: the caller must not record it.
      if (signal?.aborted) throw new AnalysisCancelledError();
      return reply;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      clearTimeout(deadline);
      clearTimeout(grace);
      if (members.includes(member)) release(member);
    }
  };

  members.push(...await Promise.all(Array.from({ length: size }, spawn)));
  for (const m of members) m.busy = false;

  return {
    size,
    opencvVersion,
    async analyse(bytes, options, maxPixels, header = {}, draw = true, signal) {
      const reply = await call(
        { kind: "analyse", id: 0, bytes, options, maxPixels, header, draw, maxContours },
        signal,
      );
      if (!("report" in reply)) throw new Error("analysis worker sent no report");
      const { report, image, document, polygons, startedAt } = reply;
      return { report, image, document, polygons, startedAt };
    },
    async render(bytes, drawing, packed) {
      const reply = await call({ kind: "render", id: 0, bytes, drawing, packed });
      if (!reply.image) throw new Error("analysis worker sent no image");
      return reply.image;
    },
    stopStarting() {
      stopping = true;
      refuseWaiting();
    },
    close() {
      if (closed) return;
      closed = true;
      refuseWaiting();
      for (const m of members) m.worker.terminate();
      for (const [, job] of pending) job.reject(new PoolClosedError(true));
      pending.clear();
    },
  };
}
