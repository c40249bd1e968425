// Which JPEGs still reach imaging/jpeg.ts's jpeg-js fallback once libjpeg-turbo (WASM) is loaded, as in every pool
// member, and what libjpeg-turbo alone would make of them if the fallback went: given an EOI where the file lacks one,
// or cut back to its whole scans, as decodeArithmetic already does for arithmetic-coded files.
// Inputs: the JPEG samples and fixtures, each whole, cut at 48 points and damaged at random 48 times (1–4 bytes,
// seeded), plus each stripped of its Huffman tables (an MJPEG frame).
//
//   deno run -A bench/libraries/jpeg_fallback.ts
import { ImageError } from "../../imaging/image_error.ts";
import { decodeJpeg } from "../../imaging/jpeg.ts";
import { decodeJpegWasm, loadJpegWasm } from "../../imaging/jpeg_wasm.ts";
import { CODEC_SAMPLES, codecSample, fixture, seededRandom } from "../../tests/fixtures.ts";

await loadJpegWasm();
const names = ["rocket.jpg", "hubble_deep_field.jpg", "jpeg/crop_420.jpg", "jpeg/crop_422.jpg", "jpeg/crop_440.jpg"];
const samples = new Map<string, Uint8Array>();
for (const name of names) samples.set(name, await fixture(name));
for (const name of CODEC_SAMPLES.filter((n) => n.endsWith(".jpg"))) samples.set(name, codecSample(name).bytes);

/** Offsets of the file's markers of kind `code` (FF DA = SOS; in entropy-coded data FF is followed by 00 or RSTn). */
function markers(bytes: Uint8Array, code: number): number[] {
  const at: number[] = [];
  for (let i = 0; i + 1 < bytes.length; i++) if (bytes[i] === 0xff && bytes[i + 1] === code) at.push(i);
  return at;
}
function withoutHuffmanTables(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [bytes.subarray(0, 2)];
  let i = 2;
  while (i + 4 <= bytes.length && bytes[i] === 0xff && bytes[i + 1] !== 0xda) {
    const length = (bytes[i + 2] << 8) | bytes[i + 3];
    if (bytes[i + 1] !== 0xc4) parts.push(bytes.subarray(i, i + 2 + length));
    i += 2 + length;
  }
  parts.push(bytes.subarray(i));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
}
/**
 * libjpeg-turbo on a decompressor of its own: the module's keeps the previous image's tables, so one that traps (an
 * unknown marker after SOI) is thrown away first.
 */
function fresh(bytes: Uint8Array) {
  decodeJpegWasm(Uint8Array.of(0xff, 0xd8, 0xff, 0x01, 0, 4, 0, 0));
  return decodeJpegWasm(bytes);
}
const withEoi = (bytes: Uint8Array, end: number) => {
  const out = new Uint8Array(end + 2);
  out.set(bytes.subarray(0, end));
  out.set([0xff, 0xd9], end);
  return out;
};
/** libjpeg-turbo alone: as is, else with an EOI added, else cut back to before its last scan (two or more scans). */
function wasmAlone(bytes: Uint8Array): Uint8Array | null {
  const direct = fresh(bytes);
  if (direct) return direct.rgba;
  const eoi = fresh(withEoi(bytes, bytes.length));
  if (eoi) return eoi.rgba;
  const scans = markers(bytes, 0xda);
  return scans.length >= 2 ? fresh(withEoi(bytes, scans[scans.length - 1]))?.rgba ?? null : null;
}

const inputs: { kind: string; bytes: Uint8Array }[] = [];
const r = seededRandom(5);
for (const [, bytes] of samples) {
  inputs.push({ kind: "whole", bytes });
  inputs.push({ kind: "no Huffman tables", bytes: withoutHuffmanTables(bytes) });
  for (let i = 1; i <= 48; i++) {
    inputs.push({ kind: "cut", bytes: bytes.slice(0, Math.floor((bytes.length * i) / 49)) });
  }
  for (let i = 0; i < 48; i++) {
    const damaged = bytes.slice();
    for (let e = 1 + Math.floor(r() * 4); e > 0; e--) damaged[Math.floor(r() * damaged.length)] = Math.floor(r() * 256);
    inputs.push({ kind: "damaged", bytes: damaged });
  }
}

const table = new Map<string, number>();
let maxDiff = 0;
const started = performance.now();
for (const { kind, bytes } of inputs) {
  // decodeJpeg sends a file to libjpeg-turbo when it is whole and has its Huffman tables, and keeps the answer when
  // libjpeg-turbo gives one without a warning.
  const direct = kind !== "no Huffman tables" && kind !== "cut" && fresh(bytes) !== null;
  let ours: string, raster;
  try {
    raster = decodeJpeg(bytes).raster;
    ours = "decoded";
  } catch (err) {
    if (!(err instanceof ImageError)) throw err;
    ours = err.code;
  }
  if (direct) {
    table.set(`${kind} | libjpeg-turbo | ${ours}`, (table.get(`${kind} | libjpeg-turbo | ${ours}`) ?? 0) + 1);
    continue;
  }
  const alone = wasmAlone(bytes);
  const key = `${kind} | fallback | ${ours} | libjpeg-turbo alone: ${alone ? "decodes" : "fails"}`;
  table.set(key, (table.get(key) ?? 0) + 1);
  if (alone && raster) {
    // Gray comes back as one channel from ours, RGBA from libjpeg-turbo.
    const c = raster.channels;
    for (let p = 0; p < raster.width * raster.height; p++) {
      for (let k = 0; k < Math.min(c, 3); k++) {
        maxDiff = Math.max(maxDiff, Math.abs(raster.data[p * c + k] - alone[p * 4 + k]));
      }
    }
  }
}
console.log(
  `${inputs.length} inputs from ${samples.size} JPEGs, ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
);
console.log("| input | path | ours | libjpeg-turbo alone | count |\n| --- | --- | --- | --- | --- |");
for (const [key, n] of [...table].sort()) {
  const [kind, path, ours, alone = ""] = key.split(" | ");
  console.log(`| ${kind} | ${path} | ${ours} | ${alone.replace("libjpeg-turbo alone: ", "")} | ${n} |`);
}
console.log(`\nlargest difference between the fallback's pixels and libjpeg-turbo's where both decode: ${maxDiff}`);
