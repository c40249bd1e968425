// The service's memory under heavy images: N uploads at once of one image (by default a 3000×3000 noise PNG, 8.6 MiB,
// about 66,000 contours), then their N annotated images fetched at once, while the RSS of `deno task start`'s process
// is sampled every 100 ms (and its VmHWM read at the end when /proc may be read: Deno asks --allow-all for that). Run:
//   deno run --allow-net=127.0.0.1 --allow-read --allow-write=bench/.tmp --allow-env --allow-run=deno,ps bench/heavy.ts
// Options: --uploads=32 --side=3000 --render=lazy --max-contours=<MAX_CONTOURS_STORED> --workers=<WORKER_CONCURRENCY>
// --image=<file> (instead of noise) --limit-mib=1536 (exit 1 above it). Redis must answer on 127.0.0.1:6379.
import { parseArgs } from "node:util";
import { encodePng } from "../imaging/encode.ts";
import { loadPngEncoder } from "../imaging/png_encode.ts";
import { dropPrefix, sparePort } from "../tests/harness.ts";
import { serviceEnv, spawnService } from "./e2e.ts";
import { parseConfig } from "../config.ts";

/** One heavy run: what is uploaded, how many at once, and the service's settings. */
export interface HeavySettings {
  image: Uint8Array;
  /** Uploads sent at once; as many images are then fetched at once. */
  uploads: number;
  /** A folder for the service's uploads and results (removed afterwards). */
  scratch: string;
  render: "lazy" | "eager";
  /** MAX_CONTOURS_STORED; the service's default when absent. */
  maxContours?: number;
  /** WORKER_CONCURRENCY; the service's default when absent. */
  workers?: number;
  /** Milliseconds every task may take, uploads and fetches each. */
  timeoutMs?: number;
  /** Called with the service's address and the tasks' summaries before the service stops (a test's checks). */
  inspect?: (base: string, summaries: Record<string, unknown>[]) => Promise<void>;
}

/** What a heavy run measured (RSS in MiB of the service's process). */
export interface HeavyReport {
  idle_mib: number;
  /** Highest sample while uploading and analysing. */
  analyse_peak_mib: number;
  /** Highest sample while the images were fetched. */
  fetch_peak_mib: number;
  /** The kernel's high-water mark (VmHWM) at the end, when /proc can be read: the true peak between samples. */
  hwm_mib?: number;
  /** The status summaries of the finished tasks. */
  summaries: Record<string, unknown>[];
  /** Bytes of each fetched image. */
  image_bytes: number[];
  seconds: { analyse: number; fetch: number };
}

/** A width×height gray PNG of uniform noise (seeded, so every run analyses the same pixels). */
export async function noisePng(width: number, height = width, seed = 1): Promise<Uint8Array> {
  await loadPngEncoder();
  const data = new Uint8Array(width * height);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    // xorshift32: fast, and the same bytes on every machine.
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    data[i] = s & 0xff;
  }
  return encodePng({ width, height, channels: 1, data });
}

/** RSS of a process in KiB by `ps` (works without read access to /proc), 0 once it is gone. */
async function rssKiB(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)], stdout: "piped" }).output();
  return Number(new TextDecoder().decode(out.stdout).trim()) || 0;
}

/** The process's VmHWM in KiB, or undefined when /proc cannot be read. */
async function hwmKiB(pid: number): Promise<number | undefined> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    return Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1]) || undefined;
  } catch {
    return undefined;
  }
}

/** Samples a process's RSS every 100 ms until stopped; `stop` returns the highest sample in KiB. */
function sampleRss(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssKiB(pid));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return Math.max(peak, await rssKiB(pid));
    },
  };
}

const mib = (kib: number) => Math.round(kib / 1024);

/** Polls until `check` is true, failing with `what` after `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} within ${timeoutMs} ms`);
}

/**
 * Starts the service as `deno task start` does, uploads `uploads` copies of the image at once, waits for every task,
 * then fetches every annotated image at once; the service's RSS is sampled throughout.
 */
export async function runHeavy(s: HeavySettings): Promise<HeavyReport> {
  const timeoutMs = s.timeoutMs ?? 600_000;
  const port = sparePort();
  const env = serviceEnv({
    scratch: s.scratch,
    render: s.render,
    workers: s.workers,
    env: s.maxContours ? { MAX_CONTOURS_STORED: String(s.maxContours) } : {},
  }, port);
  const config = parseConfig(env);
  const { process: service, stderr } = await spawnService("start", "main.ts", env, s.scratch);
  const base = `http://127.0.0.1:${port}`;
  let failed = false;
  try {
    await until(
      async () => (await (await fetch(`${base}/api/v1/health/worker`)).json()).workers >= 1,
      60_000,
      "the service did not start",
    );
    // The pool members initialise OpenCV.js as the worker starts: idle is after that, once memory has settled.
    await new Promise((r) => setTimeout(r, 1000));
    const idle = await rssKiB(service.pid);

    let sampler = sampleRss(service.pid);
    const t0 = performance.now();
    const ids = await Promise.all(Array.from({ length: s.uploads }, async (_, i) => {
      const form = new FormData();
      form.append("file", new File([s.image as Uint8Array<ArrayBuffer>], `heavy-${i}.png`));
      const res = await fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
      const body = await res.json();
      if (res.status !== 202) throw new Error(`upload ${i}: ${res.status} ${JSON.stringify(body)}`);
      return body.task_id as string;
    }));
    const summaries: Record<string, unknown>[] = [];
    for (const id of ids) {
      let status: { state?: string; result?: Record<string, unknown>; error?: unknown } = {};
      await until(
        async () => {
          status = await (await fetch(`${base}/api/v1/images/status/${id}`)).json();
          return status.state === "completed" || status.state === "failed";
        },
        timeoutMs,
        `task ${id} did not finish`,
      );
      if (status.state !== "completed") throw new Error(`task ${id}: ${JSON.stringify(status)}`);
      summaries.push(status.result!);
    }
    const t1 = performance.now();
    const analysePeak = await sampler.stop();

    sampler = sampleRss(service.pid);
    const imageBytes = await Promise.all(summaries.map(async (summary) => {
      const res = await fetch(`${base}${summary.result_url}`, { signal: AbortSignal.timeout(timeoutMs) });
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 200) {
        throw new Error(`${summary.result_url}: ${res.status} ${new TextDecoder().decode(bytes)}`);
      }
      return bytes.length;
    }));
    const t2 = performance.now();
    const fetchPeak = await sampler.stop();
    await s.inspect?.(base, summaries);
    const hwm = await hwmKiB(service.pid);
    return {
      idle_mib: mib(idle),
      analyse_peak_mib: mib(analysePeak),
      fetch_peak_mib: mib(fetchPeak),
      ...(hwm ? { hwm_mib: mib(hwm) } : {}),
      summaries,
      image_bytes: imageBytes,
      seconds: { analyse: Math.round(t1 - t0) / 1000, fetch: Math.round(t2 - t1) / 1000 },
    };
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    service.kill("SIGTERM");
    await service.status;
    const log = await stderr;
    if (failed) console.error(log);
    await dropPrefix(config);
    await Deno.remove(s.scratch, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      uploads: { type: "string", default: "32" },
      side: { type: "string", default: "3000" },
      image: { type: "string" },
      render: { type: "string", default: "lazy" },
      "max-contours": { type: "string" },
      workers: { type: "string" },
      "limit-mib": { type: "string", default: "1536" },
    },
  });
  const image = values.image ? await Deno.readFile(values.image) : await noisePng(Number(values.side));
  const tmp = new URL("./.tmp/", import.meta.url).pathname;
  await Deno.mkdir(tmp, { recursive: true });
  const report = await runHeavy({
    image,
    uploads: Number(values.uploads),
    scratch: await Deno.makeTempDir({ dir: tmp, prefix: "heavy-" }),
    render: values.render === "eager" ? "eager" : "lazy",
    maxContours: values["max-contours"] ? Number(values["max-contours"]) : undefined,
    workers: values.workers ? Number(values.workers) : undefined,
  });
  const first = report.summaries[0];
  const peak = Math.max(report.analyse_peak_mib, report.fetch_peak_mib, report.hwm_mib ?? 0);
  console.log(JSON.stringify(
    {
      image_mib: Math.round(image.length / 1048576 * 10) / 10,
      uploads: Number(values.uploads),
      contours_found: first.contours_found,
      contour_count: first.contour_count,
      truncated: first.truncated,
      idle_mib: report.idle_mib,
      analyse_peak_mib: report.analyse_peak_mib,
      fetch_peak_mib: report.fetch_peak_mib,
      hwm_mib: report.hwm_mib,
      seconds: report.seconds,
      peak_mib: peak,
      limit_mib: Number(values["limit-mib"]),
    },
    null,
    2,
  ));
  if (peak >= Number(values["limit-mib"])) Deno.exit(1);
}
