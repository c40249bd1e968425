/** A minimal JPEG writer (baseline, progressive, restart markers, any sampling, CMYK/YCCK) and JPEG test helpers. */
import assert from "node:assert/strict";
import { ImageError } from "../imaging/image_error.ts";
import type { Raster } from "../imaging/raster.ts";

export const FIXTURES = new URL("./fixtures/", import.meta.url);

export type Rgb = [number, number, number];

// ---------------------------------------------------------------------------------------------------------------
// Test-only JPEG encoder (baseline or progressive, any sampling, restart intervals, Adobe/EXIF segments), so that
// every variant can be made here from pixels we know. With quantisation 1 and images made of flat 8×8 (or, when
// subsampled, 16×16) blocks only DC coefficients are non-zero, so decoding is exact up to colour conversion.

export const ZIGZAG = [
  0,
  1,
  8,
  16,
  9,
  2,
  3,
  10,
  17,
  24,
  32,
  25,
  18,
  11,
  4,
  5,
  12,
  19,
  26,
  33,
  40,
  48,
  41,
  34,
  27,
  20,
  13,
  6,
  7,
  14,
  21,
  28,
  35,
  42,
  49,
  56,
  57,
  50,
  43,
  36,
  29,
  22,
  15,
  23,
  30,
  37,
  44,
  51,
  58,
  59,
  52,
  45,
  38,
  31,
  39,
  46,
  53,
  60,
  61,
  54,
  47,
  55,
  62,
  63,
];

// ITU T.81 K.3 tables: 16 code-length counts, then the symbols. Slot 0 luminance, slot 1 chrominance.
export const fromHex = (s: string) => Uint8Array.from(s.match(/../g)!, (h) => parseInt(h, 16));
export const STD_DC = [
  fromHex("00010501010101010100000000000000000102030405060708090a0b"),
  fromHex("00030101010101010101010000000000000102030405060708090a0b"),
];
export const STD_AC = [
  fromHex(
    "0002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282" +
      "090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a" +
      "838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9" +
      "dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa",
  ),
  fromHex(
    "00020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1c109233352f0156272d1" +
      "0a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a636465666768696a737475767778" +
      "797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6" +
      "d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa",
  ),
];

export interface HuffCode {
  code: number[];
  size: number[];
}

export function huffCodes(spec: Uint8Array): HuffCode {
  const code: number[] = [], size: number[] = [];
  let next = 0, k = 16;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < spec[len - 1]; i++) {
      code[spec[k]] = next++;
      size[spec[k]] = len;
      k++;
    }
    next <<= 1;
  }
  return { code, size };
}

export class BitWriter {
  bytes: number[] = [];
  private acc = 0;
  private n = 0;
  write(value: number, len: number) {
    for (let i = len - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | ((value >> i) & 1);
      if (++this.n === 8) {
        this.bytes.push(this.acc);
        if (this.acc === 0xff) this.bytes.push(0);
        this.acc = 0;
        this.n = 0;
      }
    }
  }
  symbol(table: HuffCode, s: number) {
    if (table.size[s] === undefined) throw new Error(`symbol ${s.toString(16)} not in table`);
    this.write(table.code[s], table.size[s]);
  }
  /** Pads with 1 bits, as the standard requires before a marker. */
  flush() {
    if (this.n > 0) this.write((1 << (8 - this.n)) - 1, 8 - this.n);
  }
}

export function category(v: number): number {
  let a = Math.abs(v), s = 0;
  while (a > 0) {
    a >>= 1;
    s++;
  }
  return s;
}

export function writeValue(w: BitWriter, v: number, s: number) {
  w.write(v < 0 ? v + (1 << s) - 1 : v, s);
}

export interface EncodeOptions {
  width: number;
  height: number;
  /** Full-resolution samples per component, already in the file's colour space. */
  planes: Uint8Array[];
  sampling?: [number, number][];
  ids?: number[];
  restartInterval?: number;
  progressive?: boolean;
  adobeTransform?: number;
  jfif?: boolean;
  /** APP1 payload. */
  exif?: Uint8Array;
  quant?: number;
  omitHuffmanTables?: boolean;
}

export function seg(marker: number, body: ArrayLike<number>): number[] {
  return [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...Array.from(body)];
}

export function encodeJpeg(o: EncodeOptions): Uint8Array {
  const { width: W, height: H, planes } = o;
  const n = planes.length;
  const sampling = o.sampling ?? planes.map((): [number, number] => [1, 1]);
  const ids = o.ids ?? planes.map((_, i) => i + 1);
  const q = o.quant ?? 1;
  const maxH = Math.max(...sampling.map((s) => s[0]));
  const maxV = Math.max(...sampling.map((s) => s[1]));
  const comps = planes.map((plane, ci) => {
    const [h, v] = sampling[ci];
    const hr = maxH / h, vr = maxV / v;
    const cw = Math.ceil((W * h) / maxH), ch = Math.ceil((H * v) / maxV);
    const samples = new Float64Array(cw * ch);
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) {
        let sum = 0, count = 0;
        for (let dy = 0; dy < vr; dy++) {
          for (let dx = 0; dx < hr; dx++) {
            const sx = Math.min(x * hr + dx, W - 1), sy = Math.min(y * vr + dy, H - 1);
            sum += plane[sy * W + sx];
            count++;
          }
        }
        samples[y * cw + x] = sum / count;
      }
    }
    return {
      h,
      v,
      cw,
      ch,
      samples,
      bw: Math.ceil(cw / 8),
      bh: Math.ceil(ch / 8),
      cache: new Map<number, Int32Array>(),
    };
  });

  const coefficients = (ci: number, bx: number, by: number): Int32Array => {
    const c = comps[ci];
    const key = by * 65536 + bx;
    const hit = c.cache.get(key);
    if (hit) return hit;
    const out = new Int32Array(64);
    for (let v = 0; v < 8; v++) {
      for (let u = 0; u < 8; u++) {
        let sum = 0;
        for (let y = 0; y < 8; y++) {
          for (let x = 0; x < 8; x++) {
            const sx = Math.min(bx * 8 + x, c.cw - 1), sy = Math.min(by * 8 + y, c.ch - 1);
            sum += (c.samples[sy * c.cw + sx] - 128) * Math.cos(((2 * x + 1) * u * Math.PI) / 16) *
              Math.cos(((2 * y + 1) * v * Math.PI) / 16);
          }
        }
        const cu = u === 0 ? Math.SQRT1_2 : 1, cv = v === 0 ? Math.SQRT1_2 : 1;
        out[v * 8 + u] = Math.round((0.25 * cu * cv * sum) / q);
      }
    }
    for (let k = 1; k < 64; k++) if (category(out[k]) > 10) throw new Error("AC too large for the standard tables");
    c.cache.set(key, out);
    return out;
  };

  const dcTables = STD_DC.map(huffCodes), acTables = STD_AC.map(huffCodes);
  const slot = (ci: number) => (ci === 0 ? 0 : 1);
  const out: number[] = [0xff, 0xd8];
  if (o.jfif ?? n !== 4) out.push(...seg(0xe0, [0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]));
  if (o.exif) out.push(...seg(0xe1, o.exif));
  if (o.adobeTransform !== undefined) {
    out.push(...seg(0xee, [0x41, 0x64, 0x6f, 0x62, 0x65, 0, 100, 0, 0, 0, 0, o.adobeTransform]));
  }
  out.push(...seg(0xdb, [0, ...new Array(64).fill(q)]));
  const sof = [8, H >> 8, H & 0xff, W >> 8, W & 0xff, n];
  comps.forEach((c, ci) => sof.push(ids[ci], (c.h << 4) | c.v, 0));
  out.push(...seg(o.progressive ? 0xc2 : 0xc0, sof));
  if (!o.omitHuffmanTables) {
    for (let t = 0; t < (n > 1 ? 2 : 1); t++) {
      out.push(...seg(0xc4, [t, ...STD_DC[t]]), ...seg(0xc4, [0x10 | t, ...STD_AC[t]]));
    }
  }
  const ri = o.restartInterval ?? 0;
  if (ri) out.push(...seg(0xdd, [ri >> 8, ri & 0xff]));

  type Kind = "baseline" | "dcFirst" | "dcRefine" | "acFirst";
  const scan = (cis: number[], ss: number, se: number, ah: number, al: number, kind: Kind) => {
    const header = [cis.length];
    for (const ci of cis) header.push(ids[ci], (slot(ci) << 4) | slot(ci));
    header.push(ss, se, (ah << 4) | al);
    out.push(...seg(0xda, header));
    const w = new BitWriter();
    const pred = new Array(n).fill(0);
    const block = (ci: number, bx: number, by: number) => {
      const coef = coefficients(ci, bx, by);
      if (kind === "dcRefine") return w.write((coef[0] >> al) & 1, 1);
      if (kind !== "acFirst") {
        const dc = coef[0] >> al;
        const diff = dc - pred[ci];
        pred[ci] = dc;
        const s = category(diff);
        w.symbol(dcTables[slot(ci)], s);
        writeValue(w, diff, s);
        if (kind === "dcFirst") return;
      }
      const ac = acTables[slot(ci)];
      let run = 0;
      for (let k = Math.max(ss, 1); k <= se; k++) {
        const v = coef[ZIGZAG[k]];
        if (v === 0) {
          run++;
          continue;
        }
        while (run > 15) {
          w.symbol(ac, 0xf0);
          run -= 16;
        }
        const s = category(v);
        w.symbol(ac, (run << 4) | s);
        writeValue(w, v, s);
        run = 0;
      }
      if (run > 0) w.symbol(ac, 0x00);
    };
    const units: (() => void)[] = [];
    if (cis.length > 1) {
      const mcusX = Math.ceil(W / (8 * maxH)), mcusY = Math.ceil(H / (8 * maxV));
      for (let my = 0; my < mcusY; my++) {
        for (let mx = 0; mx < mcusX; mx++) {
          units.push(() => {
            for (const ci of cis) {
              const c = comps[ci];
              for (let by = 0; by < c.v; by++) for (let bx = 0; bx < c.h; bx++) block(ci, mx * c.h + bx, my * c.v + by);
            }
          });
        }
      }
    } else {
      const c = comps[cis[0]];
      for (let by = 0; by < c.bh; by++) for (let bx = 0; bx < c.bw; bx++) units.push(() => block(cis[0], bx, by));
    }
    units.forEach((unit, i) => {
      if (ri && i > 0 && i % ri === 0) {
        w.flush();
        w.bytes.push(0xff, 0xd0 + ((i / ri - 1) & 7));
        pred.fill(0);
      }
      unit();
    });
    w.flush();
    out.push(...w.bytes);
  };

  const all = comps.map((_, i) => i);
  if (!o.progressive) {
    scan(all, 0, 63, 0, 0, "baseline");
  } else {
    // DC with successive approximation, then AC by spectral selection per component.
    scan(all, 0, 0, 0, 1, "dcFirst");
    for (const ci of all) scan([ci], 1, 5, 0, 0, "acFirst");
    for (const ci of all) scan([ci], 6, 63, 0, 0, "acFirst");
    scan(all, 0, 0, 1, 0, "dcRefine");
  }
  out.push(0xff, 0xd9);
  return Uint8Array.from(out);
}

// ---------------------------------------------------------------------------------------------------------------
// Test images and helpers.

/** JFIF RGB→YCbCr, rounded. */
export function toYcc([r, g, b]: Rgb): Rgb {
  const c = (v: number) => Math.max(0, Math.min(255, Math.round(v)));
  return [
    c(0.299 * r + 0.587 * g + 0.114 * b),
    c(-0.168736 * r - 0.331264 * g + 0.5 * b + 128),
    c(0.5 * r - 0.418688 * g - 0.081312 * b + 128),
  ];
}

/** An image of `cols`×`rows` flat cells, each `cell` pixels square, coloured by `colour(col, row)`. */
export function cells(cols: number, rows: number, cell: number, colour: (col: number, row: number) => number[]) {
  const width = cols * cell, height = rows * cell;
  const channels = colour(0, 0).length;
  const planes = Array.from({ length: channels }, () => new Uint8Array(width * height));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const c = colour(Math.floor(x / cell), Math.floor(y / cell));
      for (let k = 0; k < channels; k++) planes[k][y * width + x] = c[k];
    }
  }
  return { width, height, planes };
}

export const RED: Rgb = [220, 30, 40],
  GREEN: Rgb = [40, 200, 60],
  BLUE: Rgb = [30, 50, 210],
  YELLOW: Rgb = [240, 220, 40];
export const GREY: Rgb = [128, 128, 128];

/** 5×3 cells of 8 px with distinct corners, so every flip and rotation is told apart. */
export function cornerImage() {
  return cells(5, 3, 8, (c, r) => {
    if (c === 0 && r === 0) return RED;
    if (c === 4 && r === 0) return GREEN;
    if (c === 0 && r === 2) return BLUE;
    if (c === 4 && r === 2) return YELLOW;
    return GREY;
  });
}

export function ycc(img: { width: number; height: number; planes: Uint8Array[] }) {
  const planes = img.planes.map(() => new Uint8Array(img.width * img.height));
  for (let i = 0; i < img.width * img.height; i++) {
    const [y, cb, cr] = toYcc([img.planes[0][i], img.planes[1][i], img.planes[2][i]]);
    planes[0][i] = y;
    planes[1][i] = cb;
    planes[2][i] = cr;
  }
  return { ...img, planes };
}

export function pixel(r: Raster, x: number, y: number): number[] {
  const i = (y * r.width + x) * r.channels;
  return Array.from(r.data.subarray(i, i + r.channels));
}

export function assertClose(actual: number[], expected: number[], tolerance: number, what = "") {
  assert.equal(actual.length, expected.length, `${what}: ${actual} vs ${expected}`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tolerance,
      `${what}: got ${actual}, expected ${expected} ±${tolerance}`,
    );
  }
}

export function expectImageError(fn: () => unknown, code: string, pattern?: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ImageError, `expected ImageError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

/** Offset of the first marker FFxx at or after the SOI. */
export function findMarker(bytes: Uint8Array, marker: number): number {
  let p = 2;
  while (p < bytes.length) {
    if (bytes[p + 1] === marker) return p;
    if (bytes[p + 1] === 0xda) throw new Error("marker not found before the scan");
    p += 2 + ((bytes[p + 2] << 8) | bytes[p + 3]);
  }
  throw new Error("marker not found");
}

export function withoutSegments(bytes: Uint8Array, marker: number): Uint8Array {
  const out: number[] = [0xff, 0xd8];
  let p = 2;
  while (bytes[p + 1] !== 0xda) {
    const end = p + 2 + ((bytes[p + 2] << 8) | bytes[p + 3]);
    if (bytes[p + 1] !== marker) out.push(...bytes.subarray(p, end));
    p = end;
  }
  out.push(...bytes.subarray(p));
  return Uint8Array.from(out);
}

/** Inserts an APP1 segment right after the SOI. */
export function withApp1(bytes: Uint8Array, payload: ArrayLike<number>): Uint8Array {
  return Uint8Array.from([0xff, 0xd8, ...seg(0xe1, payload), ...bytes.subarray(2)]);
}

export function exifPayload(orientation: number, littleEndian: boolean): Uint8Array {
  const tiff = new DataView(new ArrayBuffer(8 + 2 + 2 * 12 + 4));
  tiff.setUint16(0, littleEndian ? 0x4949 : 0x4d4d);
  tiff.setUint16(2, 42, littleEndian);
  tiff.setUint32(4, 8, littleEndian);
  tiff.setUint16(8, 2, littleEndian);
  // An unrelated tag first (ImageWidth, LONG), so the reader has to walk the directory.
  tiff.setUint16(10, 0x0100, littleEndian);
  tiff.setUint16(12, 4, littleEndian);
  tiff.setUint32(14, 1, littleEndian);
  tiff.setUint32(18, 40, littleEndian);
  tiff.setUint16(22, 0x0112, littleEndian);
  tiff.setUint16(24, 3, littleEndian);
  tiff.setUint32(26, 1, littleEndian);
  tiff.setUint16(30, orientation, littleEndian);
  return Uint8Array.from([0x45, 0x78, 0x69, 0x66, 0, 0, ...new Uint8Array(tiff.buffer)]);
}

export function readPpm(bytes: Uint8Array): Raster {
  const header = new TextDecoder("latin1").decode(bytes.subarray(0, 32)).match(/^P6\s+(\d+)\s+(\d+)\s+255\s/);
  assert.ok(header, "not a binary PPM");
  const width = Number(header[1]), height = Number(header[2]);
  return { width, height, channels: 3, data: bytes.subarray(header[0].length, header[0].length + width * height * 3) };
}
