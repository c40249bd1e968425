// `deno task bench`: the kernel stage by stage against native OpenCV (when /usr/bin/python3 has cv2), OpenCV.js
// start-up, memory over many images, pool scaling, end to end through the real service against the original Python
// service rebuilt on the same machine (each task done only once its image is in the client's hand), and the workers'
// own throughput draining a queue.
import { parseArgs } from "node:util";
import { parseConfig } from "../config.ts";
import { benchDrain, benchOurs, type DrainReport, type OurRun, POLL_MS, type SideReport } from "./e2e.ts";
import { benchFileOps } from "./files.ts";
import { benchRequests, type RequestCost } from "./requests.ts";
import { benchSeed, seedAvailable } from "./seed.ts";
import { startS3rver } from "../tests/s3rver.ts";
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
/** The five shared samples the kernel targets are stated on. */
const SAMPLES = ["coins.png", "camera.png", "page.png", "hubble_deep_field.jpg", "rocket.jpg"];
/** What each end-to-end run uploads in turn: the samples, and a BMP and a TIFF, which both services also take. */
const E2E_IMAGES = [
  "coins.png",
  "camera.png",
  "hubble_deep_field.jpg",
  "rocket.jpg",
  "page.png",
  "coins.bmp",
  "camera.tif",
];
const PYTHON = "/usr/bin/python3";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    "skip-kernel": { type: "boolean", default: false },
    "skip-e2e": { type: "boolean", default: false },
    "skip-drain": { type: "boolean", default: false },
    "skip-requests": { type: "boolean", default: false },
    runs: { type: "string" },
    uploads: { type: "string" },
    warmup: { type: "string" },
    pairs: { type: "string" },
    concurrency: { type: "string", default: "8" },
    workers: { type: "string", default: "2" },
    "memory-images": { type: "string" },
    out: { type: "string" },
  },
});
const quick = args.quick;
const runs = Number(args.runs ?? (quick ? 3 : 10));
const warmup = quick ? 1 : 3;
/**
 * Timed tasks per run. At 130 images/s, 200 tasks were over in a second and a half, and one pause (a full collection,
 * the disk catching up) or the first and last tasks' half-empty pipeline moved a ratio by several hundredths; over
 * 1,000 a run lasts several seconds a side (docs/performance.md).
 */
const uploads = Number(args.uploads ?? (quick ? 20 : 1000));
const concurrency = Number(args.concurrency);
/** Pool members of ours and Celery processes of the original's, end to end. */
const workers = Number(args.workers);
const memoryImages = Number(args["memory-images"] ?? (quick ? 50 : 1000));
/**
 * Tasks before each timed end-to-end run, waited for and not counted, so that each service is measured as it runs once
 * it has been up a while: connections open, and V8 done compiling the code it keeps optimising. After 56 tasks it was
 * still compiling about 1.6 ms of CPU per task in the next 400, after 1,000 about 0.26 (docs/performance.md).
 */
const e2eWarmup = Number(args.warmup ?? (quick ? Math.min(uploads, E2E_IMAGES.length * concurrency) : 1000));
/**
 * Alternating runs of ours and the original for each of the JPEG and PNG pairings; a row shows the pair with the median
 * ratio. On a shared VM one pair's ratio moves by a tenth or more either way from one run to the next.
 */
const pairs = Number(args.pairs ?? (quick ? 1 : 3));
const cores = navigator.hardwareConcurrency || 1;

const samplePaths = SAMPLES.map((s) => FIXTURES + s);
const name = (path: string) => path.split("/").pop()!;
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: await machine(),
  settings: { quick, runs, warmup, uploads, e2e_warmup: e2eWarmup, concurrency, workers, memory_images: memoryImages },
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
  console.log(
    `Analysis pool (no Redis, every image drawn and encoded): ${one} images/s with 1 member, ${all} with ` +
      `${cores} (${round(all / one)}×)`,
  );
}

if (!args["skip-e2e"]) {
  const images = await Promise.all(
    E2E_IMAGES.map(async (s) => ({ name: s, bytes: await Deno.readFile(FIXTURES + s) })),
  );
  const client = { uploads, concurrency, images, warmup: e2eWarmup };
  // The same Redis server our service runs on (its defaults).
  const { REDIS_HOST, REDIS_PORT } = parseConfig({});
  const original = await seedAvailable();
  console.log(
    `\nEnd to end: ${uploads} tasks from ${concurrency} clients (each uploads, polls the status every ${POLL_MS} ms, ` +
      `then fetches the image), after ${e2eWarmup} uncounted; ${workers} pool members / Celery processes`,
  );
  if (!original) {
    console.log(
      `(the original's stack not measured: ${PYTHON} lacks one of cv2, fastapi, celery, uvicorn, multipart, redis)`,
    );
  }
  const scratch = async (prefix: string) => {
    await Deno.mkdir(`${HERE}.tmp`, { recursive: true });
    return Deno.makeTempDir({ dir: `${HERE}.tmp`, prefix });
  };
  const ours = async (label: string, run: OurRun, members = workers, env: Record<string, string> = {}) => {
    console.log(`  ours, ${label}, WORKER_CONCURRENCY=${members}…`);
    return benchOurs({ ...client, workers: members, scratch: await scratch("e2e-"), env }, run);
  };
  const theirs = async (format: "jpeg" | "png") => {
    if (!original) return null;
    console.log(`  the original, writing ${format.toUpperCase()}, Celery prefork ×${workers}…`);
    const settings = { ...client, workers, scratch: await scratch("seed-") };
    return benchSeed(settings, format, REDIS_HOST, REDIS_PORT);
  };
  // Each of ours beside the original's run it is compared with, so that both see the machine in the same state.
  const pairings = async (name: string, label: string, run: OurRun, format: "jpeg" | "png") => {
    const all: Row[] = [];
    // Without the original there is nothing to pair with: one run of ours.
    for (let i = 0; i < (original ? pairs : 1); i++) all.push(row(name, await ours(label, run), await theirs(format)));
    return medianPair(all);
  };
  const jpegRow = await pairings(
    "JPEG image in hand",
    "output_format=jpeg",
    { fields: { output_format: "jpeg" }, fetched: "jpeg" },
    "jpeg",
  );
  const pngRow = await pairings(
    "PNG image in hand, our defaults",
    "defaults (PNG)",
    { fields: {}, fetched: "png" },
    "png",
  );
  const { ours: pngOurs, original: pngOriginal } = pngRow;
  const lazyOurs = await ours("render=lazy, PNG", { fields: { render: "lazy" }, fetched: "png" });
  const dataOurs = await ours("render=lazy, contour data", { fields: { render: "lazy" }, fetched: "json" });
  const rows = [
    jpegRow,
    pngRow,
    row("PNG image in hand, ours with render=lazy (drawn on its first request)", lazyOurs, pngOriginal),
    row("data only: ours render=lazy + contour JSON; the original's PNG image in hand", dataOurs, pngOriginal),
  ];
  // Our defaults with one pool member, for the scaling figures below.
  const single = workers > 1 ? await ours("defaults (PNG)", { fields: {}, fetched: "png" }, 1) : null;
  const targets = e2eTargets(rows, single);
  results.e2e = {
    poll_ms: POLL_MS,
    images: E2E_IMAGES,
    uploads,
    concurrency,
    warmup: e2eWarmup,
    pairs,
    workers,
    rows,
    ours_one_member: single,
    targets,
  };
  console.log(endToEndTable(rows, single));
  // Our defaults again with uploads and results in a bucket: s3rver (under Node, on this machine, so its CPU is taken
  // from the same cores) rather than the disk.
  const bucket = await startS3rver("bip-bench", { dir: await scratch("s3-") });
  let s3Ours: SideReport;
  try {
    s3Ours = await ours("defaults (PNG), STORAGE=s3 on s3rver", { fields: {}, fetched: "png" }, workers, bucket.env);
  } finally {
    await bucket.close();
  }
  (results.e2e as Record<string, unknown>).storage = { local: pngOurs, s3: s3Ours };
  console.log(
    "\n" + markdownTable(["images/s, our defaults (PNG image in hand)", "STORAGE=local", "STORAGE=s3 (s3rver)"], [
      ["images/s", pngOurs.images_per_s, s3Ours.images_per_s],
      [
        "in hand p50 / p99 ms",
        `${pngOurs.in_hand_ms.p50} / ${pngOurs.in_hand_ms.p99}`,
        `${s3Ours.in_hand_ms.p50} / ${s3Ours.in_hand_ms.p99}`,
      ],
      ["CPU ms per image (whole machine)", pngOurs.cpu_ms.total, s3Ours.cpu_ms.total],
    ]),
  );
  console.log(
    `\nCPU per image: the kernel (decode to encode) from ${pngOurs.cpu_ms.kernel_from} for ours` +
      (pngOriginal ? `, from ${pngOriginal.cpu_ms.kernel_from} for the original` : "") +
      `; everything else is the machine's CPU per image over the timed run (every process: the service, Redis, ` +
      `this client) minus the kernel.`,
  );

  // The queue drained with the five samples, then (full runs) with a 12-megapixel JPEG, where the kernel dominates
  // the per-job cost of the queue: how scaling depends on the work per image.
  const samples = await Promise.all(SAMPLES.map(async (s) => ({ name: s, bytes: await Deno.readFile(FIXTURES + s) })));
  const workloads = args["skip-drain"] ? [] : [{ name: "five samples", images: samples, uploads }];
  if (!quick && !args["skip-drain"]) {
    const { jpeg } = await generateLargeImages(`${HERE}.data`, samplePaths[3]);
    workloads.push({
      name: "12 MP JPEG",
      images: [{ name: "large_12mp.jpg", bytes: await Deno.readFile(jpeg) }],
      uploads: 40,
    });
  }
  const drains: (DrainReport & { workload: string })[] = [];
  for (const workload of workloads) {
    for (const members of [...new Set([1, workers])]) {
      console.log(
        `\nQueue drain (${workload.name}, analysis only): ${workload.uploads} queued images, one worker process ` +
          `with WORKER_CONCURRENCY=${members}, RENDER=lazy…`,
      );
      const settings = {
        uploads: workload.uploads,
        concurrency,
        workers: members,
        render: "lazy" as const,
        scratch: await scratch("drain-"),
      };
      const report = await benchDrain({ ...settings, images: workload.images });
      drains.push({ workload: workload.name, ...report });
    }
  }
  results.drain = drains;
  if (drains.length) {
    console.log(
      "\n" + markdownTable(
        [
          "queue drain (analysis only: no image drawn or fetched)",
          "images",
          "images/s",
          "failures",
          "CPU ms/image: niced + normal (busy)",
        ],
        drains.map((d) => [
          `${d.workload}, WORKER_CONCURRENCY=${d.workers}, RENDER=${d.render}`,
          d.images,
          d.images_per_s,
          d.failures,
          cpuCell(d.cpu),
        ]),
      ),
    );
  }
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
  if (single) {
    // Each workload's runs with one member and with `workers`, found once for the ratios and the CPU budget.
    const drainPairs = workloads.map((w) => {
      const [one, all] = drains.filter((d) => d.workload === w.name);
      return { name: w.name, one, all };
    });
    const scaling = round(pngOurs.images_per_s / single.images_per_s);
    const drainScaling = Object.fromEntries(
      drainPairs.map(({ name, one, all }) => [name, round(all.images_per_s / one.images_per_s)]),
    );
    results.e2e_scaling = scaling;
    results.drain_scaling = drainScaling;
    console.log(
      `\nScaling with ${workers} pool members over 1: ${scaling}× images/s end to end (PNG image in hand, uploads and ` +
        `analysis on the same ${cores} cores)` +
        (drains.length
          ? "; draining the queue (analysis only): " +
            Object.entries(drainScaling).map(([w, x]) => `${x}× (${w})`).join(", ")
          : ""),
    );
    // 1.8× the one-member rate fits in the cores only if every image costs the machine at most this much CPU.
    const pairs = [
      { name: "end to end, PNG image in hand", one: single, all: pngOurs },
      ...drainPairs.map((p) => ({ ...p, name: `queue drain, ${p.name}` })),
    ];
    results.scaling_budget = pairs.map(({ name, one, all }) => {
      const budget = round((cores * 1000) / (1.8 * one.images_per_s));
      const spent = round(all.cpu.niced_ms + all.cpu.normal_ms);
      console.log(
        `  ${name}: 1.8× needs ≤ ${budget} ms of CPU per image on ${cores} cores; with ${workers} members it took ` +
          `${spent} ms (niced analysis threads ${all.cpu.niced_ms}, everything else ${all.cpu.normal_ms}), ` +
          `the cores ${all.cpu.busy_pct} % busy`,
      );
      return { run: name, budget_ms: budget, spent_ms: spent, ...all.cpu };
    });
  }
  console.log(
    "\nEnd to end against the original, targets:\n" + markdownTable(
      ["target", "result", "met"],
      targets.map((t) => [t.target, t.result, t.met === null ? "not measured" : t.met ? "met" : "NOT met"]),
    ),
  );
}

if (!args["skip-requests"]) {
  // What the client's requests cost outside the kernel, by kind, with the connection guard's relay and without it.
  const image = { name: "rocket.jpg", bytes: await Deno.readFile(FIXTURES + "rocket.jpg") };
  const requests = quick ? 200 : 2000;
  const settings = { image, requests, uploads: quick ? 50 : 500, concurrency };
  console.log(`\nCPU per request, by kind: ${requests} requests each from ${concurrency} clients, the API alone…`);
  const costs: Record<string, RequestCost[]> = {};
  for (const guard of [true, false]) {
    await Deno.mkdir(`${HERE}.tmp`, { recursive: true });
    const scratchDir = await Deno.makeTempDir({ dir: `${HERE}.tmp`, prefix: "requests-" });
    costs[guard ? "guarded" : "direct"] = await benchRequests({ ...settings, scratch: scratchDir, guard });
  }
  results.requests = costs;
  const cell = (c: RequestCost) =>
    `${c.total_ms} (main ${c.main_ms}, v8 ${c.v8_ms}, file_io ${c.file_io_ms}, redis ${c.redis_ms}, client ${c.client_ms})`;
  console.log(
    markdownTable(
      ["request", "CPU ms, CONNECTION_GUARD=true (default)", "CPU ms, CONNECTION_GUARD=false"],
      costs.guarded.map((c, i) => [c.kind, cell(c), cell(costs.direct[i])]),
    ),
  );
  // On the disk the uploads and results go to (bench/.tmp is beside them in a checkout).
  const files = await benchFileOps(`${HERE}.tmp`, quick ? 100 : 1000);
  results.file_ops = files;
  console.log(
    `\nFile operations on this disk, CPU ms each (${files.files} files of ${files.bytes / 1000} kB): create ` +
      `${files.create_ms}, rename ${files.rename_ms}, overwrite ${files.overwrite_ms}, read ${files.read_ms}, remove ` +
      `${files.remove_ms}, create right after removes ${files.create_after_removes_ms}`,
  );
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
  const columns = [...STAGES, "total", "encode_jpeg"] as const;
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

/** One comparison: ours and the original's run it is held against (null where the original could not run). */
interface Row {
  name: string;
  ours: SideReport;
  original: SideReport | null;
  /** Ours over the original's images/s. */
  images_per_s_ratio: number | null;
  /** Every pair's ratio, in the order they ran, where the row is the median of several. */
  pair_ratios?: (number | null)[];
  /** The other pairs' sides (each run is checked for failures too). */
  other_pairs?: { ours: SideReport; original: SideReport | null }[];
}

/** The pair with the median ratio, carrying every pair's ratio; the pair alone when there is one. */
function medianPair(all: Row[]): Row {
  if (all.length === 1) return all[0];
  const sorted = [...all].sort((a, b) => (a.images_per_s_ratio ?? 0) - (b.images_per_s_ratio ?? 0));
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  return {
    ...median,
    pair_ratios: all.map((r) => r.images_per_s_ratio),
    other_pairs: all.filter((r) => r !== median).map(({ ours, original }) => ({ ours, original })),
  };
}

function row(name: string, ours: SideReport, original: SideReport | null): Row {
  const ratio = original && original.images_per_s > 0 ? round(ours.images_per_s / original.images_per_s) : null;
  return { name, ours, original, images_per_s_ratio: ratio };
}

/** The targets, each with what was measured and whether it was met (null: the original was not measured). */
function e2eTargets(rows: Row[], single: SideReport | null) {
  const [jpeg, png, , data] = rows;
  const ratio = (r: Row, min: number) => ({
    result: r.images_per_s_ratio === null
      ? `ours ${r.ours.images_per_s} images/s`
      : `${r.ours.images_per_s} / ${r.original!.images_per_s} images/s = ${r.images_per_s_ratio}×` +
        (r.pair_ratios ? ` (the median of ${r.pair_ratios.length} pairs: ${r.pair_ratios.join("×, ")}×)` : ""),
    met: r.images_per_s_ratio === null ? null : r.images_per_s_ratio >= min,
  });
  const p99 = [jpeg, png].map((r) => ({
    text: `${r.ours.fetched.toUpperCase()} ${r.ours.upload_ms.p99} / ${r.original?.upload_ms.p99 ?? "–"} ms`,
    met: r.original ? r.ours.upload_ms.p99 < r.original.upload_ms.p99 : null,
  }));
  const sides = [
    ...rows.flatMap((r) => [r.ours, r.original, ...(r.other_pairs ?? []).flatMap((p) => [p.ours, p.original])]),
    single,
  ].filter((s): s is SideReport => s !== null);
  const badSamples = (s: SideReport) => Object.entries(s.checked).filter(([, v]) => v !== "ok");
  const unserved = [...new Set(sides)].filter((s) =>
    s.served !== s.uploads || s.warmup_failures > 0 || badSamples(s).length > 0
  );
  return [
    { target: "JPEG image in hand: ours ≥ 1.0× the original's images/s", ...ratio(jpeg, 1.0) },
    { target: "PNG image in hand, our defaults: ≥ 1.0× the original's images/s", ...ratio(png, 1.0) },
    {
      target: "upload p99 below the original's, JPEG and PNG pairings (ours / original)",
      result: p99.map((p) => p.text).join("; "),
      met: p99.some((p) => p.met === null) ? null : p99.every((p) => p.met),
    },
    { target: "data only (render=lazy): ≥ 1.5× the original's PNG images/s (image in hand)", ...ratio(data, 1.5) },
    {
      target: "every upload accepted and completed, and its image (or data) served, in every run",
      result: unserved.length
        ? unserved.map((s) =>
          `${s.service} ${JSON.stringify(s.fields)}: ${s.uploads - s.served} not served ` +
          `${JSON.stringify(s.failure_reasons)}, ${s.warmup_failures} in the warm-up, samples ` +
          JSON.stringify(Object.fromEntries(badSamples(s)))
        ).join("; ")
        : `${new Set(sides).size} runs, every image in hand and each image's first checked in full`,
      met: unserved.length === 0,
    },
  ];
}

function endToEndTable(rows: Row[], single: SideReport | null) {
  // Each figure as "ours; original", the original's left out where it was not measured.
  const both = (r: Row, cell: (s: SideReport) => string | number) =>
    r.original ? `${cell(r.ours)}; ${cell(r.original)}` : `${cell(r.ours)}`;
  const lines = [
    ...rows,
    ...(single ? [row("PNG image in hand, our defaults with one pool member", single, null)] : []),
  ];
  return "\n" + markdownTable(
    [
      "row",
      "images/s: ours; original",
      "ours / original",
      "upload p50 / p99 ms: ours; original",
      "image in hand p50 / p99 ms: ours; original",
      "failures: ours; original",
      "CPU ms/image, kernel + everything else: ours; original",
    ],
    lines.map((r) => [
      r.name,
      both(r, (s) => s.images_per_s),
      r.images_per_s_ratio === null
        ? "–"
        : `${r.images_per_s_ratio}×` + (r.pair_ratios ? ` (pairs: ${r.pair_ratios.join("×, ")}×)` : ""),
      both(r, (s) => `${s.upload_ms.p50} / ${s.upload_ms.p99}`),
      both(r, (s) => `${s.in_hand_ms.p50} / ${s.in_hand_ms.p99}`),
      both(r, (s) => s.failures),
      both(r, (s) => `${s.cpu_ms.kernel} + ${s.cpu_ms.other}`),
    ]),
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
