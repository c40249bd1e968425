import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { encode as fastPngEncode } from "fast-png";
import { zlibSync } from "fflate";
import pngjs from "pngjs";
import { encodePng } from "../imaging/encode.ts";
import { decodePng, readPngSize } from "../imaging/png.ts";
import { ImageError } from "../imaging/image_error.ts";
import type { Raster } from "../imaging/raster.ts";
import { concatBytes } from "../imaging/bytes.ts";
import { seededRandom } from "./fixtures.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url);

// ---------------------------------------------------------------------------------------------------------------
// Test-only PNG writer. fast-png's encoder cannot write Adam7 below 8 bits (it emits no pixel data) and writes a
// palette's tRNS entries shifted whenever an opaque entry precedes a translucent one, and it only ever uses
// filter type 0; this writer covers those cases and cycles through all five filters to exercise unfiltering.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
const pngFile = (chunks: Uint8Array[]) => concatBytes([SIGNATURE, ...chunks]);

function ihdr(width: number, height: number, depth: number, colorType: number, interlace = false): Uint8Array {
  const data = new Uint8Array(13);
  const dv = new DataView(data.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  data[8] = depth;
  data[9] = colorType;
  data[12] = interlace ? 1 : 0;
  return chunk("IHDR", data);
}

const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
const SAMPLES_PER_PIXEL: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** An image as stored in the file: one value per sample at the file's bit depth, plus what decoding must give. */
interface Variant {
  name: string;
  width: number;
  height: number;
  colorType: number;
  depth: number;
  samples: Uint16Array;
  palette?: Uint8Array;
  transparency?: Uint8Array;
  expected: Raster;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Serialised, filtered scanlines (every pass when interlaced), filter type cycling 0..4 row by row. */
function scanlines(v: Variant, interlace: boolean): Uint8Array {
  const spp = SAMPLES_PER_PIXEL[v.colorType];
  const bpp = Math.max(1, (spp * v.depth) >> 3);
  const out: Uint8Array[] = [];
  let rowNumber = 0;
  for (const [x0, y0, dx, dy] of interlace ? ADAM7 : [[0, 0, 1, 1]]) {
    const columns = Math.ceil((v.width - x0) / dx), rows = Math.ceil((v.height - y0) / dy);
    if (columns <= 0 || rows <= 0) continue;
    const stride = Math.ceil((columns * spp * v.depth) / 8);
    let prev = new Uint8Array(stride);
    for (let py = 0; py < rows; py++) {
      const raw = new Uint8Array(stride);
      const y = y0 + py * dy;
      let bit = 0;
      for (let px = 0; px < columns; px++) {
        for (let c = 0; c < spp; c++, bit += v.depth) {
          const value = v.samples[(y * v.width + x0 + px * dx) * spp + c];
          if (v.depth === 16) {
            raw[bit >> 3] = value >> 8;
            raw[(bit >> 3) + 1] = value & 0xff;
          } else {
            raw[bit >> 3] |= value << (8 - v.depth - (bit & 7));
          }
        }
      }
      const filter = rowNumber++ % 5;
      const line = new Uint8Array(stride + 1);
      line[0] = filter;
      for (let i = 0; i < stride; i++) {
        const a = i >= bpp ? raw[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
        const predictor = [0, a, b, (a + b) >> 1, paeth(a, b, c)][filter];
        line[i + 1] = raw[i] - predictor;
      }
      out.push(line);
      prev = raw;
    }
  }
  return concatBytes(out);
}

interface WriteOptions {
  interlace?: boolean;
  /** Chunks placed after PLTE/tRNS and before IDAT. */
  beforeIdat?: Uint8Array[];
  /** Chunks placed after IDAT and before IEND. */
  afterIdat?: Uint8Array[];
  /** Replaces the filtered scanlines (to forge short or surplus data). */
  scanlines?: Uint8Array;
}

function writePng(v: Variant, options: WriteOptions = {}): Uint8Array {
  const interlace = options.interlace ?? false;
  const chunks = [ihdr(v.width, v.height, v.depth, v.colorType, interlace)];
  if (v.palette) chunks.push(chunk("PLTE", v.palette));
  if (v.transparency) chunks.push(chunk("tRNS", v.transparency));
  chunks.push(...(options.beforeIdat ?? []));
  const idat = zlibSync(options.scanlines ?? scanlines(v, interlace));
  // Two IDAT chunks, so that their concatenation is exercised too.
  const half = idat.length >> 1;
  chunks.push(chunk("IDAT", idat.subarray(0, half)), chunk("IDAT", idat.subarray(half)));
  chunks.push(...(options.afterIdat ?? []), chunk("IEND"));
  return pngFile(chunks);
}

/** fast-png's encoder wants sub-byte samples packed, each row starting on a byte boundary. */
function fastPngWrite(v: Variant, interlace: boolean): Uint8Array {
  const spp = SAMPLES_PER_PIXEL[v.colorType];
  let data: Uint8Array | Uint16Array;
  if (v.depth === 16) data = v.samples;
  else if (v.depth === 8) data = Uint8Array.from(v.samples);
  else {
    const stride = Math.ceil((v.width * spp * v.depth) / 8);
    data = new Uint8Array(stride * v.height);
    for (let y = 0; y < v.height; y++) {
      for (let x = 0; x < v.width * spp; x++) {
        const bit = x * v.depth;
        data[y * stride + (bit >> 3)] |= v.samples[y * v.width * spp + x] << (8 - v.depth - (bit & 7));
      }
    }
  }
  const palette = v.palette
    ? Array.from({ length: v.palette.length / 3 }, (_, i) => [...v.palette!.subarray(i * 3, i * 3 + 3)])
    : undefined;
  return fastPngEncode(
    { width: v.width, height: v.height, data, depth: v.depth as 1 | 2 | 4 | 8 | 16, channels: spp, palette },
    { interlace: interlace ? "Adam7" : "null" },
  );
}

/** What fast-png 8.0.0's encoder gets right (checked against pngjs when this test was written). */
function fastPngCanWrite(v: Variant, interlace: boolean): boolean {
  return !v.transparency && !(interlace && v.depth < 8);
}

// ---------------------------------------------------------------------------------------------------------------
// Sources and the variants derived from them.

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s & 0xff;
  };
}

interface Source {
  name: string;
  width: number;
  height: number;
  rgba: Uint8Array;
  gray: Uint8Array;
}

function syntheticSource(): Source {
  const width = 13, height = 7;
  const next = prng(0x1234567);
  const rgba = Uint8Array.from({ length: width * height * 4 }, next);
  const gray = Uint8Array.from(
    { length: width * height },
    (_, i) => (77 * rgba[i * 4] + 150 * rgba[i * 4 + 1] + 29 * rgba[i * 4 + 2]) >> 8,
  );
  return { name: "13×7 pseudo-random", width, height, rgba, gray };
}

function coinsSource(): Source {
  const png = pngjs.PNG.sync.read(Buffer.from(Deno.readFileSync(new URL("coins.png", FIXTURES))));
  const { width, height } = png;
  const gray = Uint8Array.from({ length: width * height }, (_, i) => png.data[i * 4]);
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < gray.length; i++) {
    const g = gray[i];
    rgba.set([g, 255 - g, (g * 7) & 0xff, (g + 128) & 0xff], i * 4);
  }
  return { name: "coins.png", width, height, rgba, gray };
}

function variants(src: Source): Variant[] {
  const { width, height, rgba, gray } = src;
  const n = width * height;
  const next = prng(0xbeef);
  // 16-bit samples get a random low byte, so keeping the high byte (libpng's strip_16) is told apart from rounding.
  const to16 = (v: number) => (v << 8) | next();
  const base = { width, height };
  const list: Variant[] = [];

  for (const depth of [1, 2, 4, 8, 16]) {
    const shift = Math.max(0, 8 - depth), max = (1 << Math.min(depth, 8)) - 1;
    list.push({
      ...base,
      name: `gray ${depth}-bit`,
      colorType: 0,
      depth,
      samples: Uint16Array.from(gray, (g) => depth === 16 ? to16(g) : g >> shift),
      expected: { ...base, channels: 1, data: Uint8Array.from(gray, (g) => ((g >> shift) * 255) / max) },
    });
  }
  for (const depth of [8, 16]) {
    const widen = (v: number) => depth === 16 ? to16(v) : v;
    const rgb = Uint8Array.from({ length: n * 3 }, (_, i) => rgba[Math.floor(i / 3) * 4 + (i % 3)]);
    list.push({
      ...base,
      name: `RGB ${depth}-bit`,
      colorType: 2,
      depth,
      samples: Uint16Array.from(rgb, widen),
      expected: { ...base, channels: 3, data: rgb },
    });
    list.push({
      ...base,
      name: `RGBA ${depth}-bit`,
      colorType: 6,
      depth,
      samples: Uint16Array.from(rgba, widen),
      expected: { ...base, channels: 4, data: rgba },
    });
    const ga = Uint8Array.from({ length: n * 2 }, (_, i) => i % 2 ? rgba[(i >> 1) * 4 + 3] : gray[i >> 1]);
    list.push({
      ...base,
      name: `gray+alpha ${depth}-bit`,
      colorType: 4,
      depth,
      samples: Uint16Array.from(ga, widen),
      expected: {
        ...base,
        channels: 4,
        data: Uint8Array.from({ length: n * 4 }, (_, i) => i % 4 === 3 ? ga[(i >> 2) * 2 + 1] : ga[(i >> 2) * 2]),
      },
    });
  }
  for (const depth of [1, 2, 4, 8]) {
    for (const withAlpha of [false, true]) {
      const entries = 1 << depth;
      const palette = Uint8Array.from({ length: entries * 3 }, next);
      // One entry short of the palette: the last entry must come out opaque.
      const transparency = withAlpha ? Uint8Array.from({ length: entries - 1 }, next) : undefined;
      const indices = Uint16Array.from(gray, (g) => g >> (8 - depth));
      const channels = withAlpha ? 4 : 3;
      const data = new Uint8Array(n * channels);
      indices.forEach((idx, i) => {
        data.set(palette.subarray(idx * 3, idx * 3 + 3), i * channels);
        if (withAlpha) data[i * 4 + 3] = idx < transparency!.length ? transparency![idx] : 255;
      });
      list.push({
        ...base,
        name: `palette ${depth}-bit${withAlpha ? " + tRNS" : ""}`,
        colorType: 3,
        depth,
        samples: indices,
        palette,
        transparency,
        expected: { ...base, channels, data },
      });
    }
  }
  return list;
}

// ---------------------------------------------------------------------------------------------------------------
// Checks.

function assertRaster(actual: Raster, expected: Raster, what: string): void {
  assert.equal(actual.width, expected.width, `${what}: width`);
  assert.equal(actual.height, expected.height, `${what}: height`);
  assert.equal(actual.channels, expected.channels, `${what}: channels`);
  assert.equal(actual.data.length, expected.data.length, `${what}: data length`);
  for (let i = 0; i < expected.data.length; i++) {
    if (actual.data[i] !== expected.data[i]) {
      const pixel = Math.floor(i / expected.channels);
      assert.fail(
        `${what}: pixel (${pixel % expected.width}, ${Math.floor(pixel / expected.width)}) channel ` +
          `${i % expected.channels} is ${actual.data[i]}, expected ${expected.data[i]}`,
      );
    }
  }
}

/** pngjs's RGBA output reduced to our channel layout (16-bit read unscaled, so its high byte is comparable). */
function pngjsRaster(bytes: Uint8Array, channels: 1 | 3 | 4, sixteen: boolean): Raster {
  const png = pngjs.PNG.sync.read(Buffer.from(bytes), { skipRescale: sixteen });
  const n = png.width * png.height;
  const data = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      const v = png.data[i * 4 + c];
      data[i * channels + c] = sixteen ? v >> 8 : v;
    }
  }
  return { width: png.width, height: png.height, channels, data };
}

function assertImageError(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ImageError, `expected an ImageError, got ${err}`);
    assert.equal(err.code, code, `code of "${err.message}"`);
    assert.match(err.message, message);
    return true;
  });
}

const rgbVariant = (src: Source) => variants(src).find((v) => v.name === "RGB 8-bit")!;

function patch(bytes: Uint8Array, at: number, values: number[]): Uint8Array {
  const out = bytes.slice();
  out.set(values, at);
  return out;
}

/** Recomputes every chunk CRC, so that damage reaches the decoder's later stages instead of the CRC check. */
function fixCrcs(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const dv = new DataView(out.buffer);
  for (let pos = 8; pos + 12 <= out.length;) {
    const length = dv.getUint32(pos);
    const end = pos + 8 + length;
    if (end + 4 > out.length) break;
    dv.setUint32(end, crc32(out.subarray(pos + 4, end)));
    pos = end + 4;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

Deno.test("decodePng: every colour type, bit depth and interlace against the source and pngjs", async (t) => {
  for (const src of [syntheticSource(), coinsSource()]) {
    await t.step(src.name, async (t) => {
      for (const v of variants(src)) {
        for (const interlace of [false, true]) {
          const writers: Record<string, (v: Variant, interlace: boolean) => Uint8Array> = {
            "test writer": (v, interlace) => writePng(v, { interlace }),
          };
          if (fastPngCanWrite(v, interlace)) writers["fast-png"] = fastPngWrite;
          for (const [writer, write] of Object.entries(writers)) {
            const what = `${v.name}${interlace ? ", Adam7" : ""} (${writer})`;
            await t.step(what, () => {
              const bytes = write(v, interlace);
              const { raster, info } = decodePng(bytes);
              assertRaster(raster, v.expected, `${what} vs source`);
              assertRaster(raster, pngjsRaster(bytes, v.expected.channels, v.depth === 16), `${what} vs pngjs`);
              assert.deepEqual(info, {});
            });
          }
        }
      }
    });
  }
});

Deno.test("decodePng: real files", async (t) => {
  for (const name of ["coins.png", "camera.png", "page.png"]) {
    await t.step(`${name} matches pngjs`, () => {
      const bytes = Deno.readFileSync(new URL(name, FIXTURES));
      const { raster } = decodePng(bytes);
      assertRaster(raster, pngjsRaster(bytes, raster.channels, false), name);
    });
  }
});

Deno.test("decodePng: special cases", async (t) => {
  const src = syntheticSource();
  const all = variants(src);
  const find = (name: string) => all.find((v) => v.name === name)!;

  await t.step("width 13 at 1, 2 and 4 bits: rows are padded to whole bytes", () => {
    // 13 pixels at 1 bit need 2 bytes per row with 3 padding bits; reading them unpadded would shift every row.
    for (const depth of [1, 2, 4]) {
      const v = find(`gray ${depth}-bit`);
      assert.equal(v.width, 13);
      assertRaster(decodePng(fastPngWrite(v, false)).raster, v.expected, `gray ${depth}-bit`);
      const p = find(`palette ${depth}-bit`);
      assertRaster(decodePng(writePng(p, { interlace: true })).raster, p.expected, `palette ${depth}-bit Adam7`);
    }
  });

  await t.step("palette indices beyond the palette decode as black (opaque with tRNS)", () => {
    const v = find("palette 4-bit");
    const short = { ...v, palette: v.palette!.subarray(0, 5 * 3) };
    const { raster } = decodePng(writePng(short));
    assert.equal(raster.channels, 3);
    v.samples.forEach((idx, i) => {
      const want = idx < 5 ? [...v.palette!.subarray(idx * 3, idx * 3 + 3)] : [0, 0, 0];
      assert.deepEqual([...raster.data.subarray(i * 3, i * 3 + 3)], want, `pixel ${i}, index ${idx}`);
    });
    const withAlpha = { ...short, transparency: Uint8Array.of(10, 20, 30) };
    const rgba = decodePng(writePng(withAlpha)).raster;
    assert.equal(rgba.channels, 4);
    v.samples.forEach((idx, i) => {
      const rgb = idx < 5 ? [...v.palette!.subarray(idx * 3, idx * 3 + 3)] : [0, 0, 0];
      const a = idx < 3 ? [10, 20, 30][idx] : 255;
      assert.deepEqual([...rgba.data.subarray(i * 4, i * 4 + 4)], [...rgb, a], `pixel ${i}, index ${idx}`);
    });
  });

  await t.step("tRNS on gray and RGB images is ignored (as OpenCV does)", () => {
    const gray = find("gray 8-bit");
    const g = decodePng(writePng(gray, { beforeIdat: [chunk("tRNS", Uint8Array.of(0, gray.samples[0]))] })).raster;
    assertRaster(g, gray.expected, "gray with tRNS");
    const rgb = find("RGB 8-bit");
    const c = decodePng(writePng(rgb, { beforeIdat: [chunk("tRNS", Uint8Array.of(0, 1, 0, 2, 0, 3))] })).raster;
    assertRaster(c, rgb.expected, "RGB with tRNS");
  });

  await t.step("a tRNS longer than the palette is ignored, like libpng does", () => {
    const v = find("palette 1-bit");
    const { raster } = decodePng(writePng({ ...v, transparency: Uint8Array.of(1, 2, 3) }));
    assertRaster(raster, v.expected, "palette with oversized tRNS");
  });

  await t.step("APNG: the default image, with the frame count in info", () => {
    const v = find("RGBA 8-bit");
    const actl = new Uint8Array(8);
    new DataView(actl.buffer).setUint32(0, 3);
    // The frames themselves (fcTL/fdAT) are ancillary chunks that must simply be skipped.
    const fctl = chunk("fcTL", new Uint8Array(26));
    const fdat = chunk("fdAT", new Uint8Array(10));
    const bytes = writePng(v, { beforeIdat: [chunk("acTL", actl), fctl], afterIdat: [fctl, fdat, fctl, fdat] });
    const { raster, info } = decodePng(bytes);
    assertRaster(raster, v.expected, "APNG default image");
    assert.equal(info.pages, 3);
    assert.equal(info.notes?.length, 1);
    assert.match(info.notes![0], /animated PNG with 3 frames/);
    new DataView(actl.buffer).setUint32(0, 1);
    assert.deepEqual(decodePng(writePng(v, { beforeIdat: [chunk("acTL", actl)] })).info, {});
  });

  await t.step("tolerated like libpng: surplus image data, bad Adler-32, damaged ancillary chunk", () => {
    const v = find("RGB 8-bit");
    const lines = scanlines(v, false);
    const surplus = concatBytes([lines, new Uint8Array(100)]);
    assertRaster(decodePng(writePng(v, { scanlines: surplus })).raster, v.expected, "surplus data");

    const z = zlibSync(lines);
    z[z.length - 1] ^= 0xff;
    const badAdler = pngFile([ihdr(13, 7, 8, 2), chunk("IDAT", z), chunk("IEND")]);
    assertRaster(decodePng(badAdler).raster, v.expected, "bad Adler-32");

    const text = chunk("tEXt", new TextEncoder().encode("Comment\0hello"));
    text[text.length - 1] ^= 1;
    assertRaster(decodePng(writePng(v, { beforeIdat: [text] })).raster, v.expected, "bad tEXt CRC");

    const p = find("palette 2-bit + tRNS");
    const trns = chunk("tRNS", p.transparency!);
    trns[trns.length - 1] ^= 1;
    const damaged = decodePng(writePng({ ...p, transparency: undefined }, { beforeIdat: [trns] })).raster;
    assert.equal(damaged.channels, 3, "a damaged tRNS is dropped");
  });
});

Deno.test("decodePng: errors", async (t) => {
  const v = rgbVariant(syntheticSource());
  const good = writePng(v);
  const idatAt = 8 + 25; // signature + IHDR

  await t.step("truncated files", () => {
    for (const length of [20, 40, idatAt + 20, good.length - 30, good.length - 12, good.length - 1]) {
      assertImageError(() => decodePng(good.subarray(0, length)), "corrupt_image", /truncated/);
    }
  });

  await t.step("bad CRC on IDAT", () => {
    const bad = patch(good, idatAt + 10, [good[idatAt + 10] ^ 0xff]);
    assertImageError(() => decodePng(bad), "corrupt_image", /IDAT chunk has a bad CRC/);
  });

  await t.step("bad CRC on IHDR (readPngSize too)", () => {
    const bad = patch(good, 29, [good[29] ^ 1]);
    assertImageError(() => decodePng(bad), "corrupt_image", /IHDR chunk has a bad CRC/);
    assertImageError(() => readPngSize(bad), "corrupt_image", /IHDR chunk has a bad CRC/);
  });

  await t.step("garbage IDAT with a valid CRC", () => {
    const garbage = Uint8Array.from({ length: 60 }, prng(7));
    const bytes = pngFile([ihdr(13, 7, 8, 2), chunk("IDAT", garbage), chunk("IEND")]);
    assertImageError(() => decodePng(bytes), "corrupt_image", /could not be decompressed/);
  });

  await t.step("valid zlib stream with too little image data", () => {
    const lines = scanlines(v, false);
    for (const missing of [1, 40, lines.length - 1]) {
      const bytes = writePng(v, { scanlines: lines.subarray(0, lines.length - missing) });
      assertImageError(() => decodePng(bytes), "corrupt_image", /truncated/);
    }
  });

  await t.step("zero width or height", () => {
    const w0 = fixCrcs(patch(good, 16, [0, 0, 0, 0]));
    assertImageError(() => decodePng(w0), "corrupt_image", /zero width/);
    assertImageError(() => readPngSize(w0), "corrupt_image", /zero width/);
    const h0 = fixCrcs(patch(good, 20, [0, 0, 0, 0]));
    assertImageError(() => decodePng(h0), "corrupt_image", /zero height/);
  });

  await t.step("forged huge size with tiny data fails fast, without allocating the image", () => {
    const bytes = fixCrcs(patch(good, 16, [0, 1, 0, 0, 0, 1, 0, 0])); // 65536 × 65536
    assert.deepEqual(readPngSize(bytes), { width: 65536, height: 65536 });
    assertImageError(() => decodePng(bytes), "corrupt_image", /too short/);
  });

  await t.step("invalid header fields", () => {
    const cases: [number, number, RegExp][] = [
      [24, 3, /bit depth 3/],
      [25, 5, /colour type 5/],
      [26, 1, /compression method/],
      [27, 1, /filter method/],
      [28, 2, /interlace method/],
    ];
    for (const [at, value, message] of cases) {
      assertImageError(() => decodePng(fixCrcs(patch(good, at, [value]))), "corrupt_image", message);
    }
    // 16-bit palettes do not exist.
    assertImageError(() => decodePng(fixCrcs(patch(good, 24, [16, 3]))), "corrupt_image", /bit depth 16/);
  });

  await t.step("invalid filter type", () => {
    const lines = scanlines(v, false);
    lines[(13 * 3 + 1) * 2] = 9;
    assertImageError(() => decodePng(writePng(v, { scanlines: lines })), "corrupt_image", /filter type 9 in row 2/);
  });

  await t.step("chunk structure", () => {
    const idat = chunk("IDAT", zlibSync(scanlines(v, false)));
    const noIdat = pngFile([ihdr(13, 7, 8, 2), chunk("IEND")]);
    assertImageError(() => decodePng(noIdat), "corrupt_image", /no IDAT/);
    const noPlte = pngFile([ihdr(13, 7, 8, 3), idat, chunk("IEND")]);
    assertImageError(() => decodePng(noPlte), "corrupt_image", /no PLTE/);
    const twoIhdr = pngFile([ihdr(13, 7, 8, 2), ihdr(13, 7, 8, 2), idat, chunk("IEND")]);
    assertImageError(() => decodePng(twoIhdr), "corrupt_image", /more than one IHDR/);
    const badPlte = pngFile([ihdr(13, 7, 8, 3), chunk("PLTE", new Uint8Array(4)), idat, chunk("IEND")]);
    assertImageError(() => decodePng(badPlte), "corrupt_image", /PLTE chunk has invalid length/);
    const notFirst = pngFile([chunk("tEXt", new Uint8Array(3)), ihdr(13, 7, 8, 2), idat, chunk("IEND")]);
    assertImageError(() => decodePng(notFirst), "corrupt_image", /does not start with an IHDR/);
    const hugeLength = patch(good, idatAt, [0xff, 0xff, 0xff, 0xf0]);
    assertImageError(() => decodePng(hugeLength), "corrupt_image", /invalid length/);
  });

  await t.step("unknown critical chunk and Apple CgBI are unsupported", () => {
    const bytes = writePng(v, { beforeIdat: [chunk("ZZZZ", new Uint8Array(2))] });
    assertImageError(() => decodePng(bytes), "unsupported_image", /unknown critical chunk "ZZZZ"/);
    const cgbi = pngFile([chunk("CgBI", new Uint8Array(4)), ihdr(13, 7, 8, 6), chunk("IEND")]);
    assertImageError(() => decodePng(cgbi), "unsupported_image", /CgBI/);
  });

  await t.step("not a PNG", () => {
    assertImageError(() => decodePng(new TextEncoder().encode("hello, world")), "not_an_image", /not a PNG/);
    assertImageError(() => readPngSize(new Uint8Array(0)), "not_an_image", /not a PNG/);
  });

  await t.step("every truncation and every damaged byte gives an ImageError or a valid raster", () => {
    // Small interlaced palette image with tRNS: touches the most code paths per byte.
    const p = variants(syntheticSource()).find((v) => v.name === "palette 2-bit + tRNS")!;
    const bytes = writePng(p, { interlace: true });
    const check = (input: Uint8Array, what: string) => {
      try {
        const { raster } = decodePng(input);
        assert.equal(raster.data.length, raster.width * raster.height * raster.channels, what);
      } catch (err) {
        assert.ok(err instanceof ImageError, `${what}: ${err}`);
      }
    };
    for (let length = 0; length < bytes.length; length++) check(bytes.subarray(0, length), `cut at ${length}`);
    for (let at = 8; at < bytes.length; at++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        check(fixCrcs(patch(bytes, at, [bytes[at] ^ mask])), `byte ${at} ^ ${mask}`);
      }
    }
  });
});

Deno.test("readPngSize", async (t) => {
  await t.step("coins.png is 384×303", () => {
    assert.deepEqual(readPngSize(Deno.readFileSync(new URL("coins.png", FIXTURES))), { width: 384, height: 303 });
  });
  await t.step("needs only the first 33 bytes", () => {
    const bytes = writePng(rgbVariant(syntheticSource()));
    assert.deepEqual(readPngSize(bytes.subarray(0, 33)), { width: 13, height: 7 });
    assertImageError(() => readPngSize(bytes.subarray(0, 32)), "corrupt_image", /truncated/);
  });
});

Deno.test("encodePng with dropAlpha writes RGBA as the same RGB file the RGB raster gives", () => {
  const random = seededRandom(7);
  for (const [width, height] of [[1, 1], [3, 2], [61, 17]]) {
    const rgba = new Uint8Array(width * height * 4).map(() => Math.floor(random() * 256));
    const rgb = new Uint8Array(width * height * 3);
    for (let p = 0; p < width * height; p++) rgb.set(rgba.subarray(p * 4, p * 4 + 3), p * 3);
    const dropped = encodePng({ width, height, channels: 4, data: rgba }, true);
    assert.deepEqual(dropped, encodePng({ width, height, channels: 3, data: rgb }), `${width}×${height}`);
    const decoded = decodePng(dropped).raster;
    assert.equal(decoded.channels, 3);
    assert.deepEqual(decoded.data, rgb);
    // Without the flag, RGBA stays RGBA.
    assert.equal(decodePng(encodePng({ width, height, channels: 4, data: rgba })).raster.channels, 4);
  }
});
