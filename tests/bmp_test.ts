import assert from "node:assert/strict";
import { decode as decodePng } from "fast-png";
import { decodeBmp, readBmpSize } from "../imaging/bmp.ts";
import { ImageError } from "../imaging/image_error.ts";
import type { Raster } from "../imaging/raster.ts";
import { seededRandom } from "./fixtures.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url);

type Rgb = [number, number, number];

// ---------------------------------------------------------------------------------------------------------------
// Test-only BMP encoder, so every variant can be checked against pixels we know exactly.

interface BmpSpec {
  width: number;
  height: number;
  bpp: number;
  pixelData: Uint8Array;
  compression?: number;
  headerSize?: 12 | 40 | 52 | 56 | 108 | 124;
  topDown?: boolean;
  palette?: Rgb[];
  masks?: number[];
  clrUsed?: number;
}

function buildBmp(spec: BmpSpec): Uint8Array {
  const headerSize = spec.headerSize ?? 40;
  const core = headerSize === 12;
  const compression = spec.compression ?? 0;
  const masks = spec.masks ?? [];
  const bitfields = compression === 3 || compression === 6;
  const maskBytes = headerSize === 40 && bitfields ? masks.length * 4 : 0;
  const palette = spec.palette ?? [];
  const entrySize = core ? 3 : 4;
  const offset = 14 + headerSize + maskBytes + palette.length * entrySize;
  const out = new Uint8Array(offset + spec.pixelData.length);
  const dv = new DataView(out.buffer);
  out[0] = 0x42;
  out[1] = 0x4d;
  dv.setUint32(2, out.length, true);
  dv.setUint32(10, offset, true);
  dv.setUint32(14, headerSize, true);
  if (core) {
    dv.setUint16(18, spec.width, true);
    dv.setUint16(20, spec.height, true);
    dv.setUint16(22, 1, true);
    dv.setUint16(24, spec.bpp, true);
  } else {
    dv.setInt32(18, spec.width, true);
    dv.setInt32(22, spec.topDown ? -spec.height : spec.height, true);
    dv.setUint16(26, 1, true);
    dv.setUint16(28, spec.bpp, true);
    dv.setUint32(30, compression, true);
    dv.setUint32(34, spec.pixelData.length, true);
    dv.setInt32(38, 2835, true);
    dv.setInt32(42, 2835, true);
    dv.setUint32(46, spec.clrUsed ?? palette.length, true);
    if (headerSize === 40) {
      masks.forEach((m, i) => dv.setUint32(54 + i * 4, m, true));
    } else {
      // V2+ headers always carry the masks, meaningful or not.
      for (let i = 0; i < (headerSize >= 56 ? 4 : 3); i++) dv.setUint32(54 + i * 4, masks[i] ?? 0, true);
    }
    if (headerSize >= 108) dv.setUint32(70, 0x73524742, true); // LCS_sRGB
    if (headerSize >= 124) dv.setUint32(122, 4, true); // LCS_GM_IMAGES
  }
  let p = 14 + headerSize + maskBytes;
  for (const [r, g, b] of palette) {
    out[p] = b;
    out[p + 1] = g;
    out[p + 2] = r;
    if (!core) out[p + 3] = 0x5a; // reserved byte: garbage that must not matter
    p += entrySize;
  }
  out.set(spec.pixelData, offset);
  return out;
}

/** Packs `value(x, y)` (a bpp-bit pixel, little-endian for whole bytes) into padded rows in file order. */
function packRows(
  width: number,
  height: number,
  bpp: number,
  value: (x: number, y: number) => number,
  topDown = false,
): Uint8Array {
  const stride = Math.floor((width * bpp + 31) / 32) * 4;
  const rowBytes = Math.ceil((width * bpp) / 8);
  const out = new Uint8Array(stride * height);
  for (let r = 0; r < height; r++) {
    const y = topDown ? r : height - 1 - r;
    const base = r * stride;
    for (let x = 0; x < width; x++) {
      const v = value(x, y);
      if (bpp < 8) {
        const bit = x * bpp;
        out[base + (bit >> 3)] |= v << (8 - bpp - (bit & 7));
      } else {
        for (let k = 0; k < bpp / 8; k++) out[base + (x * bpp) / 8 + k] = (v >>> (8 * k)) & 255;
      }
    }
    out.fill(0xaa, base + rowBytes, base + stride); // padding garbage that must be ignored
  }
  return out;
}

interface RleStats {
  encoded: number;
  absolute: number;
  delta: number;
  endOfLine: number;
  endOfBitmap: number;
}

/**
 * RLE-encodes an index image (-1 = pixel left unwritten, via delta / end-of-line / end-of-bitmap).
 * RLE4 encoded runs repeat a pair of nibbles, so alternating pixels also compress.
 */
function encodeRle(width: number, height: number, bpp: 4 | 8, idx: number[][]): { data: Uint8Array; stats: RleStats } {
  const out: number[] = [];
  const stats: RleStats = { encoded: 0, absolute: 0, delta: 0, endOfLine: 0, endOfBitmap: 0 };
  const at = (x: number, fy: number) => idx[height - 1 - fy][x];
  let fy = 0;
  let x = 0;
  // Position of the next written pixel at or after (x, fy) in file order, or null.
  const next = (): [number, number] | null => {
    for (let yy = fy, xx = x; yy < height; yy++, xx = 0) {
      for (; xx < width; xx++) if (at(xx, yy) !== -1) return [xx, yy];
    }
    return null;
  };
  while (true) {
    const n = next();
    if (n === null) break;
    const [nx, ny] = n;
    if (ny !== fy || nx !== x) {
      if (ny > fy && nx < x) {
        out.push(0, 0);
        stats.endOfLine++;
        fy++;
        x = 0;
      }
      if (nx !== x || ny !== fy) {
        out.push(0, 2, nx - x, ny - fy);
        stats.delta++;
        x = nx;
        fy = ny;
      }
    }
    // Pixels available in this row before the next skip.
    let avail = 0;
    while (x + avail < width && at(x + avail, fy) !== -1) avail++;
    const runLength = (from: number) => {
      const a = at(from, fy);
      const b = bpp === 4 && from + 1 < x + avail ? at(from + 1, fy) : a;
      let len = 1;
      while (from + len < x + avail && len < 255 && at(from + len, fy) === (len % 2 === 0 ? a : b)) len++;
      return { len, byte: bpp === 8 ? a : (a << 4) | b };
    };
    const run = runLength(x);
    if (run.len >= 3 || avail < 3) {
      const len = run.len >= 3 ? run.len : 1;
      out.push(len, bpp === 8 ? at(x, fy) : len === 1 ? at(x, fy) << 4 : run.byte);
      stats.encoded++;
      x += len;
    } else {
      let len = 0;
      while (len < avail && len < 255 && (len < 3 || runLength(x + len).len < 3)) len++;
      const values = Array.from({ length: len }, (_, i) => at(x + i, fy));
      const data: number[] = [];
      if (bpp === 8) data.push(...values);
      else for (let i = 0; i < len; i += 2) data.push((values[i] << 4) | (values[i + 1] ?? 0));
      if (data.length % 2 === 1) data.push(0);
      out.push(0, len, ...data);
      stats.absolute++;
      x += len;
    }
    if (x >= width) {
      const more = next();
      if (more !== null && fy + 1 < height) {
        out.push(0, 0);
        stats.endOfLine++;
        fy++;
        x = 0;
      }
    }
  }
  out.push(0, 1);
  stats.endOfBitmap++;
  return { data: Uint8Array.from(out), stats };
}

// ---------------------------------------------------------------------------------------------------------------
// Source image and helpers.

const W = 13;
const H = 7;
const random = seededRandom(0xb3b3);
const byte = () => Math.floor(random() * 256);
// Source RGBA pixels, row-major, top-down.
const SRC: number[][][] = Array.from(
  { length: H },
  () => Array.from({ length: W }, () => [byte(), byte(), byte(), byte()]),
);
const px = (x: number, y: number) => SRC[y][x];

function randomPalette(n: number): Rgb[] {
  return Array.from({ length: n }, () => [byte(), byte(), byte()] as Rgb);
}

function nearest(palette: Rgb[], [r, g, b]: number[]): number {
  let best = 0;
  let bestDist = Infinity;
  palette.forEach(([pr, pg, pb], i) => {
    const d = (pr - r) ** 2 + (pg - g) ** 2 + (pb - b) ** 2;
    if (d < bestDist) {
      bestDist = d;
      best = i;
    }
  });
  return best;
}

const scale = (v: number, max: number) => Math.round((v * 255) / max);

function expectedRaster(channels: 3 | 4, pixel: (x: number, y: number) => number[], width = W, height = H): Raster {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(pixel(x, y).slice(0, channels), (y * width + x) * channels);
  }
  return { width, height, channels, data };
}

function assertSameRaster(actual: Raster, expected: Raster): void {
  assert.equal(actual.width, expected.width, "width");
  assert.equal(actual.height, expected.height, "height");
  assert.equal(actual.channels, expected.channels, "channels");
  assert.equal(actual.data.length, expected.data.length, "data length");
  const c = expected.channels;
  for (let i = 0; i < expected.data.length; i += c) {
    const a = Array.from(actual.data.subarray(i, i + c));
    const e = Array.from(expected.data.subarray(i, i + c));
    const p = i / c;
    assert.deepEqual(a, e, `pixel (${p % expected.width}, ${Math.floor(p / expected.width)})`);
  }
}

function assertImageError(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ImageError, `expected ImageError, got ${err}`);
    assert.equal(err.code, code, `code for "${err.message}"`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function paletteCase(bpp: 1 | 4 | 8, colors: number, headerSize: 12 | 40 = 40, topDown = false) {
  const palette = randomPalette(colors);
  const idx = SRC.map((row) => row.map((p) => nearest(palette, p)));
  const bytes = buildBmp({
    width: W,
    height: H,
    bpp,
    headerSize,
    topDown,
    palette,
    clrUsed: colors === 1 << bpp ? 0 : colors,
    pixelData: packRows(W, H, bpp, (x, y) => idx[y][x], topDown),
  });
  return { bytes, expected: expectedRaster(3, (x, y) => palette[idx[y][x]]) };
}

function rgb24Case(headerSize: 12 | 40 | 108 | 124 = 40, topDown = false) {
  const bytes = buildBmp({
    width: W,
    height: H,
    bpp: 24,
    headerSize,
    topDown,
    pixelData: packRows(W, H, 24, (x, y) => {
      const [r, g, b] = px(x, y);
      return b | (g << 8) | (r << 16);
    }, topDown),
  });
  return { bytes, expected: expectedRaster(3, px) };
}

/** A bitfields case: `pack` builds the pixel from source RGBA, `unpack` gives the expected 8-bit RGBA. */
function bitfieldsCase(opts: {
  bpp: 16 | 32;
  masks: number[];
  compression?: number;
  headerSize?: 40 | 52 | 56 | 108 | 124;
  topDown?: boolean;
  channels: 3 | 4;
  pack: (p: number[]) => number;
  unpack: (p: number[]) => number[];
}) {
  const bytes = buildBmp({
    width: W,
    height: H,
    bpp: opts.bpp,
    compression: opts.compression ?? 3,
    headerSize: opts.headerSize,
    topDown: opts.topDown,
    masks: opts.masks,
    pixelData: packRows(W, H, opts.bpp, (x, y) => opts.pack(px(x, y)), opts.topDown),
  });
  return { bytes, expected: expectedRaster(opts.channels, (x, y) => opts.unpack(px(x, y))) };
}

/** An index image with runs, alternating pairs, literal stretches and skipped (-1) pixels, incl. a skipped tail. */
function rleIndexImage(colors: number): number[][] {
  const r = seededRandom(colors);
  const pick = () => Math.floor(r() * colors);
  const rows: number[][] = [];
  for (let y = 0; y < H; y++) {
    const row: number[] = [];
    while (row.length < W) {
      const kind = Math.floor(r() * 4);
      const len = 1 + Math.floor(r() * 6);
      const a = pick();
      const b = pick();
      for (let i = 0; i < len && row.length < W; i++) {
        row.push(kind === 0 ? a : kind === 1 ? (i % 2 ? b : a) : kind === 2 ? pick() : y === 3 ? pick() : -1);
      }
    }
    rows.push(row);
  }
  // A skipped row and a skipped end of image exercise delta across rows and an early end-of-bitmap.
  rows[4] = Array(W).fill(-1);
  rows[0].fill(-1, W - 4);
  rows[6].fill(-1, 0, 5);
  return rows;
}

function rleCase(bpp: 4 | 8) {
  const palette = randomPalette(bpp === 8 ? 40 : 16);
  const idx = rleIndexImage(palette.length);
  const { data, stats } = encodeRle(W, H, bpp, idx);
  const bytes = buildBmp({ width: W, height: H, bpp, compression: bpp === 8 ? 1 : 2, palette, pixelData: data });
  const expected = expectedRaster(3, (x, y) => palette[idx[y][x] === -1 ? 0 : idx[y][x]]);
  return { bytes, expected, stats };
}

function readFixture(name: string): Uint8Array {
  return Deno.readFileSync(new URL(name, FIXTURES));
}

/** A 24-bit header with arbitrary fields overwritten, for error cases. */
function patched(base: Uint8Array, edits: (dv: DataView) => void): Uint8Array {
  const copy = base.slice();
  edits(new DataView(copy.buffer));
  return copy;
}

// ---------------------------------------------------------------------------------------------------------------

Deno.test("decodeBmp matches the PNG of the same photo (coins)", () => {
  const bmp = decodeBmp(readFixture("coins.bmp"));
  const png = decodePng(readFixture("coins.png"));
  assert.equal(png.depth, 8);
  assert.equal(bmp.width, png.width);
  assert.equal(bmp.height, png.height);
  assert.equal(bmp.channels, 3);
  const pc = png.channels;
  assert.ok(pc === 1 || pc === 3, `unexpected PNG channels ${pc}`);
  for (let i = 0; i < png.width * png.height; i++) {
    for (let c = 0; c < 3; c++) {
      const want: number = png.data[i * pc + (pc === 1 ? 0 : c)];
      if (bmp.data[i * 3 + c] !== want) {
        assert.fail(
          `pixel ${i % png.width},${Math.floor(i / png.width)} channel ${c}: ${bmp.data[i * 3 + c]} != ${want}`,
        );
      }
    }
  }
});

Deno.test("decodeBmp generated variants", async (t) => {
  const cases: Record<string, () => { bytes: Uint8Array; expected: Raster }> = {
    "1-bit palette": () => paletteCase(1, 2),
    "4-bit palette": () => paletteCase(4, 16),
    "4-bit palette with biClrUsed 5": () => paletteCase(4, 5),
    "8-bit palette": () => paletteCase(8, 256),
    "8-bit palette with biClrUsed 20": () => paletteCase(8, 20),
    "8-bit palette top-down": () => paletteCase(8, 256, 40, true),
    "BITMAPCOREHEADER 1-bit (3-byte palette entries)": () => paletteCase(1, 2, 12),
    "BITMAPCOREHEADER 8-bit (3-byte palette entries)": () => paletteCase(8, 256, 12),
    "BITMAPCOREHEADER 24-bit": () => rgb24Case(12),
    "16-bit default 555": () => {
      const bytes = buildBmp({
        width: W,
        height: H,
        bpp: 16,
        // The top bit is unused in 555 and must be ignored.
        pixelData: packRows(W, H, 16, (x, y) => {
          const [r, g, b] = px(x, y);
          return 0x8000 | ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3);
        }),
      });
      return { bytes, expected: expectedRaster(3, (x, y) => px(x, y).slice(0, 3).map((v) => scale(v >> 3, 31))) };
    },
    ...Object.fromEntries(([40, 52] as const).map((headerSize) => [
      `16-bit 565 bitfields (${headerSize}-byte header)`,
      () =>
        bitfieldsCase({
          bpp: 16,
          headerSize,
          masks: [0xf800, 0x07e0, 0x001f],
          channels: 3,
          pack: ([r, g, b]) => ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3),
          unpack: ([r, g, b]) => [scale(r >> 3, 31), scale(g >> 2, 63), scale(b >> 3, 31)],
        }),
    ])),
    "16-bit 4444 with alpha (V3 header)": () =>
      bitfieldsCase({
        bpp: 16,
        headerSize: 56,
        masks: [0x0f00, 0x00f0, 0x000f, 0xf000],
        channels: 4,
        pack: ([r, g, b, a]) => ((a >> 4) << 12) | ((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4),
        unpack: (p) => p.map((v) => scale(v >> 4, 15)),
      }),
    "24-bit": () => rgb24Case(),
    "24-bit top-down": () => rgb24Case(40, true),
    "24-bit V4 header": () => rgb24Case(108),
    "24-bit V5 header": () => rgb24Case(124),
    "32-bit BI_RGB ignores the fourth byte": () => {
      const bytes = buildBmp({
        width: W,
        height: H,
        bpp: 32,
        headerSize: 124,
        masks: [0xff0000, 0xff00, 0xff, 0xff000000], // ignored: only meaningful with BI_BITFIELDS
        pixelData: packRows(W, H, 32, (x, y) => {
          const [r, g, b, a] = px(x, y);
          return (b | (g << 8) | (r << 16) | (a << 24)) >>> 0;
        }),
      });
      return { bytes, expected: expectedRaster(3, px) };
    },
    "32-bit BI_BITFIELDS with alpha (V5 header)": () =>
      bitfieldsCase({
        bpp: 32,
        headerSize: 124,
        masks: [0xff0000, 0xff00, 0xff, 0xff000000],
        channels: 4,
        pack: ([r, g, b, a]) => (b | (g << 8) | (r << 16) | (a << 24)) >>> 0,
        unpack: (p) => p,
      }),
    "32-bit BI_BITFIELDS with alpha, top-down (V4 header)": () =>
      bitfieldsCase({
        bpp: 32,
        headerSize: 108,
        topDown: true,
        masks: [0xff0000, 0xff00, 0xff, 0xff000000],
        channels: 4,
        pack: ([r, g, b, a]) => (b | (g << 8) | (r << 16) | (a << 24)) >>> 0,
        unpack: (p) => p,
      }),
    "32-bit BI_ALPHABITFIELDS, RGBA byte order (masks after a 40-byte header)": () =>
      bitfieldsCase({
        bpp: 32,
        compression: 6,
        masks: [0xff000000, 0xff0000, 0xff00, 0xff],
        channels: 4,
        pack: ([r, g, b, a]) => (a | (b << 8) | (g << 16) | (r << 24)) >>> 0,
        unpack: (p) => p,
      }),
    "32-bit 2:10:10:10 bitfields (field widths other than 8)": () =>
      bitfieldsCase({
        bpp: 32,
        headerSize: 56,
        masks: [0x3ff00000, 0x000ffc00, 0x000003ff, 0xc0000000],
        channels: 4,
        pack: ([r, g, b, a]) => (((a >> 6) << 30) | ((r * 4 + 1) << 20) | ((g * 4 + 2) << 10) | (b * 4 + 3)) >>> 0,
        unpack: (
          [r, g, b, a],
        ) => [scale(r * 4 + 1, 1023), scale(g * 4 + 2, 1023), scale(b * 4 + 3, 1023), scale(a >> 6, 3)],
      }),
    "32-bit BI_BITFIELDS with an all-zero alpha channel is opaque RGB": () =>
      bitfieldsCase({
        bpp: 32,
        headerSize: 124,
        masks: [0xff0000, 0xff00, 0xff, 0xff000000],
        channels: 3,
        pack: ([r, g, b]) => b | (g << 8) | (r << 16),
        unpack: (p) => p.slice(0, 3),
      }),
    "32-bit BI_BITFIELDS without alpha mask (40-byte header)": () =>
      bitfieldsCase({
        bpp: 32,
        masks: [0xff0000, 0xff00, 0xff],
        channels: 3,
        pack: ([r, g, b, a]) => (b | (g << 8) | (r << 16) | (a << 24)) >>> 0,
        unpack: (p) => p.slice(0, 3),
      }),
  };
  for (const [name, make] of Object.entries(cases)) {
    await t.step(name, () => {
      const { bytes, expected } = make();
      assertSameRaster(decodeBmp(bytes), expected);
    });
  }

  for (const bpp of [8, 4] as const) {
    await t.step(`RLE${bpp} with encoded and absolute runs, delta, end-of-line and early end-of-bitmap`, () => {
      const { bytes, expected, stats } = rleCase(bpp);
      for (const [kind, n] of Object.entries(stats)) assert.ok(n > 0, `encoder emitted no ${kind} command`);
      assertSameRaster(decodeBmp(bytes), expected);
    });
  }

  await t.step("RLE runs past the row end are clipped; the stream may end without end-of-bitmap", () => {
    const palette: Rgb[] = [[9, 9, 9], [10, 20, 30], [40, 50, 60], [70, 80, 90], [1, 2, 3]];
    // Bottom row: run of 6 (clipped to 4) of index 1. Top row: absolute 2,3,4 (padded), last pixel unwritten.
    const stream = Uint8Array.from([6, 1, 0, 0, 0, 3, 2, 3, 4, 0, 0, 0]);
    const bytes = buildBmp({ width: 4, height: 2, bpp: 8, compression: 1, palette, pixelData: stream });
    const expected = expectedRaster(3, (x, y) => y === 1 ? palette[1] : palette[[2, 3, 4, 0][x]], 4, 2);
    assertSameRaster(decodeBmp(bytes), expected);
  });
});

Deno.test("readBmpSize", async (t) => {
  await t.step("coins fixture", () => {
    assert.deepEqual(readBmpSize(readFixture("coins.bmp")), { width: 384, height: 303 });
  });
  await t.step("top-down file reports a positive height", () => {
    assert.deepEqual(readBmpSize(rgb24Case(40, true).bytes), { width: W, height: H });
  });
  await t.step("BITMAPCOREHEADER", () => {
    assert.deepEqual(readBmpSize(rgb24Case(12).bytes), { width: W, height: H });
  });
  await t.step("needs only the headers", () => {
    assert.deepEqual(readBmpSize(readFixture("coins.bmp").subarray(0, 54)), { width: 384, height: 303 });
  });
  await t.step("rejects non-BMP input", () => {
    assertImageError(() => readBmpSize(new TextEncoder().encode("GIF89a")), "not_an_image");
  });
});

Deno.test("decodeBmp errors", async (t) => {
  const base = rgb24Case().bytes;
  const pal8 = paletteCase(8, 256).bytes;
  const rle8 = rleCase(8).bytes;

  await t.step("not BM", () => {
    assertImageError(() => decodeBmp(new TextEncoder().encode("\x89PNG\r\n\x1a\n0000000000000000")), "not_an_image");
    assertImageError(() => decodeBmp(new Uint8Array()), "not_an_image");
    assertImageError(() => decodeBmp(Uint8Array.of(0x42)), "not_an_image");
  });
  await t.step("truncated header", () => {
    assertImageError(() => decodeBmp(base.subarray(0, 2)), "corrupt_image", /truncated/);
    assertImageError(() => decodeBmp(base.subarray(0, 30)), "corrupt_image", /truncated/);
    assertImageError(() => decodeBmp(base.subarray(0, 53)), "corrupt_image", /truncated/);
    assertImageError(() => readBmpSize(base.subarray(0, 30)), "corrupt_image", /truncated/);
  });
  await t.step("truncated pixel data", () => {
    assertImageError(() => decodeBmp(base.subarray(0, base.length - 5)), "corrupt_image", /pixel data truncated/);
    const coins = readFixture("coins.bmp");
    assertImageError(() => decodeBmp(coins.subarray(0, coins.length - 1000)), "corrupt_image", /pixel data truncated/);
  });
  await t.step("missing final row padding is tolerated", () => {
    // 13 pixels * 3 bytes = 39 bytes per row, padded to 40; the last row's pad byte is never needed.
    assertSameRaster(decodeBmp(base.subarray(0, base.length - 1)), rgb24Case().expected);
  });
  await t.step("truncated RLE data", () => {
    assertImageError(() => decodeBmp(rle8.subarray(0, rle8.length - 20)), "corrupt_image", /RLE data truncated/);
  });
  await t.step("compression 4 (JPEG) and 5 (PNG) are unsupported", () => {
    for (const compression of [4, 5]) {
      const bytes = patched(base, (dv) => {
        dv.setUint16(28, 0, true);
        dv.setUint32(30, compression, true);
      });
      assertImageError(() => decodeBmp(bytes), "unsupported_image", new RegExp(`BMP compression ${compression}`));
    }
    assertImageError(() => decodeBmp(patched(base, (dv) => dv.setUint32(30, 99, true))), "unsupported_image");
  });
  await t.step("bit depth 2 is unsupported", () => {
    const bytes = patched(pal8, (dv) => dv.setUint16(28, 2, true));
    assertImageError(() => decodeBmp(bytes), "unsupported_image", /BMP bit depth 2/);
    assertImageError(() => decodeBmp(patched(base, (dv) => dv.setUint16(28, 0, true))), "unsupported_image");
  });
  await t.step("OS/2 2.x header is unsupported", () => {
    assertImageError(() => decodeBmp(patched(base, (dv) => dv.setUint32(14, 64, true))), "unsupported_image");
  });
  await t.step("absurd info header size", () => {
    assertImageError(() => decodeBmp(patched(base, (dv) => dv.setUint32(14, 0xffffffff, true))), "corrupt_image");
    assertImageError(() => decodeBmp(patched(base, (dv) => dv.setUint32(14, 4, true))), "corrupt_image");
  });
  await t.step("zero and huge dimensions", () => {
    const cases: [number, number, RegExp][] = [
      [0, H, /width 0/],
      [-5, H, /width -5/],
      [1 << 20, H, /width 1048576/],
      [W, 0, /height 0/],
      [W, -(1 << 17), /height -131072/],
      [W, 0x7fffffff, /height/],
    ];
    for (const [width, height, message] of cases) {
      const bytes = patched(base, (dv) => {
        dv.setInt32(18, width, true);
        dv.setInt32(22, height, true);
      });
      assertImageError(() => decodeBmp(bytes), "corrupt_image", message);
      assertImageError(() => readBmpSize(bytes), "corrupt_image", message);
    }
  });
  await t.step("pixel data offset past the end or inside the headers", () => {
    const past = patched(base, (dv) => dv.setUint32(10, base.length + 1, true));
    assertImageError(() => decodeBmp(past), "corrupt_image", /offset .* past end of file/);
    const inside = patched(base, (dv) => dv.setUint32(10, 20, true));
    assertImageError(() => decodeBmp(inside), "corrupt_image", /overlaps the headers/);
  });
  await t.step("palette past the end", () => {
    assertImageError(() => decodeBmp(pal8.subarray(0, 54 + 100 * 4)), "corrupt_image", /palette/);
  });
  await t.step("bitfield masks past the end", () => {
    const bytes = bitfieldsCase({
      bpp: 32,
      compression: 6,
      masks: [0xff0000, 0xff00, 0xff, 0xff000000],
      channels: 4,
      pack: () => 0,
      unpack: (p) => p,
    }).bytes;
    assertImageError(() => decodeBmp(bytes.subarray(0, 60)), "corrupt_image", /masks/);
  });
  await t.step("top-down RLE", () => {
    const bytes = patched(rle8, (dv) => dv.setInt32(22, -H, true));
    assertImageError(() => decodeBmp(bytes), "corrupt_image", /top-down/);
  });
  await t.step("compression that does not fit the bit depth", () => {
    assertImageError(() => decodeBmp(patched(rle8, (dv) => dv.setUint16(28, 4, true))), "corrupt_image");
    assertImageError(() => decodeBmp(patched(base, (dv) => dv.setUint32(30, 3, true))), "corrupt_image");
  });
  await t.step("random damage never escapes as anything but ImageError", () => {
    const r = seededRandom(7);
    const samples = [base, pal8, rle8, rleCase(4).bytes, paletteCase(1, 2, 12).bytes, readFixture("coins.bmp")];
    for (let i = 0; i < 3000; i++) {
      const src = samples[i % samples.length];
      const bytes = src.slice(0, Math.max(2, Math.floor(r() * src.length * 1.1)));
      const edits = Math.floor(r() * 4);
      // Damage concentrates on the headers, where it matters most.
      for (let e = 0; e < edits; e++) bytes[Math.floor(r() * Math.min(bytes.length, 80))] = Math.floor(r() * 256);
      try {
        // Callers cap the size first (a tiny RLE file may legitimately describe a huge image); so does this test.
        const size = readBmpSize(bytes);
        if (size.width * size.height > 1 << 20) continue;
        const out = decodeBmp(bytes);
        assert.equal(out.data.length, out.width * out.height * out.channels);
      } catch (err) {
        if (!(err instanceof ImageError)) throw err;
      }
    }
  });
});
