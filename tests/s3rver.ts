import { join } from "node:path";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { sparePort, testTempDir } from "./harness.ts";

/** s3rver's own credentials: it checks request signatures against them. */
export const S3RVER_KEY = "S3RVER";

/** An S3 server (s3rver, under Node) a test started, with one bucket. */
export interface S3Server {
  endpoint: string;
  port: number;
  bucket: string;
  /** The STORAGE=s3 settings that reach it. */
  env: Record<string, string>;
  /** Stops the server (an outage); `start` brings it back on the same port and folder. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it for good and removes its folder. */
  close(): Promise<void>;
  /** The server process's id (while it runs). */
  readonly pid: number | undefined;
  /** Requests served and response bytes sent so far (counted from its log, to 1 % for sizes in kb, with `count`). */
  readonly served: { requests: number; bytes: number };
}

/** Where the server keeps its files (default: a folder under tests/.tmp), and whether to count its requests. */
export interface S3rverOptions {
  dir?: string;
  count?: boolean;
}

// s3rver logs one line per request (koa-logger): a path, the status, the time and the response size as `bytes` prints
// it ("info: /key 200 3ms 74.05kb", "-" without a body).
const REQUEST_LINE = /^info: \S* \d{3} \d+ms (-|[\d.]+)([kmg]?b)?$/;
const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/**
 * Starts s3rver (from node_modules, where `deno install` puts it) on a loopback port with an empty bucket, and waits
 * until it answers.
 */
export async function startS3rver(bucket = "bip-test", options: S3rverOptions = {}): Promise<S3Server> {
  const dir = options.dir ?? testTempDir();
  const served = { requests: 0, bytes: 0 };
  const port = sparePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const script = new URL("../node_modules/s3rver/bin/s3rver.js", import.meta.url).pathname;
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    child = new Deno.Command("node", {
      args: [
        script,
        "-d",
        join(dir, "data"),
        "-a",
        "127.0.0.1",
        "-p",
        String(port),
        "--configure-bucket",
        bucket,
        ...(options.count ? [] : ["-s"]),
      ],
      stdin: "null",
      stdout: options.count ? "piped" : "null",
      stderr: "piped",
    }).spawn();
    // Which of its streams s3rver logs requests to depends on its logger's level; both are read.
    if (options.count) { for (const stream of [child.stdout, child.stderr]) countRequests(stream, served); }
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      const answered = await fetch(`${endpoint}/`).then((r) => r.body?.cancel().then(() => true), () => false);
      if (answered) return;
      const exited = await withDeadline(child.status, 100);
      if (exited !== TIMED_OUT) {
        throw new Error(`s3rver exited: ${options.count ? "" : await new Response(child.stderr).text()}`);
      }
    }
    throw new Error("s3rver did not answer within 20 s");
  };
  const stop = async () => {
    if (!child) return;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    if (!options.count) await child.stderr.cancel().catch(() => {});
    child = undefined;
  };
  await Deno.mkdir(join(dir, "data"), { recursive: true });
  await start();
  return {
    endpoint,
    port,
    bucket,
    env: {
      STORAGE: "s3",
      S3_ENDPOINT: endpoint,
      S3_BUCKET: bucket,
      S3_ACCESS_KEY_ID: S3RVER_KEY,
      S3_SECRET_ACCESS_KEY: S3RVER_KEY,
      S3_FORCE_PATH_STYLE: "true",
    },
    served,
    get pid() {
      return child?.pid;
    },
    stop,
    start,
    async close() {
      await stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Adds each request line of s3rver's log to `served`. */
async function countRequests(stdout: ReadableStream<Uint8Array>, served: { requests: number; bytes: number }) {
  let rest = "";
  // deno-lint-ignore no-control-regex
  const plain = (line: string) => line.replace(/\x1b\[[0-9;]*m/g, "").trim();
  for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      const m = REQUEST_LINE.exec(plain(line));
      if (m) {
        served.requests++;
        served.bytes += m[1] === "-" ? 0 : Math.round(Number(m[1]) * UNITS[m[2] ?? "b"]);
      }
    }
  }
}
