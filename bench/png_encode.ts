// PNG encoding, ours (encodePng: imaging/png_encode.ts, WASM SIMD) against native OpenCV's cv2.imencode('.png') on
// the same pixels: each sample's annotated image as the pipeline draws it. The two are interleaved (a few runs of
// native, a few of ours, per image and round) so that load from other processes falls on both alike; the figures are
// medians. Totals are over the seven samples; --large adds the bench's 12-megapixel PNG as a separate row.
//
//   deno run --allow-read=. --allow-run=/usr/bin/python3 bench/png_encode.ts [--rounds 15] [--runs 3]
//   deno run --allow-read=. --allow-write=bench/.data --allow-run=/usr/bin/python3 bench/png_encode.ts --large
import { parseArgs } from "node:util";
import { analyseContours } from "../imaging/contours.ts";
import { decodeImage } from "../imaging/decode.ts";
import { encodePng } from "../imaging/encode.ts";
import { DEFAULT_OPTIONS } from "../imaging/options.ts";
import { loadPipeline } from "../imaging/pipeline.ts";
import type { Raster } from "../imaging/raster.ts";
import { generateLargeImages } from "./generate.ts";
import { markdownTable, median, round } from "./stats.ts";
import { SAMPLES as SAMPLE_NAMES } from "../tests/fixtures.ts";

const SAMPLES = SAMPLE_NAMES.map((name) => new URL(`../tests/fixtures/${name}`, import.meta.url).pathname);
const DATA = new URL("./.data", import.meta.url).pathname;
const PYTHON = "/usr/bin/python3";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "15" },
    runs: { type: "string", default: "3" },
    large: { type: "boolean", default: false },
  },
});
const rounds = Number(args.rounds), runs = Number(args.runs);
const files = [...SAMPLES];
if (args.large) files.push((await generateLargeImages(DATA, SAMPLES[2])).png);

/** The annotated image analyseImage would encode (RGB, or RGBA whose alpha the encoder drops). */
async function annotated(path: string): Promise<Raster> {
  const cv = await loadPipeline();
  const { raster } = decodeImage(await Deno.readFile(path));
  return analyseContours(cv, raster, DEFAULT_OPTIONS).annotated!;
}

/** The same pixels as OpenCV holds them: BGR, 3 channels (imencode writes them back as RGB). */
function bgr(r: Raster): Uint8Array {
  const out = new Uint8Array(r.width * r.height * 3);
  for (let p = 0, i = 0; p < out.length; p += 3, i += r.channels) {
    out[p] = r.data[i + 2];
    out[p + 1] = r.data[i + 1];
    out[p + 2] = r.data[i];
  }
  return out;
}

const child = new Deno.Command(PYTHON, {
  args: [new URL("./png_native.py", import.meta.url).pathname],
  stdin: "piped",
  stdout: "piped",
}).spawn();
const writer = child.stdin.getWriter();
const replies = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
let pending = "";
/** The helper's next line. */
async function readLine(): Promise<string> {
  while (!pending.includes("\n")) {
    const { value, done } = await replies.read();
    if (done) throw new Error("png_native.py exited early");
    pending += value;
  }
  const end = pending.indexOf("\n");
  const line = pending.slice(0, end);
  pending = pending.slice(end + 1);
  return line;
}
const send = (command: object) => writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
async function native(image: number, n: number): Promise<{ ms: number[]; bytes: number }> {
  await send({ op: "time", image, runs: n });
  return JSON.parse(await readLine());
}

const images: Raster[] = [];
for (const [i, path] of files.entries()) {
  images.push(await annotated(path));
  await send({ op: "load", width: images[i].width, height: images[i].height });
  await writer.write(bgr(images[i]));
}

const ours: number[][] = files.map(() => []), theirs: number[][] = files.map(() => []);
const oursBytes: number[] = [], theirBytes: number[] = [];
// One untimed round warms both up (compilation, caches, allocators).
for (let round = -1; round < rounds; round++) {
  for (const [i, image] of images.entries()) {
    const n = await native(i, runs);
    theirBytes[i] = n.bytes;
    for (let k = 0; k < runs; k++) {
      const t0 = performance.now();
      oursBytes[i] = encodePng(image, true).length;
      if (round >= 0) ours[i].push(performance.now() - t0);
    }
    if (round >= 0) theirs[i].push(...n.ms);
  }
}
await send({ op: "quit" });
await writer.close();
await child.status;

const row = (label: string, a: number, b: number, bytesA: number, bytesB: number) => [
  label,
  round(a),
  round(b),
  round(a / b),
  bytesA,
  bytesB,
  round(bytesA / bytesB, 3),
];
const rows: (string | number)[][] = [];
const total = { ours: 0, native: 0, oursBytes: 0, nativeBytes: 0 };
for (const [i, path] of files.entries()) {
  const a = median(ours[i]), b = median(theirs[i]);
  const { width, height, channels } = images[i];
  const label = `${path.split("/").at(-1)} (${width}×${height}×${channels})`;
  if (i === SAMPLES.length) rows.push(row("**total**", total.ours, total.native, total.oursBytes, total.nativeBytes));
  rows.push(row(label, a, b, oursBytes[i], theirBytes[i]));
  if (i >= SAMPLES.length) continue;
  total.ours += a;
  total.native += b;
  total.oursBytes += oursBytes[i];
  total.nativeBytes += theirBytes[i];
}
if (files.length === SAMPLES.length) {
  rows.push(row("**total**", total.ours, total.native, total.oursBytes, total.nativeBytes));
}
const version = new TextDecoder().decode(
  (await new Deno.Command(PYTHON, { args: ["-c", "import cv2; print(cv2.__version__)"] }).output()).stdout,
).trim();
console.log(`${rounds} rounds × ${runs} runs, medians (ms); native: cv2.imencode('.png') in OpenCV ${version}\n`);
console.log(
  markdownTable(["image", "ours ms", "native ms", "time ratio", "ours bytes", "native bytes", "bytes ratio"], rows),
);
