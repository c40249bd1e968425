// What imaging/structure.ts catches at upload that a header check alone would leave to the worker, and what it costs.
// Every sample and codec fixture, cut at 48 points and damaged at random (1–4 bytes, seeded) 48 times, plus the
// bombs: each input goes through the header check (format sniffing, header size and MAX_PIXELS), checkStructure,
// and the worker's decode. Then the time of checkStructure per sample (median of 15) against its decode.
//
//   deno run -A bench/libraries/structure.ts
import { assertPixelLimit, decodeImage } from "../../imaging/decode.ts";
import { ImageError } from "../../imaging/image_error.ts";
import { loadJpegWasm } from "../../imaging/jpeg_wasm.ts";
import { checkStructure } from "../../imaging/structure.ts";
import { jpegBomb, pngBomb, tiffDeclaring } from "../../tests/bombs.ts";
import { CODEC_SAMPLES, codecSample, fixture, SAMPLES, seededRandom } from "../../tests/fixtures.ts";

const MAX_PIXELS = 50_000_000; // config.ts's default
await loadJpegWasm();

const outcome = (fn: () => unknown): string | null => {
  try {
    fn();
    return null;
  } catch (err) {
    if (err instanceof ImageError) return err.code;
    return `crash: ${err}`;
  }
};

const inputs: { name: string; kind: "cut" | "damaged" | "bomb"; bytes: Uint8Array }[] = [];
const samples = new Map<string, Uint8Array>();
for (const name of SAMPLES) samples.set(name, await fixture(name));
for (const name of CODEC_SAMPLES) samples.set(name, codecSample(name).bytes);
const r = seededRandom(11);
for (const [name, bytes] of samples) {
  for (let i = 1; i <= 48; i++) {
    const cut = Math.floor((bytes.length * i) / 49);
    inputs.push({ name: `${name} cut to ${cut}`, kind: "cut", bytes: bytes.slice(0, cut) });
  }
  for (let i = 0; i < 48; i++) {
    const damaged = bytes.slice();
    const edits = 1 + Math.floor(r() * 4);
    for (let e = 0; e < edits; e++) damaged[Math.floor(r() * damaged.length)] = Math.floor(r() * 256);
    inputs.push({ name: `${name} damaged`, kind: "damaged", bytes: damaged });
  }
}
inputs.push({ name: "PNG bomb", kind: "bomb", bytes: pngBomb() });
inputs.push({ name: "JPEG bomb", kind: "bomb", bytes: jpegBomb(samples.get("rocket.jpg")!) });
inputs.push({ name: "TIFF bomb", kind: "bomb", bytes: tiffDeclaring(samples.get("camera.tif")!) });

const tally = () => ({
  inputs: 0,
  headerCheckRefuses: 0,
  structureRefuses: 0,
  // Refused by checkStructure but not by the header check: the 400 the client gets now, rather than a job failing.
  caughtOnlyByStructure: 0,
  // ...of which the worker's decode would also fail (the rest the decoder would accept: the documented EOI rule).
  caughtOnlyByStructureDecoderFails: 0,
  caughtOnlyByStructureDecoderAccepts: 0,
  // Passing both upload checks, failing in the worker.
  leftToWorker: 0,
  crashes: 0,
});
const byKind = { cut: tally(), damaged: tally(), bomb: tally() };
const acceptedByDecoderExamples = new Set<string>();
for (const input of inputs) {
  const counts = byKind[input.kind];
  counts.inputs++;
  const header = outcome(() => assertPixelLimit(input.bytes, MAX_PIXELS));
  const structure = outcome(() => checkStructure(input.bytes, MAX_PIXELS));
  const decode = header || structure ? outcome(() => decodeImage(input.bytes, MAX_PIXELS)) : null;
  for (const o of [header, structure, decode]) if (o?.startsWith("crash")) counts.crashes++;
  if (header) counts.headerCheckRefuses++;
  if (structure) counts.structureRefuses++;
  if (structure && !header) {
    counts.caughtOnlyByStructure++;
    if (decode) counts.caughtOnlyByStructureDecoderFails++;
    else {
      counts.caughtOnlyByStructureDecoderAccepts++;
      acceptedByDecoderExamples.add(input.name.replace(/ to \d+$/, ""));
    }
  }
  if (!header && !structure && outcome(() => decodeImage(input.bytes, MAX_PIXELS))) counts.leftToWorker++;
}
console.log(JSON.stringify({ ...byKind, acceptedByDecoderExamples: [...acceptedByDecoderExamples] }, null, 2));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log("\n| sample | bytes | checkStructure | decode | check / decode |\n| --- | --- | --- | --- | --- |");
for (const name of SAMPLES) {
  const bytes = samples.get(name)!;
  const check: number[] = [], decode: number[] = [];
  for (let i = 0; i < 15; i++) {
    let t = performance.now();
    checkStructure(bytes, MAX_PIXELS);
    check.push(performance.now() - t);
    t = performance.now();
    decodeImage(bytes, MAX_PIXELS);
    decode.push(performance.now() - t);
  }
  const c = median(check), d = median(decode);
  console.log(
    `| ${name} | ${bytes.length} | ${c.toFixed(2)} ms | ${d.toFixed(1)} ms | ${(100 * c / d).toFixed(1)} % |`,
  );
}
