import jpeg from "jpeg-js";
import { ImageError } from "./image_error.ts";
import { decodeJpegWasm } from "./jpeg_wasm.ts";
import type { Decoded, DecodeInfo, Raster } from "./raster.ts";
import { concatBytes } from "./bytes.ts";

// Once loadJpegWasm() has run in the isolate (every pool member does it), complete files are decoded by libjpeg-turbo in
// WASM, exactly as native OpenCV decodes them (CMYK and YCCK with OpenCV's conversion to RGB); the rest of this module
// is the fallback for what that path leaves out (truncated or damaged files, files lacking Huffman tables) and for
// isolates without it. Arithmetic-coded files have no fallback: jpeg-js cannot read them, so they always go to
// libjpeg-turbo, compiled on the spot if need be.

// jpeg-js is the entropy decoder and IDCT. Everything it gets wrong or leaves out compared with libjpeg-turbo (what
// OpenCV's imread uses) is handled here, so that results match native OpenCV as closely as jpeg-js allows:
// - unsupported coding processes are named from the markers instead of surfacing as "unknown marker ffc9";
// - the colour space is chosen by libjpeg's rules (JFIF, Adobe transform, component ids): jpeg-js treats every
//   3-component file as YCbCr and rejects 4-component files without an Adobe marker;
// - YCbCr→RGB uses libjpeg's fixed-point tables and rounding (jpeg-js truncates, biasing every pixel down ~0.5);
// - 2:1 chroma is upsampled with libjpeg's "fancy" triangle filter (jpeg-js replicates samples);
// - gray files stay one channel (jpeg-js always expands to RGB);
// - Huffman tables that MJPEG frames leave out are replaced by the standard ones, as libjpeg does;
// - truncated files are decoded where jpeg-js can manage it (see decodeJpeg), with a note;
// - EXIF orientation is applied, as imread does by default.

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DHT = 0xc4;
const DQT = 0xdb;
const APP0 = 0xe0;
const APP1 = 0xe1;
const APP14 = 0xee;

// Room for 100 MP photos (jpeg-js keeps every coefficient as int32, ~4 bytes per sample, plus the planes and the
// output), while still refusing absurd headers before they allocate gigabytes.
const MAX_MEGAPIXELS = 250;
const MAX_MEMORY_MB = 4096;

interface Component {
  id: number;
  h: number;
  v: number;
  /** Quantization table selector. */
  tq: number;
}

interface Frame {
  marker: number;
  width: number;
  height: number;
  components: Component[];
}

/** Where the pieces of the file are, as far as decoding decisions need them. */
interface Layout {
  frame: Frame | null;
  /** Offset of each SOS marker. */
  scans: number[];
  /** False when the data ends inside the last scan (no marker after its entropy-coded data). */
  lastScanComplete: boolean;
  /** Where usable data ends: the EOI marker, or where the file was cut off. */
  end: number;
  truncated: boolean;
  jfif: boolean;
  /** Transform of the last APP14 "Adobe" segment as libjpeg reads it (length ≥ 12), or -1. */
  adobeTransform: number;
  /** Whether an Adobe segment as jpeg-js reads it ("Adobe\0" prefix, no length check) asks for a transform. */
  jsAdobeTransforms: boolean;
  orientation: number;
  /** Huffman table slots (class << 4 | id) that a scan uses before any DHT defined them. */
  missingTables: Set<number>;
  /** A scan that jpeg-js cannot decode: see `overrunsRestartInterval`. */
  restartOverrun: boolean;
}

function corrupt(message: string): never {
  throw new ImageError("corrupt_image", message);
}

function unsupported(message: string): never {
  throw new ImageError("unsupported_image", message);
}

const hex = (n: number) => n.toString(16).toUpperCase().padStart(2, "0");

function frameProblem(marker: number): string | null {
  const sof = `SOF${marker - 0xc0}`;
  switch (marker) {
    case 0xc0:
    case 0xc1:
    case 0xc2:
    case 0xc9:
    case 0xca:
      return null;
    case 0xc3:
      return `lossless JPEG (${sof})`;
    case 0xc5:
    case 0xc6:
    case 0xc7:
      return `hierarchical JPEG (${sof})`;
    case 0xcb:
      return `lossless JPEG with arithmetic coding (${sof})`;
    default:
      return `hierarchical JPEG with arithmetic coding (${sof})`;
  }
}

const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== DHT && m !== 0xc8 && m !== 0xcc;
/** Sequential and progressive arithmetic coding (SOF9, SOF10), which only libjpeg-turbo decodes here. */
const isArithmetic = (m: number) => m === 0xc9 || m === 0xca;

function parseFrame(bytes: Uint8Array, marker: number, p: number, length: number): Frame {
  if (length < 8) corrupt(`JPEG frame header (SOF${marker - 0xc0}) is too short`);
  const precision = bytes[p];
  const height = (bytes[p + 1] << 8) | bytes[p + 2];
  const width = (bytes[p + 3] << 8) | bytes[p + 4];
  const count = bytes[p + 5];
  const problem = frameProblem(marker);
  if (problem) unsupported(`${problem} is not supported`);
  if (precision !== 8) {
    if (precision === 12 || precision === 16) {
      unsupported(`${precision}-bit JPEG (SOF${marker - 0xc0}, precision ${precision}) is not supported`);
    }
    corrupt(`JPEG sample precision ${precision} is invalid`);
  }
  if (length < 8 + 3 * count) corrupt("JPEG frame header is shorter than its component list");
  if (width === 0) corrupt("JPEG width is 0");
  // libjpeg rejects these too ("Empty JPEG image (DNL not supported)").
  if (height === 0) unsupported("JPEG whose height is set by a DNL marker is not supported");
  if (count === 0) corrupt("JPEG frame has no components");
  if (count !== 1 && count !== 3 && count !== 4) unsupported(`JPEG with ${count} colour components is not supported`);
  const components: Component[] = [];
  for (let i = 0; i < count; i++) {
    const q = p + 6 + 3 * i;
    const id = bytes[q];
    const h = bytes[q + 1] >> 4;
    const v = bytes[q + 1] & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4) corrupt(`JPEG component ${id} has invalid sampling factors ${h}x${v}`);
    // jpeg-js keys components by id, so a repeated id would silently merge two channels.
    if (components.some((c) => c.id === id)) corrupt(`JPEG component id ${id} is used twice`);
    components.push({ id, h, v, tq: bytes[q + 2] });
  }
  const maxH = Math.max(...components.map((c) => c.h));
  const maxV = Math.max(...components.map((c) => c.v));
  if (components.some((c) => maxH % c.h !== 0 || maxV % c.v !== 0)) {
    // libjpeg refuses these as well (JERR_FRACT_SAMPLE_NOTIMPL).
    unsupported("JPEG with fractional chroma sampling ratios is not supported");
  }
  return { marker, width, height, components };
}

/**
 * jpeg-js decodes a whole restart interval even when a single-component scan ends part-way through it. The extra
 * blocks are skipped only if they fall outside the component's block grid; when the grid has a padding row (a
 * component with the largest vertical sampling factor and an odd number of block rows, e.g. luma in progressive
 * 4:2:0), it reads them from the bytes after the scan and fails on the next marker.
 */
function overrunsRestartInterval(frame: Frame, c: Component, interval: number): boolean {
  const maxH = Math.max(...frame.components.map((x) => x.h));
  const maxV = Math.max(...frame.components.map((x) => x.v));
  const blocksPerLine = Math.ceil((Math.ceil(frame.width / 8) * c.h) / maxH);
  const blocksPerColumn = Math.ceil((Math.ceil(frame.height / 8) * c.v) / maxV);
  const paddedRows = Math.ceil(frame.height / 8 / maxV) * c.v;
  return (blocksPerLine * blocksPerColumn) % interval !== 0 && paddedRows > blocksPerColumn;
}

/** Reads the orientation tag from an APP1 payload: 0 if it is not EXIF, 1 if EXIF without a usable tag. */
function exifOrientation(seg: Uint8Array): number {
  if (seg.length < 6 || seg[0] !== 0x45 || seg[1] !== 0x78 || seg[2] !== 0x69 || seg[3] !== 0x66) return 0;
  if (seg[4] !== 0 || seg[5] !== 0) return 0;
  const tiff = seg.subarray(6);
  if (tiff.length < 8) return 1;
  const little = tiff[0] === 0x49 && tiff[1] === 0x49;
  if (!little && !(tiff[0] === 0x4d && tiff[1] === 0x4d)) return 1;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  if (view.getUint16(2, little) !== 42) return 1;
  const ifd = view.getUint32(4, little);
  if (ifd < 8 || ifd + 2 > tiff.length) return 1;
  const entries = view.getUint16(ifd, little);
  // OpenCV's ExifReader drops the whole block when the directory overruns it, so no tag of it is trusted.
  if (ifd + 2 + 12 * entries > tiff.length) return 1;
  for (let i = 0; i < entries; i++) {
    const e = ifd + 2 + 12 * i;
    if (view.getUint16(e, little) !== 0x0112) continue;
    const type = view.getUint16(e + 2, little);
    const value = type === 3 ? view.getUint16(e + 8, little) : type === 4 ? view.getUint32(e + 8, little) : 0;
    return value >= 1 && value <= 8 && view.getUint32(e + 4, little) >= 1 ? value : 1;
  }
  return 1;
}

/**
 * Walks the marker structure. Stops after the frame header when `sizeOnly`, so that size checks stay cheap.
 * Unsupported coding processes are reported at their marker, before any pixel work.
 */
function readLayout(bytes: Uint8Array, sizeOnly: boolean): Layout {
  const len = bytes.length;
  if (len < 2 || bytes[0] !== 0xff || bytes[1] !== SOI) {
    throw new ImageError("not_an_image", "not a JPEG file (missing SOI marker)");
  }
  const layout: Layout = {
    frame: null,
    scans: [],
    lastScanComplete: true,
    end: len,
    truncated: false,
    jfif: false,
    adobeTransform: -1,
    jsAdobeTransforms: false,
    orientation: 1,
    missingTables: new Set(),
    restartOverrun: false,
  };
  let restartInterval = 0;
  const defined = new Set<number>();
  const quantTables = new Set<number>();
  let sawExif = false;
  let p = 2;
  for (;;) {
    if (p >= len) {
      layout.truncated = true;
      layout.end = len;
      break;
    }
    if (bytes[p] !== 0xff) {
      // Junk after a scan is already part of that scan's data (see below); junk between header segments is damage.
      corrupt(`JPEG marker expected at byte ${p}, found 0x${hex(bytes[p])}`);
    }
    // Any number of 0xFF fill bytes may precede a marker.
    let m = p + 1;
    while (m < len && bytes[m] === 0xff) m++;
    if (m >= len) {
      layout.truncated = true;
      layout.end = p;
      break;
    }
    const marker = bytes[m];
    const start = p;
    p = m + 1;
    if (marker === EOI) {
      layout.end = start;
      break;
    }
    if (marker === SOI || marker === 0x00 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      corrupt(`unexpected JPEG marker FF${hex(marker)} at byte ${start}`);
    }
    if (p + 2 > len) {
      layout.truncated = true;
      layout.end = start;
      break;
    }
    const length = (bytes[p] << 8) | bytes[p + 1];
    if (length < 2) corrupt(`JPEG segment FF${hex(marker)} at byte ${start} has invalid length ${length}`);
    if (p + length > len) {
      layout.truncated = true;
      layout.end = start;
      break;
    }
    const body = p + 2;
    const next = p + length;
    if (isSof(marker)) {
      if (layout.frame) corrupt("JPEG has more than one frame header (SOF)");
      layout.frame = parseFrame(bytes, marker, body, length);
      if (sizeOnly) return layout;
    } else if (marker === 0xde || marker === 0xdf) {
      unsupported(`hierarchical JPEG (${marker === 0xde ? "DHP" : "EXP"} marker) is not supported`);
    } else if (marker === 0xc8) {
      unsupported("JPEG extension frame (JPG marker) is not supported");
    } else if (marker === DHT) {
      let q = body;
      while (q < next) {
        if (q + 17 > next) corrupt("JPEG Huffman table (DHT) is truncated");
        let count = 0;
        for (let i = 1; i <= 16; i++) count += bytes[q + i];
        if (q + 17 + count > next) corrupt("JPEG Huffman table (DHT) is truncated");
        defined.add(bytes[q]);
        q += 17 + count;
      }
    } else if (marker === DQT) {
      for (let q = body; q < next;) {
        const id = bytes[q] & 15;
        if (id > 3) corrupt(`JPEG quantization table id ${id} is invalid`);
        if (q + 1 + (bytes[q] >> 4 ? 128 : 64) > next) corrupt("JPEG quantization table (DQT) is truncated");
        quantTables.add(id);
        q += 1 + (bytes[q] >> 4 ? 128 : 64);
      }
    } else if (marker === 0xdd) {
      if (length !== 4) corrupt("JPEG restart interval (DRI) segment is invalid");
      restartInterval = (bytes[body] << 8) | bytes[body + 1];
    } else if (marker === APP0) {
      if (length >= 16 && bytes[body] === 0x4a && bytes[body + 1] === 0x46 && bytes[body + 2] === 0x49) {
        layout.jfif ||= bytes[body + 3] === 0x46 && bytes[body + 4] === 0;
      }
    } else if (marker === APP1) {
      if (!sawExif) {
        const orientation = exifOrientation(bytes.subarray(body, next));
        if (orientation > 0) {
          sawExif = true;
          layout.orientation = orientation;
        }
      }
    } else if (marker === APP14) {
      const isAdobe = bytes[body] === 0x41 && bytes[body + 1] === 0x64 && bytes[body + 2] === 0x6f &&
        bytes[body + 3] === 0x62 && bytes[body + 4] === 0x65;
      if (isAdobe && length >= 14) layout.adobeTransform = bytes[body + 11];
      if (isAdobe && length > 13 && bytes[body + 5] === 0) layout.jsAdobeTransforms ||= bytes[body + 11] !== 0;
    } else if (marker === SOS) {
      const frame = layout.frame;
      if (!frame) corrupt("JPEG scan (SOS) comes before the frame header (SOF)");
      const count = bytes[body];
      if (count < 1 || count > 4 || length < 6 + 2 * count) corrupt("JPEG scan header (SOS) is invalid");
      const ss = bytes[body + 1 + 2 * count];
      const ah = bytes[body + 3 + 2 * count] >> 4;
      for (let i = 0; i < count; i++) {
        const id = bytes[body + 1 + 2 * i];
        const component = frame.components.find((c) => c.id === id);
        if (!component) corrupt(`JPEG scan uses unknown component ${id}`);
        // libjpeg-turbo in WASM keeps the tables of the image it decoded before (one decompressor per isolate): a
        // file lacking its own would be decoded with those of some other upload.
        if (!quantTables.has(component.tq)) {
          corrupt(`JPEG component ${id} uses quantization table ${component.tq} before it is defined (DQT)`);
        }
        const tables = bytes[body + 2 + 2 * i];
        const dc = tables >> 4, ac = 0x10 | (tables & 15);
        // A progressive scan codes either DC (refinements need no table) or AC, and consults only that table; an
        // arithmetic-coded one uses no Huffman table at all.
        let wanted = [dc, ac];
        if (frame.marker === 0xc2) wanted = ss !== 0 ? [ac] : ah === 0 ? [dc] : [];
        if (isArithmetic(frame.marker)) wanted = [];
        for (const slot of wanted) if (!defined.has(slot)) layout.missingTables.add(slot);
      }
      if (count === 1 && restartInterval > 0) {
        const component = frame.components.find((c) => c.id === bytes[body + 1])!;
        layout.restartOverrun ||= overrunsRestartInterval(frame, component, restartInterval);
      }
      layout.scans.push(start);
      // Entropy-coded data runs to the next marker other than a stuffed 0xFF00 or a restart marker.
      let q = next;
      for (;;) {
        q = bytes.indexOf(0xff, q);
        if (q < 0 || q + 1 >= len) {
          q = -1;
          break;
        }
        const b = bytes[q + 1];
        if (b === 0 || (b >= 0xd0 && b <= 0xd7)) q += 2;
        else if (b === 0xff) q += 1;
        else break;
      }
      if (q < 0) {
        layout.truncated = true;
        layout.lastScanComplete = false;
        layout.end = len;
        break;
      }
      p = q;
      continue;
    }
    p = next;
  }
  if (!layout.frame) {
    corrupt(layout.truncated ? "JPEG is truncated before its frame header (SOF)" : "JPEG has no frame header (SOF)");
  }
  if (!sizeOnly && layout.scans.length === 0) {
    corrupt(layout.truncated ? "JPEG is truncated before its image data (SOS)" : "JPEG has no image data (SOS)");
  }
  return layout;
}

/** Reads width and height from the SOF marker without decoding (for pixel limits before decoding). */
export function readJpegSize(bytes: Uint8Array): { width: number; height: number } {
  const { width, height } = readLayout(bytes, true).frame!;
  return { width, height };
}

// libjpeg's standard tables (ITU T.81 K.3), which it substitutes for missing ones: slot 0 luminance, 1 chrominance.
const fromHex = (s: string) => Uint8Array.from(s.match(/../g)!, (h) => parseInt(h, 16));
const STD_TABLES: Record<number, Uint8Array> = {
  0x00: fromHex("00010501010101010100000000000000000102030405060708090a0b"),
  0x01: fromHex("00030101010101010101010000000000000102030405060708090a0b"),
  0x10: fromHex(
    "0002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282" +
      "090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a" +
      "838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9" +
      "dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa",
  ),
  0x11: fromHex(
    "00020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1c109233352f0156272d1" +
      "0a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a636465666768696a737475767778" +
      "797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6" +
      "d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa",
  ),
};

function segment(marker: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  out[0] = 0xff;
  out[1] = marker;
  out[2] = (body.length + 2) >> 8;
  out[3] = (body.length + 2) & 0xff;
  out.set(body, 4);
  return out;
}

/**
 * What jpeg-js is given: the file itself when it can take it as is, otherwise a copy with segments inserted (at
 * ascending offsets) and, when `cut` is set, only the bytes before it followed by an EOI.
 */
function jsInput(bytes: Uint8Array, inserts: [number, Uint8Array][], cut: number | null): ArrayBuffer | Uint8Array {
  if (inserts.length === 0 && cut === null) {
    // An ArrayBuffer spares the copy jpeg-js would make of a Uint8Array.
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    return whole && bytes.buffer instanceof ArrayBuffer ? bytes.buffer : bytes;
  }
  const end = cut ?? bytes.length;
  const out = new Uint8Array(end + inserts.reduce((n, [, s]) => n + s.length, 0) + (cut === null ? 0 : 2));
  let from = 0, o = 0;
  for (const [at, s] of inserts) {
    out.set(bytes.subarray(from, at), o);
    o += at - from;
    out.set(s, o);
    o += s.length;
    from = at;
  }
  out.set(bytes.subarray(from, end), o);
  if (cut !== null) out.set([0xff, EOI], out.length - 2);
  return out.buffer;
}

type ColourSpace = "gray" | "ycc" | "rgb" | "cmyk" | "ycck";

/** libjpeg's jpeg_color_space guess (jdapimin.c default_decompress_parms). */
function colourSpace(layout: Layout, frame: Frame): ColourSpace {
  const ids = frame.components.map((c) => c.id);
  switch (ids.length) {
    case 1:
      return "gray";
    case 3:
      if (layout.jfif) return "ycc";
      if (layout.adobeTransform >= 0) return layout.adobeTransform === 0 ? "rgb" : "ycc";
      return ids[0] === 0x52 && ids[1] === 0x47 && ids[2] === 0x42 ? "rgb" : "ycc";
    default:
      // Without an Adobe marker libjpeg assumes plain CMYK; unknown transforms are taken as YCCK.
      return layout.adobeTransform > 0 ? "ycck" : "cmyk";
  }
}

function runJpegJs(input: ArrayBuffer | Uint8Array, colorTransform: boolean) {
  try {
    return jpeg.decode(input, {
      useTArray: true,
      formatAsRGBA: false,
      colorTransform,
      maxResolutionInMP: MAX_MEGAPIXELS,
      maxMemoryUsageInMB: MAX_MEMORY_MB,
    });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (/maxResolutionInMP|maxMemoryUsageInMB|allocate enough memory/.test(reason)) {
      throw new ImageError("image_too_large", `JPEG is too large to decode: ${reason}`);
    }
    throw new ImageError("corrupt_image", `could not decode JPEG: ${reason}`);
  }
}

/** Decodes a JPEG (baseline, progressive, gray, CMYK/YCCK, restart markers) with its EXIF orientation applied. */
export function decodeJpeg(bytes: Uint8Array): Decoded {
  const layout = readLayout(bytes, false);
  const frame = layout.frame!;
  if (frame.width * frame.height > MAX_MEGAPIXELS * 1e6) {
    throw new ImageError("image_too_large", `JPEG ${frame.width}x${frame.height} is too large to decode`);
  }
  const space = colourSpace(layout, frame);
  const converted = space === "cmyk" || space === "ycck" ? ["CMYK converted to RGB"] : [];
  if (isArithmetic(frame.marker)) return decodeArithmetic(bytes, layout, converted);
  const decoded = !layout.truncated && layout.missingTables.size === 0 ? decodeJpegWasm(bytes) : null;
  if (decoded && decoded.width === frame.width && decoded.height === frame.height) {
    // RGBA is kept as it comes (alpha 255): OpenCV converts it to gray and RGB as fast as a copy could strip it.
    const raster: Raster = { width: decoded.width, height: decoded.height, channels: 4, data: decoded.rgba };
    return withOrientation(raster, layout.orientation, converted);
  }
  const notes: string[] = [];

  const tables: Uint8Array[] = [];
  for (const slot of layout.missingTables) {
    const table = STD_TABLES[slot];
    if (!table) corrupt(`JPEG scan uses Huffman table ${slot & 15} before it is defined`);
    tables.push(segment(DHT, Uint8Array.of(slot, ...table)));
  }
  if (tables.length > 0) notes.push("JPEG lacks Huffman tables: standard tables used");
  // jpeg-js takes the last Adobe segment it finds as the colour transform. It must say "none" for 3 components (they
  // come back raw, to be converted here as libjpeg does) and say CMYK or YCCK as decided above for 4 components
  // (jpeg-js refuses 4 components without one). A segment of our own just before the EOI settles it.
  let adobe: Uint8Array | null = null;
  if (frame.components.length === 4 || (frame.components.length === 3 && layout.jsAdobeTransforms)) {
    const transform = space === "ycck" ? 2 : 0;
    adobe = segment(APP14, Uint8Array.of(0x41, 0x64, 0x6f, 0x62, 0x65, 0, 100, 0, 0, 0, 0, transform));
  }
  const colorTransform = space === "ycck";
  const decodeUpTo = (cut: number | null) => {
    const inserts: [number, Uint8Array][] = [];
    if (tables.length > 0) inserts.push([layout.scans[0], concatBytes(tables)]);
    if (adobe) inserts.push([cut ?? layout.end, adobe]);
    return runJpegJs(jsInput(bytes, inserts, cut), colorTransform);
  };

  let img;
  if (!layout.truncated) {
    try {
      img = decodeUpTo(null);
    } catch (err) {
      if (layout.restartOverrun && err instanceof ImageError && err.code === "corrupt_image") {
        unsupported(
          "JPEG with restart markers in a single-component scan that ends part-way through a restart interval " +
            "(common in progressive 4:2:0 files with restart markers) is not supported",
        );
      }
      throw err;
    }
  } else {
    // libjpeg (so imread) warns, decodes what is there and fills the rest with grey. jpeg-js cannot stop inside a scan,
    // so what is accepted is a file whose scans are complete (only the end is missing) or, failing that, a multi-scan
    // (progressive) file without its incomplete last scan: a coarser but whole picture. A lone scan cut short would
    // need the grey fill, and a half-grey picture would only mislead the analysis, so that is corrupt_image.
    try {
      img = decodeUpTo(layout.end);
      notes.push("JPEG file is truncated (end marker missing)");
    } catch (err) {
      if (!(err instanceof ImageError) || err.code !== "corrupt_image" || layout.lastScanComplete) throw err;
      if (layout.scans.length < 2) {
        corrupt(`JPEG data is truncated: the file ends inside its compressed image data (${bytes.length} bytes)`);
      }
      img = decodeUpTo(layout.scans[layout.scans.length - 1]);
      notes.push(`JPEG file is truncated: decoded ${layout.scans.length - 1} of ${layout.scans.length} scans`);
    }
  }
  const { width, height } = img;
  const data = img.data;
  if (width !== frame.width || height !== frame.height || data.length !== width * height * 3) {
    corrupt("JPEG decoder returned an unexpected image size");
  }

  let raster: Raster;
  if (space === "gray") {
    raster = { width, height, channels: 1, data: firstChannel(data) };
  } else {
    if (space === "ycc" || space === "rgb") {
      fancyUpsample(data, frame);
      if (space === "ycc") yccToRgb(data);
    } else {
      notes.push("CMYK converted to RGB");
    }
    raster = { width, height, channels: 3, data };
  }

  return withOrientation(raster, layout.orientation, notes);
}

/**
 * Arithmetic-coded files, through libjpeg-turbo only. A truncated one is cut back to where its scans are whole and
 * given an EOI, as the jpeg-js path does: arithmetic decoding takes a marker inside a scan as the start of zero data
 * (T.81 allows it), so a scan cut short would decode without a warning into a wrong picture; it is dropped instead, or
 * the file refused when it is the only scan.
 */
function decodeArithmetic(bytes: Uint8Array, layout: Layout, notes: string[]): Decoded {
  const frame = layout.frame!;
  let input = bytes;
  if (layout.truncated) {
    const scans = layout.scans.length;
    if (layout.lastScanComplete) {
      input = withEoi(bytes, layout.end);
      notes = [...notes, "JPEG file is truncated (end marker missing)"];
    } else if (scans >= 2) {
      input = withEoi(bytes, layout.scans[scans - 1]);
      notes = [...notes, `JPEG file is truncated: decoded ${scans - 1} of ${scans} scans`];
    } else {
      corrupt(`JPEG data is truncated: the file ends inside its compressed image data (${bytes.length} bytes)`);
    }
  }
  const decoded = decodeJpegWasm(input, { load: true });
  if (!decoded || decoded.width !== frame.width || decoded.height !== frame.height) {
    corrupt("JPEG arithmetic-coded data is damaged (libjpeg-turbo reports corrupt data)");
  }
  const raster: Raster = { width: decoded.width, height: decoded.height, channels: 4, data: decoded.rgba };
  return withOrientation(raster, layout.orientation, notes);
}

/** The first `end` bytes of a JPEG followed by an EOI marker. */
function withEoi(bytes: Uint8Array, end: number): Uint8Array {
  const out = new Uint8Array(end + 2);
  out.set(bytes.subarray(0, end));
  out.set([0xff, EOI], end);
  return out;
}

/** Applies the EXIF orientation (1 = as stored) and reports it with the notes, as imread does by default. */
function withOrientation(raster: Raster, orientation: number, notes: string[]): Decoded {
  const info: DecodeInfo = {};
  if (orientation !== 1) {
    raster = orient(raster, orientation);
    info.orientation = orientation;
  }
  if (notes.length > 0) info.notes = notes;
  return { raster, info };
}

/** jpeg-js hands gray images back as RGB triplets; one sample of each is the gray value. */
function firstChannel(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array(rgb.length / 3);
  for (let i = 0, j = 0; i < out.length; i++, j += 3) out[i] = rgb[j];
  return out;
}

let yccTables: { crR: Int32Array; cbB: Int32Array; crG: Int32Array; cbG: Int32Array } | null = null;

/** In-place YCbCr→RGB with libjpeg's fixed-point tables (jdcolor.c), so this step matches libjpeg exactly. */
function yccToRgb(data: Uint8Array): void {
  if (!yccTables) {
    const fix = (x: number) => Math.floor(x * 65536 + 0.5);
    const crR = new Int32Array(256), cbB = new Int32Array(256), crG = new Int32Array(256), cbG = new Int32Array(256);
    for (let i = 0; i < 256; i++) {
      const x = i - 128;
      crR[i] = (fix(1.402) * x + 32768) >> 16;
      cbB[i] = (fix(1.772) * x + 32768) >> 16;
      crG[i] = -fix(0.71414) * x;
      cbG[i] = -fix(0.34414) * x + 32768;
    }
    yccTables = { crR, cbB, crG, cbG };
  }
  const { crR, cbB, crG, cbG } = yccTables;
  for (let i = 0; i < data.length; i += 3) {
    const y = data[i], cb = data[i + 1], cr = data[i + 2];
    const r = y + crR[cr], g = y + ((cbG[cb] + crG[cr]) >> 16), b = y + cbB[cb];
    data[i] = r < 0 ? 0 : r > 255 ? 255 : r;
    data[i + 1] = g < 0 ? 0 : g > 255 ? 255 : g;
    data[i + 2] = b < 0 ? 0 : b > 255 ? 255 : b;
  }
}

/**
 * Replaces jpeg-js's replicated chroma with libjpeg's triangle-filter upsampling (jdsample.c h2v1/h1v2/h2v2
 * fancy_upsample) for components subsampled 2:1. Other ratios are replicated by libjpeg too, so they are left alone.
 * The subsampled plane is recovered exactly from the replicated output: every sample appears at even coordinates.
 */
function fancyUpsample(data: Uint8Array, frame: Frame): void {
  const { width, height, components } = frame;
  const maxH = Math.max(...components.map((c) => c.h));
  const maxV = Math.max(...components.map((c) => c.v));
  components.forEach((c, ch) => {
    const hr = maxH / c.h, vr = maxV / c.v;
    const dw = Math.ceil((width * c.h) / maxH), dh = Math.ceil((height * c.v) / maxV);
    if (hr === 2 && vr === 1 && dw > 2) upsampleH2V1(data, width, height, ch, dw);
    else if (hr === 1 && vr === 2) upsampleV2(data, width, height, ch, dw, dh, false);
    else if (hr === 2 && vr === 2 && dw > 2) upsampleV2(data, width, height, ch, dw, dh, true);
  });
}

function upsampleH2V1(data: Uint8Array, width: number, height: number, ch: number, dw: number): void {
  const row = new Int32Array(dw);
  const last = dw - 1;
  for (let y = 0; y < height; y++) {
    const base = y * width * 3 + ch;
    for (let cx = 0; cx < dw; cx++) row[cx] = data[base + 6 * cx];
    for (let x = 0; x < width; x++) {
      const cx = x >> 1;
      const t = row[cx] * 3;
      let v: number;
      if ((x & 1) === 0) v = cx === 0 ? row[0] : (t + row[cx - 1] + 1) >> 2;
      else v = cx === last ? row[last] : (t + row[cx + 1] + 2) >> 2;
      data[base + 3 * x] = v;
    }
  }
}

function upsampleV2(
  data: Uint8Array,
  width: number,
  height: number,
  ch: number,
  dw: number,
  dh: number,
  h2: boolean,
): void {
  const hr = h2 ? 2 : 1;
  const plane = new Uint8Array(dw * dh);
  for (let cy = 0; cy < dh; cy++) {
    const base = 2 * cy * width * 3 + ch;
    for (let cx = 0; cx < dw; cx++) plane[cy * dw + cx] = data[base + 3 * hr * cx];
  }
  const colsum = new Int32Array(dw);
  const last = dw - 1;
  for (let y = 0; y < height; y++) {
    const cy = y >> 1;
    const lower = (y & 1) === 1;
    // The nearer input row counts three times, the next nearer once; edge rows stand in for missing neighbours.
    const other = lower ? Math.min(cy + 1, dh - 1) : Math.max(cy - 1, 0);
    for (let cx = 0; cx < dw; cx++) colsum[cx] = plane[cy * dw + cx] * 3 + plane[other * dw + cx];
    const base = y * width * 3 + ch;
    if (!h2) {
      const bias = lower ? 2 : 1;
      for (let x = 0; x < width; x++) data[base + 3 * x] = (colsum[x] + bias) >> 2;
      continue;
    }
    for (let x = 0; x < width; x++) {
      const cx = x >> 1;
      const t = colsum[cx] * 3;
      let v: number;
      if ((x & 1) === 0) v = cx === 0 ? (colsum[0] * 4 + 8) >> 4 : (t + colsum[cx - 1] + 8) >> 4;
      else v = cx === last ? (colsum[last] * 4 + 7) >> 4 : (t + colsum[cx + 1] + 7) >> 4;
      data[base + 3 * x] = v;
    }
  }
}

/**
 * Turns the stored pixels upright for EXIF orientation 2–8. Flips work in place; the transposing orientations
 * (5–8) need a new buffer since width and height swap.
 */
function orient(r: Raster, orientation: number): Raster {
  const { width: w, height: h, channels: c, data } = r;
  const rowBytes = w * c;
  if (orientation === 2 || orientation === 3) {
    for (let y = 0; y < h; y++) mirrorRow(data, y * rowBytes, w, c);
  }
  if (orientation === 3 || orientation === 4) {
    const tmp = new Uint8Array(rowBytes);
    for (let top = 0, bottom = h - 1; top < bottom; top++, bottom--) {
      const a = top * rowBytes, b = bottom * rowBytes;
      tmp.set(data.subarray(a, a + rowBytes));
      data.copyWithin(a, b, b + rowBytes);
      data.set(tmp, b);
    }
  }
  if (orientation <= 4) return r;

  // Output (ox, oy) in an h×w image reads input (ix, iy) = (oy or w-1-oy, ox or h-1-ox).
  const out = new Uint8Array(data.length);
  const flipX = orientation === 7 || orientation === 8; // input x runs against output y
  const flipY = orientation === 6 || orientation === 7; // input y runs against output x
  for (let oy = 0; oy < w; oy++) {
    const ix = flipX ? w - 1 - oy : oy;
    let o = oy * h * c;
    if (c === 1) {
      for (let ox = 0; ox < h; ox++) out[o++] = data[(flipY ? h - 1 - ox : ox) * w + ix];
    } else {
      for (let ox = 0; ox < h; ox++) {
        let i = ((flipY ? h - 1 - ox : ox) * w + ix) * c;
        for (let k = 0; k < c; k++) out[o++] = data[i++];
      }
    }
  }
  return { width: h, height: w, channels: c, data: out };
}

function mirrorRow(data: Uint8Array, start: number, w: number, c: number): void {
  for (let a = start, b = start + (w - 1) * c; a < b; a += c, b -= c) {
    for (let k = 0; k < c; k++) {
      const t = data[a + k];
      data[a + k] = data[b + k];
      data[b + k] = t;
    }
  }
}
