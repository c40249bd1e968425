import assert from "node:assert/strict";
import { decode as fastPngDecode } from "fast-png";
import { crc32, inflateSync } from "node:zlib";
import { analyseContours } from "../imaging/contours.ts";
import { decodeImage } from "../imaging/decode.ts";
import { encodePng } from "../imaging/encode.ts";
import { DEFAULT_OPTIONS } from "../imaging/options.ts";
import { loadPipeline } from "../imaging/pipeline.ts";
import { encodePngWasm, loadPngEncoder, pngEncoderMemoryBytes } from "../imaging/png_encode.ts";
import type { Raster } from "../imaging/raster.ts";
import { assertSameBytes, fixture, SAMPLES, seededRandom } from "./fixtures.ts";
import { testWasmMatchesSource } from "./native_tools.ts";

const COLOUR_TYPES: Record<number, number> = { 1: 0, 3: 2, 4: 6 };

/** The raster the file should hold: RGBA without its alpha when it is dropped. */
function expectedPixels(raster: Raster, dropAlpha: boolean): Raster {
  if (!(dropAlpha && raster.channels === 4)) return raster;
  const n = raster.width * raster.height;
  const data = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) data.set(raster.data.subarray(p * 4, p * 4 + 3), p * 3);
  return { ...raster, channels: 3, data };
}

/** The chunks of a PNG file, checked for order and CRCs. */
function readChunks(png: Uint8Array): { ihdr: DataView; idat: Uint8Array; idatChunks: number } {
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "signature");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const types: string[] = [];
  const idat: Uint8Array[] = [];
  let ihdr: DataView | undefined;
  for (let at = 8; at < png.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const body = png.subarray(at + 8, at + 8 + length);
    assert.equal(view.getUint32(at + 8 + length), crc32(png.subarray(at + 4, at + 8 + length)) >>> 0, `${type} CRC`);
    types.push(type);
    if (type === "IHDR") ihdr = new DataView(body.buffer, body.byteOffset, body.byteLength);
    if (type === "IDAT") idat.push(body);
    at += 12 + length;
  }
  assert.equal(types[0], "IHDR");
  assert.equal(types.at(-1), "IEND");
  assert.ok(types.slice(1, -1).every((t) => t === "IDAT"), `chunks: ${types.join(" ")}`);
  assert.ok(idat.length >= 1);
  const joined = new Uint8Array(idat.reduce((n, c) => n + c.length, 0));
  idat.reduce((at, c) => (joined.set(c, at), at + c.length), 0);
  return { ihdr: ihdr!, idat: joined, idatChunks: idat.length };
}

/**
 * Encodes and checks the file: header, chunk CRCs, a zlib stream that node:zlib inflates (Adler-32 included) to
 * exactly the filtered rows, and pixels equal to the input through the project's decoder and through fast-png's.
 */
function assertRoundTrip(raster: Raster, dropAlpha: boolean, label: string): Uint8Array {
  const png = encodePngWasm(raster, dropAlpha);
  const want = expectedPixels(raster, dropAlpha);
  const { width, height, channels } = want;
  const { ihdr, idat } = readChunks(png);
  assert.deepEqual(
    [ihdr.getUint32(0), ihdr.getUint32(4), ihdr.getUint8(8), ihdr.getUint8(9), ihdr.getUint8(12)],
    [width, height, 8, COLOUR_TYPES[channels], 0],
    `${label}: IHDR`,
  );
  const filtered = inflateSync(idat);
  assert.equal(filtered.length, height * (width * channels + 1), `${label}: inflated size`);
  for (let y = 0; y < height; y++) assert.ok(filtered[y * (width * channels + 1)] <= 4, `${label}: filter type`);

  const ours = decodeImage(png);
  assert.equal(ours.format, "png");
  assert.equal(ours.raster.channels, channels, `${label}: channels (decodeImage)`);
  assertSameBytes(ours.raster.data.subarray(0, width * height * channels), want.data, `${label}: decodeImage`);
  const theirs = fastPngDecode(png);
  assert.deepEqual([theirs.width, theirs.height, theirs.channels, theirs.depth], [width, height, channels, 8]);
  assertSameBytes(theirs.data as Uint8Array, want.data, `${label}: fast-png`);
  return png;
}

type Kind = "noise" | "flat" | "gradient" | "speckled";

function makeRaster(width: number, height: number, channels: 1 | 3 | 4, kind: Kind, seed: number): Raster {
  const random = seededRandom(seed);
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < data.length; i++) {
    const p = Math.floor(i / channels), x = p % width, y = Math.floor(p / width), c = i % channels;
    data[i] = kind === "noise"
      ? Math.floor(random() * 256)
      : kind === "flat"
      ? 37 + 50 * c
      : kind === "gradient"
      ? (x * 3 + y * 5 + c * 40) & 255
      : random() < 0.02
      ? Math.floor(random() * 256)
      : 200 - c;
  }
  return { width, height, channels, data };
}

Deno.test("encodePngWasm: the samples and their annotated images round-trip pixel for pixel", async (t) => {
  const cv = await loadPipeline();
  for (const name of SAMPLES) {
    await t.step(name, async () => {
      const { raster } = decodeImage(await fixture(name));
      assertRoundTrip(raster, false, name);
      const annotated = analyseContours(cv, raster, DEFAULT_OPTIONS).annotated!;
      const png = assertRoundTrip(annotated, true, `${name}, annotated`);
      // What the pipeline writes is this encoder's file.
      assertSameBytes(encodePng(annotated, true), png, `${name}: encodePng`);
    });
  }
});

Deno.test("encodePngWasm: every layout, odd sizes, noise, flat, gradients", async (t) => {
  const sizes = [
    [1, 1],
    [1, 7],
    [7, 1],
    [2, 3],
    [3, 2],
    [5, 5],
    [13, 7],
    [15, 16],
    [16, 15],
    [17, 33],
    [31, 2],
    [
      257,
      129,
    ],
    [1, 3000],
    [3000, 1],
  ];
  let seed = 1;
  for (const kind of ["noise", "flat", "gradient", "speckled"] as const) {
    await t.step(kind, () => {
      for (const [width, height] of sizes) {
        for (const channels of [1, 3, 4] as const) {
          const raster = makeRaster(width, height, channels, kind, seed++);
          assertRoundTrip(raster, false, `${width}×${height}×${channels} ${kind}`);
          if (channels === 4) assertRoundTrip(raster, true, `${width}×${height}×4 ${kind}, alpha dropped`);
        }
      }
    });
  }
});

Deno.test("encodePngWasm: every filter gets chosen, and decodes", async () => {
  const seen = new Set<number>();
  const rasters = [decodeImage(await fixture("hubble_deep_field.jpg")).raster];
  for (const kind of ["noise", "gradient", "speckled"] as const) {
    for (const channels of [1, 3, 4] as const) rasters.push(makeRaster(257, 129, channels, kind, channels));
  }
  for (const [i, raster] of rasters.entries()) {
    const png = assertRoundTrip(raster, false, `image ${i}`);
    const filtered = inflateSync(readChunks(png).idat);
    const row = raster.width * raster.channels + 1;
    for (let y = 0; y < raster.height; y++) seen.add(filtered[y * row]);
  }
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4]);
});

Deno.test("encodePngWasm: RGBA with the alpha dropped is the same file as the RGB raster", () => {
  for (const kind of ["noise", "gradient", "speckled"] as const) {
    const rgba = makeRaster(61, 17, 4, kind, 99);
    const rgb = expectedPixels(rgba, true);
    assertSameBytes(encodePngWasm(rgba, true), encodePngWasm(rgb, false), kind);
  }
});

Deno.test("encodePngWasm: a 4000×3000 image, several blocks and IDAT chunks", () => {
  const width = 4000, height = 3000;
  const random = seededRandom(3);
  const data = new Uint8Array(width * height * 4);
  // Smooth shading with noise, flat bands and a hard edge: every filter and both token kinds get used.
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i += 4) {
      const flat = (y >> 6) % 3 === 0;
      const v = flat ? 120 : ((x >> 2) + (y >> 3) + (x > 2000 ? 90 : 0) + Math.floor(random() * 6)) & 255;
      data[i] = v;
      data[i + 1] = flat ? 200 : (v * 3) & 255;
      data[i + 2] = 255 - v;
      data[i + 3] = 255;
    }
  }
  const raster: Raster = { width, height, channels: 4, data };
  const png = assertRoundTrip(raster, true, "4000×3000");
  assert.ok(readChunks(png).idatChunks > 1);
  assert.ok(png.length < width * height * 3 * 0.6, `${png.length} bytes`);
});

Deno.test("encodePngWasm: rows longer than a block (one row per block)", () => {
  for (const kind of ["noise", "gradient", "speckled"] as const) {
    assertRoundTrip(makeRaster(50_001, 3, 3, kind, 11), false, `50001×3×3 ${kind}`);
  }
});

Deno.test("encodePngWasm: noise is stored, never expanded beyond the blocks' headers", () => {
  const raster = makeRaster(512, 512, 3, "noise", 5);
  const png = assertRoundTrip(raster, false, "noise");
  const raw = 512 * (512 * 3 + 1);
  assert.ok(png.length <= raw + 5 * Math.ceil(raw / 65535) * 2 + 200, `${png.length} bytes for ${raw}`);
});

Deno.test("encodePngWasm: a block its sample misjudges is rewritten stored", () => {
  // Rows of 4096 filtered bytes: the histogram samples the first 4 KiB of every 16 KiB, here rows 0, 4, 8…, which
  // hold small values (-4..3, left unfiltered), so the code gives the other 248 byte values long codes. The other
  // rows are noise, mostly those values: coded, the block would come out larger than stored.
  const width = 4095, height = 32;
  const random = seededRandom(17);
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) {
    data[i] = Math.floor(i / width) % 4 === 0 ? (Math.floor(random() * 8) - 4) & 255 : Math.floor(random() * 256);
  }
  const png = assertRoundTrip({ width, height, channels: 1, data }, false, "misjudged");
  const { idat } = readChunks(png);
  assert.equal((idat[2] >> 1) & 3, 0, "the block is stored (BTYPE 00)");
  assert.ok(png.length < height * (width + 1) + 200, `${png.length} bytes`);
});

Deno.test("encodePngWasm: rejects empty images and rasters shorter than their size", () => {
  assert.throws(() => encodePngWasm({ width: 0, height: 5, channels: 3, data: new Uint8Array(0) }, false), RangeError);
  assert.throws(() => encodePngWasm({ width: 4, height: 4, channels: 3, data: new Uint8Array(47) }, false), RangeError);
});

Deno.test("encodePngWasm: after an image needing over 64 MiB, a smaller one starts afresh", async () => {
  await loadPngEncoder();
  // One 6-million-pixel row: the strip, row buffers, block and output each hold it.
  const wide = makeRaster(6_000_000, 1, 3, "gradient", 23);
  const png = encodePngWasm(wide, false);
  assertSameBytes(decodeImage(png).raster.data, wide.data, "wide row");
  assert.ok(pngEncoderMemoryBytes() > 64 * 1024 * 1024, `${pngEncoderMemoryBytes()} bytes held`);
  assertRoundTrip(makeRaster(300, 200, 3, "speckled", 29), false, "after a large image");
  assert.ok(pngEncoderMemoryBytes() < 64 * 1024 * 1024, `${pngEncoderMemoryBytes()} bytes held`);
});

testWasmMatchesSource("build:png-encoder", "imaging/png_encoder/png_encoder.wasm");
