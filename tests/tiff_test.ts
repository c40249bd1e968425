import assert from "node:assert/strict";
import { decode as decodePng } from "fast-png";
import { zlibSync } from "fflate";
import jpeg from "jpeg-js";
import { ImageError } from "../imaging/image_error.ts";
import type { Raster } from "../imaging/raster.ts";
import { decodeTiff, readTiffSize } from "../imaging/tiff.ts";
import { concatBytes } from "../imaging/bytes.ts";
import { tiffDeclaring } from "./bombs.ts";
import { CODEC_SAMPLES, codecSample, rgbSha256, seededRandom } from "./fixtures.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url);

// ---------------------------------------------------------------------------------------------------------------
// Test-only TIFF writer, so every variant can be checked against pixels we know exactly.

type Compression = "none" | "packbits" | "lzw" | "deflate" | "jpeg";
const COMPRESSION_CODES: Record<Compression, number> = { none: 1, lzw: 5, jpeg: 7, deflate: 8, packbits: 32773 };

interface PageSpec {
  width: number;
  height: number;
  bps: number;
  spp: number;
  photometric: number;
  /** Interleaved source values at full precision, width*height*spp. */
  samples: ArrayLike<number>;
  compression?: Compression;
  predictor?: boolean;
  planar?: 1 | 2;
  tile?: [number, number];
  rowsPerStrip?: number;
  extraSamples?: number[];
  colorMap?: number[];
  /** JPEG only: share the quantisation and Huffman tables through JPEGTables ("new style" abbreviated streams). */
  jpegTables?: boolean;
  /** Encode the last strip with all RowsPerStrip rows, as some writers do (the extra rows are padding). */
  padLastStrip?: boolean;
  /** FillOrder 2: bits within each stored byte reversed. */
  lsbFirst?: boolean;
  /** Tags added or replaced after the writer has built its own (null removes a tag). */
  override?: Record<number, { type: number; values: ArrayLike<number> } | null>;
}

interface TagValue {
  type: number;
  values: ArrayLike<number>;
}

const SHORT = 3, LONG = 4, UNDEFINED = 7;
const TYPE_SIZE: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 7: 1 };
// Bytes that tiles carry beyond the image edge; a decoder that forgets to crop shows them.
const PAD_VALUE = 0xa5a5;

function chunkSamples(spec: PageSpec, x0: number, y0: number, cw: number, ch: number, plane: number): number[] {
  const cs = spec.planar === 2 ? 1 : spec.spp;
  const max = spec.bps === 16 ? 0xffff : (1 << spec.bps) - 1;
  const out: number[] = [];
  for (let y = y0; y < y0 + ch; y++) {
    for (let x = x0; x < x0 + cw; x++) {
      for (let s = 0; s < cs; s++) {
        const inside = x < spec.width && y < spec.height;
        out.push(inside ? spec.samples[(y * spec.width + x) * spec.spp + plane + s] : PAD_VALUE & max);
      }
    }
  }
  return out;
}

function applyPredictor(values: number[], rows: number, perRow: number, stride: number, bps: number): number[] {
  const mod = bps === 16 ? 0x10000 : 0x100;
  const out = values.slice();
  for (let r = 0; r < rows; r++) {
    for (let i = r * perRow + stride; i < (r + 1) * perRow; i++) out[i] = (values[i] - values[i - stride] + mod) % mod;
  }
  return out;
}

function packSamples(values: number[], rows: number, perRow: number, bps: number, le: boolean): Uint8Array {
  const rowBytes = Math.ceil((perRow * bps) / 8);
  const out = new Uint8Array(rowBytes * rows);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < perRow; i++) {
      const v = values[r * perRow + i];
      if (bps === 16) {
        const o = r * rowBytes + 2 * i;
        out[o] = le ? v & 0xff : v >> 8;
        out[o + 1] = le ? v >> 8 : v & 0xff;
      } else if (bps === 8) {
        out[r * rowBytes + i] = v;
      } else {
        const bit = i * bps;
        out[r * rowBytes + (bit >> 3)] |= v << (8 - bps - (bit & 7));
      }
    }
  }
  return out;
}

function packBitsEncode(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  let i = 0;
  while (i < data.length) {
    let run = 1;
    while (i + run < data.length && run < 128 && data[i + run] === data[i]) run++;
    if (run >= 2) {
      out.push(257 - run, data[i]);
      i += run;
      continue;
    }
    const start = i;
    while (i < data.length && i - start < 128 && !(i + 1 < data.length && data[i + 1] === data[i])) i++;
    if (i === start) i++;
    out.push(i - start - 1, ...data.subarray(start, i));
  }
  return Uint8Array.from(out);
}

/** TIFF LZW as libtiff writes it: MSB-first codes, Clear first, "early change" width steps, Clear at 4094. */
function lzwEncode(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  let bitBuf = 0, bitCount = 0;
  const put = (code: number, width: number) => {
    bitBuf = (bitBuf << width) | code;
    bitCount += width;
    while (bitCount >= 8) {
      bitCount -= 8;
      out.push((bitBuf >>> bitCount) & 0xff);
    }
    bitBuf &= (1 << bitCount) - 1;
  };
  let dict = new Map<number, number>();
  let width = 9, next = 258;
  const grow = () => {
    next++;
    if (next === 4094) {
      put(256, width);
      dict = new Map();
      next = 258;
      width = 9;
    } else if (next >= 1 << width) {
      width++;
    }
  };
  put(256, width);
  if (data.length > 0) {
    let w = data[0];
    for (let i = 1; i < data.length; i++) {
      const key = w * 256 + data[i];
      const hit = dict.get(key);
      if (hit !== undefined) {
        w = hit;
        continue;
      }
      put(w, width);
      dict.set(key, next);
      grow();
      w = data[i];
    }
    put(w, width);
    grow();
  }
  put(257, width);
  if (bitCount > 0) out.push((bitBuf << (8 - bitCount)) & 0xff);
  return Uint8Array.from(out);
}

function reverseByte(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
}

function jpegSegments(file: Uint8Array): { marker: number; bytes: Uint8Array }[] {
  const segments: { marker: number; bytes: Uint8Array }[] = [];
  let p = 2;
  while (p < file.length) {
    const marker = file[p + 1];
    if (marker === 0xd9) break;
    const len = (file[p + 2] << 8) | file[p + 3];
    let end = p + 2 + len;
    if (marker === 0xda) end = file.length - 2;
    segments.push({ marker, bytes: file.subarray(p, end) });
    p = end;
  }
  return segments;
}

const SOI = Uint8Array.of(0xff, 0xd8), EOI = Uint8Array.of(0xff, 0xd9);

/** Splits a complete JPEG into JPEGTables (DQT, DHT) and the abbreviated image stream the strip holds. */
function splitJpeg(file: Uint8Array): { tables: Uint8Array; image: Uint8Array } {
  const segs = jpegSegments(file);
  const isTable = (m: number) => m === 0xdb || m === 0xc4;
  const tables = concatBytes([SOI, ...segs.filter((s) => isTable(s.marker)).map((s) => s.bytes), EOI]);
  const image = concatBytes([
    SOI,
    ...segs.filter((s) => !isTable(s.marker) && s.marker !== 0xe0).map((s) => s.bytes),
    EOI,
  ]);
  return { tables, image };
}

/**
 * A one-component baseline JPEG holding only DC coefficients (flat 8x8 blocks), since jpeg-js can only encode
 * colour; with quantisation 1 each block decodes to exactly the value given for it.
 */
function grayDcJpeg(width: number, height: number, blockMean: (bx: number, by: number) => number): Uint8Array {
  const dcBits = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
  const dcVals = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const codes: { code: number; len: number }[] = [];
  let code = 0, k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < dcBits[len - 1]; i++) codes[dcVals[k++]] = { code: code++, len };
    code <<= 1;
  }
  const bytes: number[] = [];
  let acc = 0, n = 0;
  const put = (v: number, len: number) => {
    for (let i = len - 1; i >= 0; i--) {
      acc = (acc << 1) | ((v >> i) & 1);
      if (++n === 8) {
        bytes.push(acc);
        if (acc === 0xff) bytes.push(0);
        acc = n = 0;
      }
    }
  };
  let prev = 0;
  for (let by = 0; by < Math.ceil(height / 8); by++) {
    for (let bx = 0; bx < Math.ceil(width / 8); bx++) {
      const dc = (blockMean(bx, by) - 128) * 8;
      const diff = dc - prev;
      prev = dc;
      const cat = diff === 0 ? 0 : Math.floor(Math.log2(Math.abs(diff))) + 1;
      put(codes[cat].code, codes[cat].len);
      if (cat > 0) put(diff >= 0 ? diff : diff + (1 << cat) - 1, cat);
      put(0, 1); // EOB in the one-symbol AC table below.
    }
  }
  if (n > 0) put(0x7f, 8 - n);
  const seg = (
    marker: number,
    body: number[],
  ) => [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body];
  return Uint8Array.from([
    ...SOI,
    ...seg(0xdb, [0, ...new Array(64).fill(1)]),
    ...seg(0xc4, [0x00, ...dcBits, ...dcVals, 0x10, 1, ...new Array(15).fill(0), 0x00]),
    ...seg(0xc0, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, 1, 1, 0x11, 0]),
    ...seg(0xda, [1, 1, 0x00, 0, 63, 0]),
    ...bytes,
    ...EOI,
  ]);
}

interface EncodedPage {
  chunks: Uint8Array[];
  tags: Map<number, TagValue>;
}

function encodePage(spec: PageSpec, le: boolean): EncodedPage {
  const compression = spec.compression ?? "none";
  const planar = spec.planar ?? 1;
  const [cw, ch] = spec.tile ?? [spec.width, Math.min(spec.rowsPerStrip ?? spec.height, spec.height)];
  const across = Math.ceil(spec.width / cw), down = Math.ceil(spec.height / ch);
  const cs = planar === 2 ? 1 : spec.spp;
  const chunks: Uint8Array[] = [];
  let jpegTables: Uint8Array | undefined;
  for (let plane = 0; plane < (planar === 2 ? spec.spp : 1); plane++) {
    for (let cy = 0; cy < down; cy++) {
      for (let cx = 0; cx < across; cx++) {
        const rows = spec.tile || spec.padLastStrip ? ch : Math.min(ch, spec.height - cy * ch);
        let values = chunkSamples(spec, cx * cw, cy * ch, cw, rows, plane);
        if (compression === "jpeg") {
          let file: Uint8Array;
          if (spec.spp === 1) {
            file = grayDcJpeg(cw, rows, (bx, by) => values[Math.min(by * 8, rows - 1) * cw + Math.min(bx * 8, cw - 1)]);
          } else {
            const rgba = new Uint8Array(cw * rows * 4);
            for (let i = 0; i < cw * rows; i++) rgba.set([...values.slice(i * 3, i * 3 + 3), 255], i * 4);
            file = new Uint8Array(jpeg.encode({ width: cw, height: rows, data: rgba }, 90).data);
          }
          if (spec.jpegTables) {
            const { tables, image } = splitJpeg(file);
            jpegTables = tables;
            file = image;
          }
          chunks.push(file);
          continue;
        }
        if (spec.predictor) values = applyPredictor(values, rows, cw * cs, cs, spec.bps);
        const raw = packSamples(values, rows, cw * cs, spec.bps, le);
        const stored = compression === "none"
          ? raw
          : compression === "packbits"
          ? packBitsEncode(raw)
          : compression === "lzw"
          ? lzwEncode(raw)
          : zlibSync(raw);
        chunks.push(spec.lsbFirst ? stored.map(reverseByte) : stored);
      }
    }
  }
  const tags = new Map<number, TagValue>();
  const set = (tag: number, type: number, values: ArrayLike<number>) => tags.set(tag, { type, values });
  set(256, LONG, [spec.width]);
  set(257, LONG, [spec.height]);
  set(258, SHORT, new Array(spec.spp).fill(spec.bps));
  set(259, SHORT, [COMPRESSION_CODES[compression]]);
  set(262, SHORT, [spec.photometric]);
  set(277, SHORT, [spec.spp]);
  set(284, SHORT, [planar]);
  if (spec.predictor) set(317, SHORT, [2]);
  if (spec.lsbFirst) set(266, SHORT, [2]);
  if (spec.colorMap) set(320, SHORT, spec.colorMap);
  if (spec.extraSamples) set(338, SHORT, spec.extraSamples);
  if (jpegTables) set(347, UNDEFINED, jpegTables);
  const counts = chunks.map((c) => c.length);
  if (spec.tile) {
    set(322, LONG, [cw]);
    set(323, LONG, [ch]);
    set(324, LONG, new Array(chunks.length).fill(0));
    set(325, LONG, counts);
  } else {
    set(273, LONG, new Array(chunks.length).fill(0));
    set(278, LONG, [ch]);
    set(279, LONG, counts);
  }
  for (const [tag, value] of Object.entries(spec.override ?? {})) {
    if (value === null) tags.delete(Number(tag));
    else tags.set(Number(tag), value);
  }
  return { chunks, tags };
}

/** Lays pages out as header, then per page: IFD, out-of-line tag values, chunk data (so the data ends the file). */
function buildTiff(specs: PageSpec[], le = true): Uint8Array {
  const pages = specs.map((s) => encodePage(s, le));
  const layout: { ifd: number; values: number; data: number }[] = [];
  let pos = 8;
  for (const page of pages) {
    const ifd = pos;
    pos += 2 + page.tags.size * 12 + 4;
    const values = pos;
    for (const t of page.tags.values()) {
      const size = TYPE_SIZE[t.type] * t.values.length;
      if (size > 4) pos += size + (size & 1);
    }
    const data = pos;
    for (const c of page.chunks) pos += c.length + (c.length & 1);
    layout.push({ ifd, values, data });
  }
  const out = new Uint8Array(pos);
  const dv = new DataView(out.buffer);
  out.set(le ? [0x49, 0x49, 42, 0] : [0x4d, 0x4d, 0, 42]);
  dv.setUint32(4, 8, le);
  pages.forEach((page, pi) => {
    const { ifd, values, data } = layout[pi];
    const offsets: number[] = [];
    let d = data;
    for (const c of page.chunks) {
      out.set(c, d);
      offsets.push(d);
      d += c.length + (c.length & 1);
    }
    const offsetTag = page.tags.has(324) ? 324 : 273;
    const existing = page.tags.get(offsetTag);
    // Overrides may plant their own offsets; only the writer's placeholder zeros are replaced.
    if (existing && Array.from(existing.values).every((v) => v === 0)) {
      page.tags.set(offsetTag, { type: LONG, values: offsets });
    }
    const tags = [...page.tags.entries()].sort((a, b) => a[0] - b[0]);
    dv.setUint16(ifd, tags.length, le);
    let v = values;
    tags.forEach(([tag, t], i) => {
      const e = ifd + 2 + i * 12;
      dv.setUint16(e, tag, le);
      dv.setUint16(e + 2, t.type, le);
      dv.setUint32(e + 4, t.values.length, le);
      const size = TYPE_SIZE[t.type] * t.values.length;
      let at = e + 8;
      if (size > 4) {
        dv.setUint32(e + 8, v, le);
        at = v;
        v += size + (size & 1);
      }
      for (let j = 0; j < t.values.length; j++) {
        const x = t.values[j];
        if (TYPE_SIZE[t.type] === 1) out[at + j] = x;
        else if (t.type === SHORT) dv.setUint16(at + 2 * j, x, le);
        else dv.setUint32(at + 4 * j, x, le);
      }
    });
    const nextIfd = pi + 1 < pages.length ? layout[pi + 1].ifd : 0;
    dv.setUint32(ifd + 2 + tags.length * 12, nextIfd, le);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Source images and what each must decode to.

const W = 37, H = 29;

/** Smooth gradients with noise (LZW and the predictor have work to do) plus flat rows (PackBits runs). */
function makeSamples(spp: number, bps: number, seed: number, width = W, height = H): number[] {
  const rand = seededRandom(seed);
  const max = bps === 16 ? 0xffff : (1 << bps) - 1;
  const out: number[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let s = 0; s < spp; s++) {
        const base = y % 6 === 0 ? (max >> 1) + s : Math.floor(((x * 5 + y * 3 + s * 40) / 200) * max);
        out.push(Math.min(max, Math.max(0, base + Math.floor(rand() * (max / 16)))) & max);
      }
    }
  }
  return out;
}

interface Variant {
  name: string;
  spec: Omit<PageSpec, "compression" | "predictor" | "tile" | "rowsPerStrip">;
  expected: Raster;
}

function variant(
  name: string,
  spec: Variant["spec"],
  channels: 1 | 3 | 4,
  map: (samples: ArrayLike<number>, i: number) => number[],
): Variant {
  const data = new Uint8Array(spec.width * spec.height * channels);
  for (let i = 0; i < spec.width * spec.height; i++) data.set(map(spec.samples, i), i * channels);
  return { name, spec, expected: { width: spec.width, height: spec.height, channels, data } };
}

const palette = (() => {
  const rand = seededRandom(7);
  return Array.from({ length: 768 }, () => Math.floor(rand() * 0x10000));
})();
const palette16 = (() => {
  const rand = seededRandom(8);
  return Array.from({ length: 48 }, () => Math.floor(rand() * 0x10000));
})();

const VARIANTS: Variant[] = [
  variant(
    "gray8",
    { width: W, height: H, bps: 8, spp: 1, photometric: 1, samples: makeSamples(1, 8, 1) },
    1,
    (s, i) => [
      s[i],
    ],
  ),
  variant(
    "gray16",
    { width: W, height: H, bps: 16, spp: 1, photometric: 1, samples: makeSamples(1, 16, 2) },
    1,
    (s, i) => [s[i] >> 8],
  ),
  variant(
    "WhiteIsZero8",
    { width: W, height: H, bps: 8, spp: 1, photometric: 0, samples: makeSamples(1, 8, 3) },
    1,
    (s, i) => [255 - s[i]],
  ),
  variant(
    "WhiteIsZero16",
    { width: W, height: H, bps: 16, spp: 1, photometric: 0, samples: makeSamples(1, 16, 4) },
    1,
    (s, i) => [255 - (s[i] >> 8)],
  ),
  variant(
    "RGB8",
    { width: W, height: H, bps: 8, spp: 3, photometric: 2, samples: makeSamples(3, 8, 5) },
    3,
    (s, i) => [s[i * 3], s[i * 3 + 1], s[i * 3 + 2]],
  ),
  variant(
    "RGB16",
    { width: W, height: H, bps: 16, spp: 3, photometric: 2, samples: makeSamples(3, 16, 6) },
    3,
    (s, i) => [s[i * 3] >> 8, s[i * 3 + 1] >> 8, s[i * 3 + 2] >> 8],
  ),
  variant(
    "RGBA8 (ExtraSamples)",
    { width: W, height: H, bps: 8, spp: 4, photometric: 2, extraSamples: [2], samples: makeSamples(4, 8, 7) },
    4,
    (s, i) => [s[i * 4], s[i * 4 + 1], s[i * 4 + 2], s[i * 4 + 3]],
  ),
  variant(
    "RGBA16 (ExtraSamples)",
    { width: W, height: H, bps: 16, spp: 4, photometric: 2, extraSamples: [2], samples: makeSamples(4, 16, 8) },
    4,
    (s, i) => [s[i * 4] >> 8, s[i * 4 + 1] >> 8, s[i * 4 + 2] >> 8, s[i * 4 + 3] >> 8],
  ),
  variant(
    "RGB + 4th sample without ExtraSamples",
    { width: W, height: H, bps: 8, spp: 4, photometric: 2, samples: makeSamples(4, 8, 9) },
    3,
    (s, i) => [s[i * 4], s[i * 4 + 1], s[i * 4 + 2]],
  ),
  variant(
    "palette8",
    { width: W, height: H, bps: 8, spp: 1, photometric: 3, colorMap: palette, samples: makeSamples(1, 8, 10) },
    3,
    (s, i) => [palette[s[i]] >> 8, palette[256 + s[i]] >> 8, palette[512 + s[i]] >> 8],
  ),
  variant(
    "palette4",
    { width: W, height: H, bps: 4, spp: 1, photometric: 3, colorMap: palette16, samples: makeSamples(1, 4, 11) },
    3,
    (s, i) => [palette16[s[i]] >> 8, palette16[16 + s[i]] >> 8, palette16[32 + s[i]] >> 8],
  ),
  variant(
    "gray+alpha8",
    { width: W, height: H, bps: 8, spp: 2, photometric: 1, extraSamples: [2], samples: makeSamples(2, 8, 12) },
    4,
    (s, i) => [s[i * 2], s[i * 2], s[i * 2], s[i * 2 + 1]],
  ),
  variant(
    "gray1 (bilevel)",
    { width: W, height: H, bps: 1, spp: 1, photometric: 1, samples: makeSamples(1, 1, 13) },
    1,
    (s, i) => [s[i] * 255],
  ),
  variant(
    "WhiteIsZero1 (fax-style)",
    { width: W, height: H, bps: 1, spp: 1, photometric: 0, samples: makeSamples(1, 1, 14) },
    1,
    (s, i) => [255 - s[i] * 255],
  ),
  variant(
    "gray4",
    { width: W, height: H, bps: 4, spp: 1, photometric: 1, samples: makeSamples(1, 4, 15) },
    1,
    (s, i) => [s[i] * 17],
  ),
  variant(
    "CMYK8",
    { width: W, height: H, bps: 8, spp: 4, photometric: 5, samples: makeSamples(4, 8, 16) },
    3,
    (s, i) => {
      const k = 255 - s[i * 4 + 3];
      // libtiff's RGBA interface, which OpenCV reads through, truncates.
      return [0, 1, 2].map((c) => Math.floor(((255 - s[i * 4 + c]) * k) / 255));
    },
  ),
];

const LAYOUTS: { name: string; tile?: [number, number]; rowsPerStrip?: number; planar?: 1 | 2 }[] = [
  { name: "one strip" },
  { name: "strips of 5 rows", rowsPerStrip: 5 },
  { name: "16x16 tiles", tile: [16, 16] },
  { name: "32x16 tiles, separate planes", tile: [32, 16], planar: 2 },
  { name: "strips of 4 rows, separate planes", rowsPerStrip: 4, planar: 2 },
];

const CODECS: { name: string; compression: Compression; predictor?: boolean }[] = [
  { name: "uncompressed", compression: "none" },
  { name: "PackBits", compression: "packbits" },
  { name: "LZW", compression: "lzw" },
  { name: "LZW + predictor", compression: "lzw", predictor: true },
  { name: "Deflate", compression: "deflate" },
  { name: "Deflate + predictor", compression: "deflate", predictor: true },
];

function assertRaster(actual: Raster, expected: Raster, label: string): void {
  assert.equal(actual.width, expected.width, `${label}: width`);
  assert.equal(actual.height, expected.height, `${label}: height`);
  assert.equal(actual.channels, expected.channels, `${label}: channels`);
  assert.equal(actual.data.length, expected.data.length, `${label}: data length`);
  for (let i = 0; i < expected.data.length; i++) {
    if (actual.data[i] !== expected.data[i]) {
      const px = Math.floor(i / expected.channels);
      assert.fail(
        `${label}: pixel (${px % expected.width},${Math.floor(px / expected.width)}) channel ${i % expected.channels}` +
          ` is ${actual.data[i]}, expected ${expected.data[i]}`,
      );
    }
  }
}

function expectError(fn: () => unknown, code: ImageError["code"], includes?: string | RegExp): ImageError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ImageError, `expected ImageError, got ${err}`);
    assert.equal(err.code, code, `code of "${err.message}"`);
    if (typeof includes === "string") assert.ok(err.message.includes(includes), `message "${err.message}"`);
    else if (includes) assert.match(err.message, includes);
    return err;
  }
  assert.fail(`expected ImageError ${code}`);
}

/** Decodes and reports whether it failed cleanly: anything but success or an ImageError is a bug. */
function decodeOrImageError(bytes: Uint8Array, label: string): void {
  try {
    const { raster } = decodeTiff(bytes);
    assert.equal(raster.data.length, raster.width * raster.height * raster.channels, label);
  } catch (err) {
    if (!(err instanceof ImageError)) assert.fail(`${label}: threw ${err instanceof Error ? err.stack : err}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------

Deno.test("TIFF decoding", async (t) => {
  await t.step("camera.tif (LZW + predictor, RGB, real file) equals camera.png pixel for pixel", async () => {
    const tif = await Deno.readFile(new URL("camera.tif", FIXTURES));
    const png = decodePng(await Deno.readFile(new URL("camera.png", FIXTURES)));
    const { raster, info } = decodeTiff(tif);
    assert.equal(raster.width, png.width);
    assert.equal(raster.height, png.height);
    assert.equal(raster.channels, 3);
    assert.deepEqual(info, {});
    assert.equal(png.depth, 8);
    const gray = png.data as Uint8Array;
    for (let i = 0; i < png.width * png.height; i++) {
      const p = i * png.channels, r = i * 3;
      for (let c = 0; c < 3; c++) {
        if (raster.data[r + c] !== gray[p]) assert.fail(`pixel ${i} channel ${c}: ${raster.data[r + c]} vs ${gray[p]}`);
      }
    }
  });

  await t.step("readTiffSize", async () => {
    const tif = await Deno.readFile(new URL("camera.tif", FIXTURES));
    assert.deepEqual(readTiffSize(tif), { width: 512, height: 512 });
    const v = VARIANTS[0].spec;
    assert.deepEqual(readTiffSize(buildTiff([{ ...v, tile: [16, 16] }], false)), { width: W, height: H });
    // Only the directory is read: the pixel data may be missing entirely.
    const noData = buildTiff([{ ...v }]).subarray(0, 200);
    assert.deepEqual(readTiffSize(noData), { width: W, height: H });
    expectError(() => readTiffSize(new Uint8Array([0x89, 0x50, 0x4e, 0x47])), "not_an_image");
  });

  for (const v of VARIANTS) {
    for (const codec of CODECS) {
      await t.step(`${v.name}, ${codec.name}`, () => {
        for (const layout of LAYOUTS) {
          if (layout.planar === 2 && v.spec.spp === 1) continue;
          // libtiff refuses the predictor below 8 bits, so no real file has it.
          if (codec.predictor && v.spec.bps < 8) continue;
          for (const le of [true, false]) {
            const label = `${v.name}, ${codec.name}, ${layout.name}, ${le ? "II" : "MM"}`;
            const bytes = buildTiff([{ ...v.spec, ...layout, ...codec }], le);
            const { raster, info } = decodeTiff(bytes);
            assertRaster(raster, v.expected, label);
            if (v.spec.photometric !== 5) assert.deepEqual(info, {}, label);
          }
        }
      });
    }
  }

  await t.step("LZW through every code width and table reset (large noisy strip)", () => {
    const width = 301, height = 211;
    const samples = makeSamples(3, 8, 40, width, height).map((v, i) => (i % 7 < 3 ? (v * 7919 + i) & 255 : v));
    const expected = { width, height, channels: 3 as const, data: Uint8Array.from(samples) };
    for (const predictor of [false, true]) {
      const spec: PageSpec = { width, height, bps: 8, spp: 3, photometric: 2, samples, compression: "lzw", predictor };
      const bytes = buildTiff([spec]);
      // Sanity check on the writer: the strip must be big enough to fill the 4096-entry table several times.
      assert.ok(bytes.length > 100_000, `only ${bytes.length} bytes`);
      assertRaster(decodeTiff(bytes).raster, expected, `large LZW, predictor ${predictor}`);
    }
  });

  await t.step("a last strip stored with all RowsPerStrip rows (padding) is cropped", () => {
    for (const codec of CODECS) {
      for (const v of [VARIANTS[0], VARIANTS[5]]) {
        const bytes = buildTiff([{ ...v.spec, ...codec, rowsPerStrip: 8, padLastStrip: true }]);
        assertRaster(decodeTiff(bytes).raster, v.expected, `${v.name}, ${codec.name}, padded last strip`);
      }
    }
  });

  await t.step("FillOrder 2 (bits reversed within bytes)", () => {
    for (const name of ["gray1 (bilevel)", "gray8"]) {
      const v = VARIANTS.find((x) => x.name === name)!;
      for (const compression of ["none", "lzw", "packbits"] as const) {
        const bytes = buildTiff([{ ...v.spec, compression, lsbFirst: true, rowsPerStrip: 10 }]);
        assertRaster(decodeTiff(bytes).raster, v.expected, `${name}, ${compression}, FillOrder 2`);
      }
    }
  });

  await t.step("CMYK says it was converted", () => {
    const cmyk = VARIANTS.find((v) => v.name === "CMYK8")!;
    assert.deepEqual(decodeTiff(buildTiff([cmyk.spec])).info.notes, ["CMYK converted to RGB"]);
  });

  await t.step("associated (premultiplied) alpha is kept as stored, with a note", () => {
    const rgba = VARIANTS.find((v) => v.name === "RGBA8 (ExtraSamples)")!;
    const { raster, info } = decodeTiff(buildTiff([{ ...rgba.spec, extraSamples: [1] }]));
    assertRaster(raster, rgba.expected, "associated alpha");
    assert.match(info.notes?.[0] ?? "", /premultiplied/);
  });

  await t.step("JPEG-in-TIFF (YCbCr, JPEGTables), strips and tiles, equals jpeg-js on the same JPEG data", () => {
    const samples = makeSamples(3, 8, 20);
    for (const layout of [{ rowsPerStrip: 8 }, { rowsPerStrip: H }, { tile: [16, 16] as [number, number] }]) {
      for (const jpegTables of [true, false]) {
        const spec: PageSpec = {
          width: W,
          height: H,
          bps: 8,
          spp: 3,
          photometric: 6,
          samples,
          compression: "jpeg",
          jpegTables,
          ...layout,
        };
        const label = `${JSON.stringify(layout)}, tables ${jpegTables}`;
        const { raster } = decodeTiff(buildTiff([spec]));
        const expected = expectedJpegRaster(spec, true);
        assertRaster(raster, expected, label);
        // And the lossy result is still the picture that went in.
        let err = 0;
        for (let i = 0; i < samples.length; i++) err += Math.abs(raster.data[i] - samples[i]);
        assert.ok(err / samples.length < 6, `${label}: mean error ${err / samples.length}`);
      }
    }
  });

  await t.step("JPEG-in-TIFF with photometric RGB is not colour-transformed", () => {
    const spec: PageSpec = {
      width: W,
      height: H,
      bps: 8,
      spp: 3,
      photometric: 2,
      samples: makeSamples(3, 8, 21),
      compression: "jpeg",
      jpegTables: true,
      rowsPerStrip: 16,
    };
    assertRaster(decodeTiff(buildTiff([spec], false)).raster, expectedJpegRaster(spec, false), "RGB JPEG");
  });

  await t.step("JPEG-in-TIFF, one-component gray", () => {
    for (const layout of [{ rowsPerStrip: 16 }, { tile: [16, 16] as [number, number] }]) {
      const spec: PageSpec = {
        width: W,
        height: H,
        bps: 8,
        spp: 1,
        photometric: 1,
        samples: makeSamples(1, 8, 22),
        compression: "jpeg",
        jpegTables: true,
        ...layout,
      };
      const { raster } = decodeTiff(buildTiff([spec]));
      assertRaster(raster, expectedJpegRaster(spec, undefined), `gray JPEG ${JSON.stringify(layout)}`);
    }
  });

  await t.step("multi-page: first page analysed, page count and note", () => {
    const [gray, , , , rgb] = VARIANTS;
    const bytes = buildTiff([
      { ...gray.spec, compression: "lzw" },
      { ...rgb.spec, compression: "deflate" },
      { ...gray.spec, width: 5, height: 3, samples: makeSamples(1, 8, 30, 5, 3) },
    ]);
    const { raster, info } = decodeTiff(bytes);
    assertRaster(raster, gray.expected, "page 1");
    assert.deepEqual(info, { pages: 3, notes: ["multi-page TIFF: first of 3 pages analysed"] });
    assert.deepEqual(readTiffSize(bytes), { width: W, height: H });
  });

  await t.step("an IFD chain that loops back counts each page once and terminates", () => {
    const gray = VARIANTS[0].spec;
    const bytes = buildTiff([gray, gray]);
    const dv = new DataView(bytes.buffer);
    const second = dv.getUint32(8 + 2 + dv.getUint16(8, true) * 12, true);
    dv.setUint32(second + 2 + dv.getUint16(second, true) * 12, 8, true);
    assert.equal(decodeTiff(bytes).info.pages, 2);
    const self = buildTiff([gray]);
    new DataView(self.buffer).setUint32(8 + 2 + dv.getUint16(8, true) * 12, 8, true);
    assert.equal(decodeTiff(self).info.pages, undefined);
  });
});

function expectedJpegRaster(spec: PageSpec, colorTransform: boolean | undefined): Raster {
  const { chunks, tags } = encodePage(spec, true);
  const tables = tags.get(347)?.values as Uint8Array | undefined;
  const [cw, ch] = spec.tile ?? [spec.width, spec.rowsPerStrip ?? spec.height];
  const across = Math.ceil(spec.width / cw);
  const channels = spec.spp as 1 | 3;
  const data = new Uint8Array(spec.width * spec.height * channels);
  chunks.forEach((chunk, i) => {
    const full = tables ? concatBytes([tables.subarray(0, tables.length - 2), chunk.subarray(2)]) : chunk;
    const img = jpeg.decode(full, { useTArray: true, formatAsRGBA: false, colorTransform });
    const x0 = (i % across) * cw, y0 = Math.floor(i / across) * ch;
    for (let y = 0; y < img.height && y0 + y < spec.height; y++) {
      for (let x = 0; x < img.width && x0 + x < spec.width; x++) {
        for (let c = 0; c < channels; c++) {
          data[((y0 + y) * spec.width + x0 + x) * channels + c] = img.data[(y * img.width + x) * 3 + c];
        }
      }
    }
  });
  return { width: spec.width, height: spec.height, channels, data };
}

Deno.test("TIFF errors", async (t) => {
  const gray = VARIANTS[0].spec;
  const rgb = VARIANTS[4].spec;

  await t.step("unknown compression 34712 is unsupported and named", () => {
    const bytes = buildTiff([{ ...gray, override: { 259: { type: SHORT, values: [34712] } } }]);
    expectError(() => decodeTiff(bytes), "unsupported_image", "TIFF compression 34712");
  });

  await t.step("other unsupported features name what is missing", () => {
    const cases: [Record<number, TagValue | null>, string | RegExp, PageSpec?][] = [
      [{ 259: { type: SHORT, values: [4] } }, "TIFF CCITT fax with 8-bit samples"],
      [{ 259: { type: SHORT, values: [34676] } }, "TIFF compression 34676 (SGI LogLuv)"],
      [{ 259: { type: SHORT, values: [6] } }, "TIFF compression 6 (old-style JPEG)"],
      [{ 339: { type: SHORT, values: [3] } }, "floating-point samples"],
      [{ 339: { type: SHORT, values: [2] } }, "signed integer samples"],
      [{ 258: { type: SHORT, values: [12] } }, "12-bit samples"],
      [{ 262: { type: SHORT, values: [8] } }, "photometric interpretation 8 (CIE L*a*b*)"],
      [{ 262: { type: SHORT, values: [6] } }, "YCbCr without JPEG compression", rgb],
      [{ 317: { type: SHORT, values: [3] } }, "floating-point predictor", { ...gray, compression: "lzw" }],
    ];
    for (const [override, message, spec] of cases) {
      expectError(() => decodeTiff(buildTiff([{ ...(spec ?? gray), override }])), "unsupported_image", message);
    }
    const bigTiff = Uint8Array.of(0x49, 0x49, 43, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expectError(() => decodeTiff(bigTiff), "unsupported_image", "BigTIFF");
  });

  await t.step("not a TIFF", () => {
    expectError(() => decodeTiff(new TextEncoder().encode("hello world")), "not_an_image");
    expectError(() => decodeTiff(Uint8Array.of(0x49, 0x49, 41, 0, 8, 0, 0, 0)), "not_an_image");
    expectError(() => decodeTiff(new Uint8Array(0)), "not_an_image");
  });

  await t.step("truncated strip data", () => {
    for (const compression of ["none", "lzw", "deflate", "packbits"] as const) {
      for (const le of [true, false]) {
        const whole = buildTiff([{ ...rgb, compression }], le);
        const cut = whole.subarray(0, whole.length - 40);
        expectError(() => decodeTiff(cut), "corrupt_image", /truncated/);
      }
    }
    // Byte counts that agree with the shortened data: the codec itself runs out.
    for (const compression of ["none", "lzw", "deflate", "packbits"] as const) {
      const whole = buildTiff([{ ...rgb, compression }]);
      const { chunks } = encodePage({ ...rgb, compression }, true);
      const bytes = buildTiff([{
        ...rgb,
        compression,
        override: {
          279: { type: LONG, values: [Math.floor(chunks[0].length / 2)] },
        },
      }]);
      assert.ok(bytes.length === whole.length);
      expectError(
        () => decodeTiff(bytes),
        "corrupt_image",
        compression === "deflate" ? /Deflate|truncated/ : /truncated/,
      );
    }
  });

  await t.step("garbage after the header", () => {
    const rand = seededRandom(99);
    for (const le of [true, false]) {
      const bytes = new Uint8Array(300);
      bytes.set(le ? [0x49, 0x49, 42, 0, 8, 0, 0, 0] : [0x4d, 0x4d, 0, 42, 0, 0, 0, 8]);
      for (let i = 8; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
      expectError(() => decodeTiff(bytes), "corrupt_image", /directory/);
      bytes.fill(0xff, 8);
      expectError(() => decodeTiff(bytes), "corrupt_image", /directory/);
      bytes.fill(0, 8);
      expectError(() => decodeTiff(bytes), "corrupt_image", /no entries/);
    }
  });

  await t.step("offsets beyond the end of the file", () => {
    const size = buildTiff([gray]).length;
    const stripBeyond = buildTiff([{ ...gray, override: { 273: { type: LONG, values: [size + 1000] } } }]);
    expectError(() => decodeTiff(stripBeyond), "corrupt_image", /beyond the end/);
    const tileBeyond = buildTiff([{
      ...gray,
      tile: [16, 16],
      override: { 324: { type: LONG, values: [9, 9, 9, 9, 9, 1e6] } },
    }]);
    expectError(() => decodeTiff(tileBeyond), "corrupt_image", /tile 5 .*beyond the end/);
    const ifdBeyond = buildTiff([gray]);
    new DataView(ifdBeyond.buffer).setUint32(4, size + 8, true);
    expectError(() => decodeTiff(ifdBeyond), "corrupt_image", /directory offset/);
    expectError(() => readTiffSize(ifdBeyond), "corrupt_image", /directory offset/);
    // StripOffsets with 5 values is stored out of line; point that array past the end.
    const valuesBeyond = buildTiff([{ ...gray, rowsPerStrip: 6 }]);
    const dv = new DataView(valuesBeyond.buffer);
    for (let i = 0, n = dv.getUint16(8, true); i < n; i++) {
      if (dv.getUint16(10 + i * 12, true) === 273) dv.setUint32(10 + i * 12 + 8, valuesBeyond.length - 8, true);
    }
    expectError(() => decodeTiff(valuesBeyond), "corrupt_image", "StripOffsets values lie beyond the end");
  });

  await t.step("missing or inconsistent structure is corrupt", () => {
    const cases: [Record<number, TagValue | null>, string | RegExp, PageSpec?][] = [
      [{ 256: null }, "TIFF has no ImageWidth"],
      [{ 257: { type: LONG, values: [0] } }, "invalid size"],
      [{ 273: null }, "no strip offsets"],
      [{ 278: { type: SHORT, values: [5] } }, /lists 1 strip offsets, expected 6/],
      [{ 320: null }, "no ColorMap", VARIANTS.find((v) => v.name === "palette8")!.spec],
      [{ 320: { type: SHORT, values: palette.slice(0, 700) } }, /ColorMap has 700 entries/, VARIANTS[9].spec],
      [{ 279: null }, "no strip byte counts", { ...gray, compression: "lzw" }],
      [{ 256: { type: 2, values: [65, 0] } }, "non-integer field type 2"],
    ];
    for (const [override, message, spec] of cases) {
      expectError(() => decodeTiff(buildTiff([{ ...(spec ?? gray), override }])), "corrupt_image", message);
    }
  });

  await t.step("missing StripByteCounts on uncompressed data is inferred, as libtiff does", () => {
    const { raster } = decodeTiff(buildTiff([{ ...gray, rowsPerStrip: 7, override: { 279: null } }]));
    assertRaster(raster, VARIANTS[0].expected, "inferred byte counts");
  });

  await t.step("invalid LZW codes are corrupt", () => {
    const bytes = buildTiff([{ ...gray, compression: "lzw" }]);
    const { chunks } = encodePage({ ...gray, compression: "lzw" }, true);
    // After Clear (9 bits), code 0x1ff is neither a literal nor a defined string.
    const start = bytes.length - chunks[0].length - (chunks[0].length & 1);
    bytes.set([0x80, 0x3f, 0xf0], start);
    expectError(() => decodeTiff(bytes), "corrupt_image", /invalid code/);
  });

  await t.step("random corruption never escapes as anything but ImageError", () => {
    const rand = seededRandom(1234);
    const sources = [
      buildTiff([{ ...rgb, compression: "lzw", predictor: true, rowsPerStrip: 5 }]),
      buildTiff([{ ...VARIANTS[1].spec, compression: "packbits", tile: [16, 16] }], false),
      buildTiff([{ ...VARIANTS[9].spec, compression: "deflate", rowsPerStrip: 3 }]),
      buildTiff([{ ...rgb, photometric: 6, compression: "jpeg", jpegTables: true, rowsPerStrip: 8 }]),
      buildTiff([{ ...VARIANTS[6].spec, planar: 2, compression: "lzw", tile: [16, 16] }, gray]),
    ];
    for (const [si, source] of sources.entries()) {
      for (let round = 0; round < 150; round++) {
        const bytes = source.slice();
        const flips = 1 + Math.floor(rand() * 8);
        for (let f = 0; f < flips; f++) {
          // Mostly the header and directory, where a flipped byte changes structure rather than pixel values.
          const at = rand() < 0.7
            ? Math.floor(rand() * Math.min(400, bytes.length))
            : Math.floor(rand() * bytes.length);
          bytes[at] = Math.floor(rand() * 256);
        }
        decodeOrImageError(bytes, `source ${si} round ${round}`);
      }
      for (let len = 0; len < source.length; len += Math.max(1, Math.floor(source.length / 97))) {
        decodeOrImageError(source.subarray(0, len), `source ${si} cut at ${len}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Files written by libtiff (tiffcp), ImageMagick and Pillow (fixtures/codecs/), against native OpenCV's pixels.

const TIFF_SAMPLES = CODEC_SAMPLES.filter((name) => name.endsWith(".tif"));

/** Where each strip's data lies, and where its StripByteCounts value is stored, in a little-endian TIFF. */
function stripLayout(bytes: Uint8Array): { offsets: number[]; counts: number[]; setCount(i: number, n: number): void } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(dv.getUint16(0), 0x4949, "the samples are little-endian");
  const ifd = dv.getUint32(4, true);
  const read = (tag: number) => {
    for (let i = 0, n = dv.getUint16(ifd, true); i < n; i++) {
      const p = ifd + 2 + 12 * i;
      if (dv.getUint16(p, true) !== tag) continue;
      const unit = dv.getUint16(p + 2, true) === SHORT ? 2 : 4;
      const count = dv.getUint32(p + 4, true);
      const at = unit * count <= 4 ? p + 8 : dv.getUint32(p + 8, true);
      const where = Array.from({ length: count }, (_, k) => at + unit * k);
      return { where, values: where.map((w) => (unit === 2 ? dv.getUint16(w, true) : dv.getUint32(w, true))), unit };
    }
    throw new Error(`no tag ${tag}`);
  };
  const counts = read(279);
  const setCount = (i: number, n: number) =>
    counts.unit === 2 ? dv.setUint16(counts.where[i], n, true) : dv.setUint32(counts.where[i], n, true);
  return { offsets: read(273).values, counts: counts.values, setCount };
}

Deno.test("TIFF fax, Zstandard, LZMA and CMYK files decode to native OpenCV's pixels", async (t) => {
  for (const name of TIFF_SAMPLES) {
    await t.step(name, async () => {
      const { bytes, native } = codecSample(name);
      const { raster } = decodeTiff(bytes);
      assert.deepEqual([raster.width, raster.height], [native.width, native.height]);
      assert.equal(await rgbSha256(raster), native.rgb_sha256, `${name}: pixels differ from cv2.imread's`);
    });
  }

  await t.step("a strip whose data holds more rows than the strip is cut at the strip, as libtiff does", () => {
    for (const name of ["camera_zstd.tif", "camera_lzma.tif", "page_g4.tif"]) {
      const { bytes, native } = codecSample(name);
      // Fewer rows declared: the last strip's data now decodes past what the image needs.
      const height = native.height - 7;
      const { raster } = decodeTiff(tiffDeclaring(bytes, native.width, height));
      const whole = decodeTiff(bytes).raster;
      assert.equal(raster.height, height);
      assertRaster(raster, { ...whole, height, data: whole.data.subarray(0, raster.data.length) }, name);
    }
  });
});

Deno.test("TIFF fax, Zstandard and LZMA: damaged and truncated data", async (t) => {
  const samples = TIFF_SAMPLES.filter((name) => !name.includes("cmyk"));

  await t.step("strips cut short fail as corrupt, or decode to native's pixels: never to other pixels", async () => {
    for (const name of samples) {
      const { bytes, native } = codecSample(name);
      const { counts } = stripLayout(bytes);
      const last = counts.length - 1;
      for (let keep = 0; keep < counts[last]; keep += Math.max(1, Math.floor(counts[last] / 40))) {
        const cut = bytes.slice();
        stripLayout(cut).setCount(last, keep);
        let raster: Raster;
        try {
          raster = decodeTiff(cut).raster;
        } catch (err) {
          assert.ok(err instanceof ImageError, `${name} cut to ${keep}: ${err}`);
          assert.equal(err.code, "corrupt_image", `${name} cut to ${keep}: ${err.message}`);
          continue;
        }
        assert.equal(await rgbSha256(raster), native.rgb_sha256, `${name}: strip cut to ${keep} bytes decodes wrong`);
      }
    }
  });

  await t.step("truncated files and random damage never escape as anything but ImageError", () => {
    const rand = seededRandom(4321);
    for (const name of samples) {
      const { bytes } = codecSample(name);
      const { offsets } = stripLayout(bytes);
      for (let len = 0; len < bytes.length; len += Math.max(1, Math.floor(bytes.length / 60))) {
        decodeOrImageError(bytes.subarray(0, len), `${name} cut at ${len}`);
      }
      for (let round = 0; round < 60; round++) {
        const damaged = bytes.slice();
        // Inside the first strip's compressed data, where a flipped byte reaches the codec.
        for (let f = 0, n = 1 + Math.floor(rand() * 6); f < n; f++) {
          damaged[offsets[0] + Math.floor(rand() * Math.min(200, bytes.length - offsets[0]))] = Math.floor(
            rand() * 256,
          );
        }
        decodeOrImageError(damaged, `${name} damaged, round ${round}`);
      }
    }
  });

  await t.step("fax features beyond libtiff's bilevel codec are refused by name", () => {
    const { bytes } = codecSample("page_g4.tif");
    const { offsets } = stripLayout(bytes);
    // Mode code 0000001 (an extension: uncompressed mode) at the start of the data.
    const extension = bytes.slice();
    extension.set([0x02, 0x00], offsets[0]);
    expectError(() => decodeTiff(extension), "unsupported_image", "uncompressed mode");
    // Zero bits in the middle of the page: an EOL (G4's end of page) or no valid code, depending on where they fall.
    const early = bytes.slice();
    early.fill(0, offsets[0] + 40, offsets[0] + 43);
    expectError(() => decodeTiff(early), "corrupt_image", /TIFF CCITT data: (row \d+ ends early|bad)/);
  });
});
