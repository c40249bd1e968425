// `deno task bench`: the kernel stage by stage against native OpenCV (when /usr/bin/python3 has cv2), OpenCV.js
// start-up, memory over many images, pool scaling, and end-to-end throughput and latency through the real service.
import { parseArgs } from "node:util";
import { parseConfig } from "../config.ts";
import { benchDrain, benchEndToEnd, type DrainReport, type EndToEndReport } from "./e2e.ts";
import { benchSeed, seedAvailable } from "./seed.ts";
import { generateLargeImages } from "./generate.ts";
import {
  benchKernel,
  benchMemory,
  benchOpenCVStartup,
  benchPoolThroughput,
  checkInputs,
  type StageMedians,
  STAGES,
} from "./kernel.ts";
import { type CpuPerImage, markdownTable, mean, median, round } from "./stats.ts";

const HERE = new URL(".", import.meta.url).pathname;
const FIXTURES = new URL("../tests/fixtures/", import.meta.url).pathname;
/** The five shared samples the targets are stated on. */
const SAMPLES = ["coins.png", "camera.png", "page.png", "hubble_deep_field.jpg", "rocket.jpg"];
const PYTHON = "/usr/bin/python3";
/** The seed's Python stack (FastAPI + Celery prefork ×2 + native OpenCV) on the reference machine, from issue 5. */
const SEED = { images_per_s: 62, upload_p99_ms: 110, concurrency: 8 };

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    "skip-kernel": { type: "boolean", default: false },
    "skip-e2e": { type: "boolean", default: false },
    runs: { type: "string" },
    uploads: { type: "string" },
    concurrency: { type: "string", default: String(SEED.concurrency) },
    "memory-images": { type: "string" },
    out: { type: "string" },
  },
});
const quick = args.quick;
const runs = Number(args.runs ?? (quick ? 3 : 10));
const warmup = quick ? 1 : 3;
const uploads = Number(args.uploads ?? (quick ? 20 : 600));
const concurrency = Number(args.concurrency);
const memoryImages = Number(args["memory-images"] ?? (quick ? 50 : 1000));
/** Uploads before each timed end-to-end run, waited for and not counted: one round of every image per client. */
const e2eWarmup = Math.min(uploads, SAMPLES.length * concurrency);
const cores = navigator.hardwareConcurrency || 1;

const samplePaths = SAMPLES.map((s) => FIXTURES + s);
const name = (path: string) => path.split("/").pop()!;
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: await machine(),
  settings: { quick, runs, warmup, uploads, e2e_warmup: e2eWarmup, concurrency, memory_images: memoryImages },
};

if (!args["skip-kernel"]) {
  // First, while this isolate has seen only the samples (the 12-megapixel runs would size its heaps for themselves).
  const memory = await benchMemory(samplePaths, memoryImages);
  results.memory = memory;
  console.log(
    `Memory over ${memory.images} images (five samples, one thread, after GC), first quarter → end: RSS ` +
      `${memory.rss_after_warmup_mib} → ${memory.rss_after_all_mib} MiB (${memory.rss_growth_pct}%), JS heap ` +
      `${memory.js_heap_after_warmup_mib} → ${memory.js_heap_after_all_mib} MiB, OpenCV WASM heap ` +
      `${memory.wasm_heap_after_warmup_mib} → ${memory.wasm_heap_after_all_mib} MiB, prefilter WASM memory ` +
      `${memory.prefilter_memory_after_warmup_mib} → ${memory.prefilter_memory_after_all_mib} MiB`,
  );

  // The 12-megapixel images are skipped in quick mode: generating them takes seconds and each run takes seconds.
  const large = quick ? [] : Object.values(await generateLargeImages(`${HERE}.data`, samplePaths[3]));
  const files = [...samplePaths, ...large];
  await checkInputs(files);
  console.log(`Kernel: median of ${runs} runs after ${warmup} warm-up, one thread…`);
  const ours = await benchKernel(files, runs, warmup);
  const native = await benchNative(files, runs, warmup);
  results.kernel = { ours: rename(ours), native: native && { opencv: native.opencv, images: rename(native.images) } };
  console.log(kernelTable(files, ours, native?.images));
  if (!native) console.log(`(native OpenCV not measured: ${PYTHON} has no cv2; apt-get install python3-opencv)`);

  const startup = await benchOpenCVStartup(quick ? 1 : 3);
  results.opencv_startup_ms = startup;
  console.log(`\nOpenCV.js start-up (fresh Web Worker until ready): ${startup} ms`);

  // Alternated and repeated (median of 3): on a shared 2-core machine a single pass swings by a third either way.
  const poolImages = quick ? 20 : 200;
  const trials: { one: number; all: number }[] = [];
  for (let i = 0; i < (quick ? 1 : 3); i++) {
    trials.push({
      one: await benchPoolThroughput(samplePaths, 1, poolImages),
      all: await benchPoolThroughput(samplePaths, cores, poolImages * cores),
    });
  }
  const one = median(trials.map((t) => t.one));
  const all = median(trials.map((t) => t.all));
  results.pool = { images_per_s_1: one, [`images_per_s_${cores}`]: all, scaling: round(all / one), trials };
  console.log(`Analysis pool (no Redis): ${one} images/s with 1 member, ${all} with ${cores} (${round(all / one)}×)`);
}

if (!args["skip-e2e"]) {
  const images = await Promise.all(SAMPLES.map(async (s) => ({ name: s, bytes: await Deno.readFile(FIXTURES + s) })));
  const e2e: EndToEndReport[] = [];
  // The default (lazy rendering) with one pool member and with one per core, then all cores drawing every image.
  const runs = [...new Set([1, cores])].map((workers) => ({ workers, render: "lazy" as const }));
  for (const { workers, render } of [...runs, { workers: cores, render: "eager" as const }]) {
    console.log(
      `\nEnd to end: ${uploads} uploads at concurrency ${concurrency}, WORKER_CONCURRENCY=${workers}, RENDER=${render}…`,
    );
    await Deno.mkdir(`${HERE}.tmp`, { recursive: true });
    const scratch = await Deno.makeTempDir({ dir: `${HERE}.tmp`, prefix: "e2e-" });
    e2e.push(await benchEndToEnd({ uploads, concurrency, workers, render, images, scratch, warmup: e2eWarmup }));
  }
  results.e2e = e2e;
  // The seed's stack rebuilt from Debian's packages (bench/seed/seed.py), on the same machine and Redis, same load.
  let seed: EndToEndReport | null = null;
  if (!quick && await seedAvailable()) {
    console.log(`\nEnd to end, the seed's stack (FastAPI + Celery prefork ×${cores} + native OpenCV)…`);
    const scratch = await Deno.makeTempDir({ dir: `${HERE}.tmp`, prefix: "seed-" });
    const settings = {
      uploads,
      concurrency,
      workers: cores,
      render: "eager" as const,
      images,
      scratch,
      warmup: e2eWarmup,
    };
    // The same Redis server the service runs on in benchEndToEnd (its defaults).
    const { REDIS_HOST, REDIS_PORT } = parseConfig({});
    seed = await benchSeed(settings, REDIS_HOST, REDIS_PORT);
  } else if (!quick) {
    console.log(
      `(the seed's stack not measured: ${PYTHON} lacks one of cv2, fastapi, celery, uvicorn, multipart, redis)`,
    );
  }
  results.seed = seed;
  // The queue drained with the five samples, then (full runs) with a 12-megapixel JPEG, where the kernel dominates
  // the per-job cost of the queue: how scaling depends on the work per image.
  const workloads = [{ name: "five samples", images, uploads }];
  if (!quick) {
    const { jpeg } = await generateLargeImages(`${HERE}.data`, samplePaths[3]);
    workloads.push({
      name: "12 MP JPEG",
      images: [{ name: "large_12mp.jpg", bytes: await Deno.readFile(jpeg) }],
      uploads: 40,
    });
  }
  const drains: (DrainReport & { workload: string })[] = [];
  for (const workload of workloads) {
    for (const workers of [...new Set([1, cores])]) {
      console.log(
        `\nQueue drain (${workload.name}): ${workload.uploads} queued images, one worker process with ` +
          `WORKER_CONCURRENCY=${workers}…`,
      );
      await Deno.mkdir(`${HERE}.tmp`, { recursive: true });
      const scratch = await Deno.makeTempDir({ dir: `${HERE}.tmp`, prefix: "drain-" });
      const settings = { uploads: workload.uploads, concurrency, workers, render: "lazy" as const, scratch };
      const report = await benchDrain({ ...settings, images: workload.images });
      drains.push({ workload: workload.name, ...report });
    }
  }
  results.drain = drains;
  results.seed_reference = SEED;
  console.log(endToEndTable(e2e, seed));
  console.log(
    "\n" + markdownTable(
      ["queue drain", "images", "images/s", "failures", "CPU ms/image: niced + normal (busy)"],
      drains.map((d) => [
        `${d.workload}, WORKER_CONCURRENCY=${d.workers}, RENDER=${d.render}`,
        d.images,
        d.images_per_s,
        d.failures,
        cpuCell(d.cpu),
      ]),
    ),
  );
  if (drains.some((d) => Object.keys(d.threads_ms).length)) {
    const kinds = ["analysis", "main", "file_io", "v8", "other", "redis"];
    console.log(
      "\nThe worker process's CPU per image (ms) by thread over each drain: the pool members (analysis), the thread " +
        "running BullMQ (main), Deno's blocking pool running file operations (file_io), V8's GC and compiler " +
        "(v8), the rest; and the Redis server's\n" +
        markdownTable(
          ["queue drain", ...kinds],
          drains.map((d) => [`${d.workload}, WORKER_CONCURRENCY=${d.workers}`, ...kinds.map((k) => d.threads_ms[k])]),
        ),
    );
  }
  if (cores > 1) {
    // Each workload's runs with one member and with one per core, found once for the ratios and the CPU budget.
    const drainPairs = workloads.map((w) => {
      const [one, all] = drains.filter((d) => d.workload === w.name);
      return { name: w.name, one, all };
    });
    const scaling = round(e2e[1].images_per_s / e2e[0].images_per_s);
    const drainScaling = Object.fromEntries(
      drainPairs.map(({ name, one, all }) => [name, round(all.images_per_s / one.images_per_s)]),
    );
    results.e2e_scaling = scaling;
    results.drain_scaling = drainScaling;
    console.log(
      `Scaling with ${cores} pool members over 1: ${scaling}× images/s end to end (uploads and analysis on the same ` +
        `${cores} cores); draining the queue: ` +
        Object.entries(drainScaling).map(([w, x]) => `${x}× (${w})`).join(", "),
    );
    // 1.8× the one-member rate fits in the cores only if every image costs the machine at most this much CPU.
    const pairs = [
      { name: "end to end", one: e2e[0], all: e2e[1] },
      ...drainPairs.map((p) => ({ ...p, name: `queue drain, ${p.name}` })),
    ];
    results.scaling_budget = pairs.map(({ name, one, all }) => {
      const budget = round((cores * 1000) / (1.8 * one.images_per_s));
      const spent = round(all.cpu.niced_ms + all.cpu.normal_ms);
      console.log(
        `  ${name}: 1.8× needs ≤ ${budget} ms of CPU per image on ${cores} cores; with ${cores} members it took ` +
          `${spent} ms (analysis threads ${all.cpu.niced_ms}, everything else ${all.cpu.normal_ms}), ` +
          `the cores ${all.cpu.busy_pct} % busy`,
      );
      return { run: name, budget_ms: budget, spent_ms: spent, ...all.cpu };
    });
  }
}

const out = args.out ??
  `${HERE}results/bench-${new Date().toISOString().replace(/[:.]/g, "-")}${quick ? "-quick" : ""}.json`;
await Deno.mkdir(out.replace(/\/[^/]*$/, ""), { recursive: true });
await Deno.writeTextFile(out, JSON.stringify(results, null, 2));
console.log(`\nWrote ${out}`);

function rename<T>(byPath: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(byPath).map(([p, v]) => [name(p), v]));
}

async function benchNative(files: string[], runs: number, warmup: number) {
  const probe = await new Deno.Command(PYTHON, { args: ["-c", "import cv2"], stderr: "null" }).output().catch(() =>
    null
  );
  if (!probe?.success) return null;
  const child = new Deno.Command(PYTHON, {
    args: [`${HERE}native.py`],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify({ files, runs, warmup })));
  await writer.close();
  const { stdout, success } = await child.output();
  if (!success) throw new Error("the native bench failed");
  return JSON.parse(new TextDecoder().decode(stdout)) as { opencv: string; images: Record<string, StageMedians> };
}

function kernelTable(files: string[], ours: Record<string, StageMedians>, native?: Record<string, StageMedians>) {
  const columns = [...STAGES, "total"] as const;
  const cell = (o: number, n?: number) =>
    n === undefined ? `${round(o, 1)}` : `${round(o, 1)} / ${round(n, 1)} (${round(o / n, 1)}×)`;
  const rows = files.map((f) => [name(f), ...columns.map((c) => cell(ours[f][c], native?.[f][c]))]);
  const five = files.slice(0, SAMPLES.length);
  const avg = (set: Record<string, StageMedians> | undefined, c: (typeof columns)[number]) =>
    set && mean(five.map((f) => set[f][c]));
  rows.push([`**mean of the ${SAMPLES.length} samples**`, ...columns.map((c) => cell(avg(ours, c)!, avg(native, c)))]);
  const header = native ? "ms: ours / native (ratio)" : "ms: ours";
  return `\n${header}\n` + markdownTable(["image", ...columns], rows);
}

function endToEndTable(runs: EndToEndReport[], seed: EndToEndReport | null) {
  return "\n" + markdownTable(
    [
      "workers",
      "render",
      "uploads/s",
      "upload p50 / p95 / p99 ms",
      "to completed p50 / p95 / p99 ms",
      "images/s",
      "failures",
      "CPU ms/image: niced + normal (busy)",
    ],
    [
      ...[...runs, ...(seed ? [seed] : [])].map((r) => [
        r === seed ? `seed's stack, ${r.workers} Celery processes` : r.workers,
        r.render,
        r.uploads_per_s,
        `${r.upload_ms.p50} / ${r.upload_ms.p95} / ${r.upload_ms.p99}`,
        `${r.completed_ms.p50} / ${r.completed_ms.p95} / ${r.completed_ms.p99}`,
        r.images_per_s,
        r.failures,
        cpuCell(r.cpu),
      ]),
      [`seed as quoted in issue 5`, "", "", `p99 ≈ ${SEED.upload_p99_ms}`, "", `≈ ${SEED.images_per_s}`, "", ""],
    ],
  );
}

/** The machine's CPU per image: at nice > 0 (our analysis threads), at nice 0 (all else), and how busy it was. */
function cpuCell(c: CpuPerImage): string {
  return `${c.niced_ms} + ${c.normal_ms} (${c.busy_pct} %)`;
}

async function machine() {
  // /proc/cpuinfo would need --allow-all in Deno; lscpu prints the same name.
  const lscpu = await new Deno.Command("/usr/bin/lscpu", { stdout: "piped", stderr: "null" }).output().then(
    (o) => new TextDecoder().decode(o.stdout),
    () => "",
  );
  return {
    cpu: /Model name:\s*(.*)/.exec(lscpu)?.[1]?.trim() ?? "unknown",
    cores,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
  };
}
