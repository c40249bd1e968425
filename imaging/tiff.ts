import { unzlibSync } from "fflate";
import { decompress as unzstd } from "fzstd";
import jpeg from "jpeg-js";
import {
  COMPRESSION_CCITT_G3,
  COMPRESSION_CCITT_G4,
  COMPRESSION_CCITT_RLE,
  decodeFax,
  type FaxCoding,
} from "./ccitt.ts";
import { ImageError } from "./image_error.ts";
import type { Decoded, DecodeInfo, Raster } from "./raster.ts";
import { lzwDecode } from "./unpack.ts";
import { decodeXz } from "./xz.ts";

// A self-contained baseline TIFF reader rather than utif2, which is unsafe on untrusted input (a looping IFD chain
// grows its page list until the process runs out of memory; out-of-range offsets, truncated data and unknown
// compressions silently give black pixels; tiled files print to stdout) and wrong on valid files (PlanarConfiguration
// 2, gray JPEG, 2/4-bit gray, CMYK outside a browser, padded last Deflate strips). Every offset and size here is
// checked against the file before it is used.

const TAG = {
  width: 256,
  height: 257,
  bitsPerSample: 258,
  compression: 259,
  photometric: 262,
  fillOrder: 266,
  t4Options: 292,
  stripOffsets: 273,
  samplesPerPixel: 277,
  rowsPerStrip: 278,
  stripByteCounts: 279,
  planarConfig: 284,
  predictor: 317,
  colorMap: 320,
  tileWidth: 322,
  tileLength: 323,
  tileOffsets: 324,
  tileByteCounts: 325,
  inkSet: 332,
  extraSamples: 338,
  sampleFormat: 339,
  jpegTables: 347,
} as const;

const TAG_NAMES: Record<number, string> = {
  256: "ImageWidth",
  257: "ImageLength",
  258: "BitsPerSample",
  259: "Compression",
  262: "PhotometricInterpretation",
  273: "StripOffsets",
  277: "SamplesPerPixel",
  278: "RowsPerStrip",
  279: "StripByteCounts",
  320: "ColorMap",
  322: "TileWidth",
  323: "TileLength",
  324: "TileOffsets",
  325: "TileByteCounts",
  338: "ExtraSamples",
  347: "JPEGTables",
};

const COMPRESSION_NONE = 1;
const COMPRESSION_LZW = 5;
export const COMPRESSION_JPEG = 7;
const COMPRESSION_DEFLATE = 8;
const COMPRESSION_DEFLATE_OLD = 32946;
const COMPRESSION_PACKBITS = 32773;
const COMPRESSION_LZMA = 34925;
const COMPRESSION_ZSTD = 50000;
/** Compressions decodeTiff reads. */
export const SUPPORTED_COMPRESSIONS: ReadonlySet<number> = new Set([
  COMPRESSION_NONE,
  COMPRESSION_CCITT_RLE,
  COMPRESSION_CCITT_G3,
  COMPRESSION_CCITT_G4,
  COMPRESSION_LZW,
  COMPRESSION_JPEG,
  COMPRESSION_DEFLATE,
  COMPRESSION_DEFLATE_OLD,
  COMPRESSION_PACKBITS,
  COMPRESSION_LZMA,
  COMPRESSION_ZSTD,
]);
const FAX_COMPRESSIONS = new Set([COMPRESSION_CCITT_RLE, COMPRESSION_CCITT_G3, COMPRESSION_CCITT_G4]);
const COMPRESSION_NAMES: Record<number, string> = {
  6: "old-style JPEG",
  9: "JBIG",
  10: "JBIG2",
  32809: "ThunderScan",
  34661: "JBIG",
  34676: "SGI LogLuv",
  34677: "SGI LogLuv",
  34712: "JPEG 2000",
  34887: "LERC",
  34892: "lossy JPEG (DNG)",
  50001: "WebP",
  50002: "JPEG XL",
};

const WHITE_IS_ZERO = 0;
export const BLACK_IS_ZERO = 1;
export const RGB = 2;
export const PALETTE = 3;
export const CMYK = 5;
const YCBCR = 6;
const PHOTOMETRIC_NAMES: Record<number, string> = {
  4: "transparency mask",
  6: "YCbCr",
  8: "CIE L*a*b*",
  9: "ICC L*a*b*",
  10: "ITU L*a*b*",
  32803: "CFA raw sensor data",
  32844: "LogL",
  32845: "LogLuv",
  34892: "linear raw",
};

// Bytes per value for field types 1–13 (0 = unknown type, whose entries are skipped as TIFF 6 requires).
const TYPE_SIZES = [0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4];
const INTEGER_TYPES = new Set([1, 3, 4, 6, 8, 9, 13]);
const SIGNED_TYPES = new Set([6, 8, 9]);
// Far more pages than any real file; it only bounds the walk along a hostile IFD chain.
const MAX_PAGES_COUNTED = 100_000;
// Tiles bigger than this are not produced by real writers and would only provoke huge allocations.
export const MAX_TILE_BYTES = 1 << 28;

interface TiffFile {
  bytes: Uint8Array;
  view: DataView;
  le: boolean;
  firstIfd: number;
}

interface Entry {
  type: number;
  count: number;
  /** Absolute file offset of the value bytes. */
  at: number;
  size: number;
}

interface Ifd {
  entries: Map<number, Entry>;
  next: number;
}

interface Page {
  width: number;
  height: number;
  bps: number;
  spp: number;
  compression: number;
  /** After JPEG decoding YCbCr has become RGB, so this is the photometric of the decoded samples. */
  photometric: number;
  jpegColorTransform: boolean | undefined;
  fax: FaxCoding | undefined;
  planar: 1 | 2;
  predictor: boolean;
  reverseBits: boolean;
  extraSamples: number[];
  colorMap: number[] | undefined;
  jpegTables: Uint8Array | undefined;
  tiled: boolean;
  chunkWidth: number;
  chunkHeight: number;
  across: number;
  down: number;
  offsets: number[];
  counts: number[];
}

function corrupt(message: string): never {
  throw new ImageError("corrupt_image", message);
}

function unsupported(message: string): never {
  throw new ImageError("unsupported_image", message);
}

/** What is unsupported about a compression ("TIFF compression 34712 (JPEG 2000)"), or undefined when it decodes. */
export function compressionProblem(compression: number): string | undefined {
  if (SUPPORTED_COMPRESSIONS.has(compression)) return undefined;
  const name = COMPRESSION_NAMES[compression];
  return `TIFF compression ${compression}${name ? ` (${name})` : ""}`;
}

/** A TIFF tag's name for error messages ("StripOffsets"), or "tag N" for one this decoder does not read. */
export function tagName(tag: number): string {
  return TAG_NAMES[tag] ?? `tag ${tag}`;
}

function allocate(size: number, what: string): Uint8Array {
  try {
    return new Uint8Array(size);
  } catch {
    throw new ImageError("image_too_large", `TIFF ${what} is too large to decode`);
  }
}

function openTiff(bytes: Uint8Array): TiffFile {
  const ii = bytes.length >= 2 && bytes[0] === 0x49 && bytes[1] === 0x49;
  const mm = bytes.length >= 2 && bytes[0] === 0x4d && bytes[1] === 0x4d;
  if (!ii && !mm) throw new ImageError("not_an_image", "not a TIFF file (missing II/MM byte-order mark)");
  if (bytes.length < 8) corrupt(`TIFF header truncated: file has only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = ii;
  const magic = view.getUint16(2, le);
  if (magic === 43) unsupported("BigTIFF (64-bit offsets)");
  if (magic !== 42) throw new ImageError("not_an_image", `not a TIFF file (version ${magic} instead of 42)`);
  return { bytes, view, le, firstIfd: view.getUint32(4, le) };
}

function readIfd(file: TiffFile, offset: number): Ifd {
  const { view, le } = file;
  const len = file.bytes.length;
  if (offset < 8 || offset + 2 > len) {
    corrupt(`TIFF directory offset ${offset} lies outside the ${len}-byte file`);
  }
  const count = view.getUint16(offset, le);
  if (count === 0) corrupt(`TIFF directory at ${offset} has no entries`);
  const end = offset + 2 + count * 12;
  if (end > len) corrupt(`TIFF directory at ${offset} (${count} entries) runs past the end of the ${len}-byte file`);
  const entries = new Map<number, Entry>();
  for (let p = offset + 2; p < end; p += 12) {
    const tag = view.getUint16(p, le);
    const type = view.getUint16(p + 2, le);
    const n = view.getUint32(p + 4, le);
    const unit = TYPE_SIZES[type] ?? 0;
    if (unit === 0) continue;
    const size = unit * n;
    entries.set(tag, { type, count: n, at: size <= 4 ? p + 8 : view.getUint32(p + 8, le), size });
  }
  // A missing next-IFD pointer is common enough in the wild to read as "no more pages" rather than damage.
  const next = end + 4 <= len ? view.getUint32(end, le) : 0;
  return { entries, next };
}

function ints(file: TiffFile, ifd: Ifd, tag: number): number[] | undefined {
  const e = ifd.entries.get(tag);
  if (e === undefined || e.count === 0) return undefined;
  if (!INTEGER_TYPES.has(e.type)) corrupt(`TIFF ${tagName(tag)} has non-integer field type ${e.type}`);
  // Bounds are checked only for tags actually used, so a broken irrelevant tag cannot spoil a readable image.
  if (e.at + e.size > file.bytes.length) corrupt(`TIFF ${tagName(tag)} values lie beyond the end of the file`);
  const { view, le } = file;
  const unit = TYPE_SIZES[e.type];
  const signed = SIGNED_TYPES.has(e.type);
  const out = new Array<number>(e.count);
  for (let i = 0, p = e.at; i < e.count; i++, p += unit) {
    if (unit === 1) out[i] = signed ? view.getInt8(p) : view.getUint8(p);
    else if (unit === 2) out[i] = signed ? view.getInt16(p, le) : view.getUint16(p, le);
    else out[i] = signed ? view.getInt32(p, le) : view.getUint32(p, le);
  }
  return out;
}

function int(file: TiffFile, ifd: Ifd, tag: number, fallback: number): number {
  return ints(file, ifd, tag)?.[0] ?? fallback;
}

function requiredInt(file: TiffFile, ifd: Ifd, tag: number): number {
  const v = ints(file, ifd, tag)?.[0];
  if (v === undefined) corrupt(`TIFF has no ${tagName(tag)}`);
  return v;
}

function rawBytes(file: TiffFile, ifd: Ifd, tag: number): Uint8Array | undefined {
  const e = ifd.entries.get(tag);
  if (e === undefined || e.count === 0) return undefined;
  if (TYPE_SIZES[e.type] !== 1) corrupt(`TIFF ${tagName(tag)} has unexpected field type ${e.type}`);
  if (e.at + e.size > file.bytes.length) corrupt(`TIFF ${tagName(tag)} lies beyond the end of the file`);
  return file.bytes.subarray(e.at, e.at + e.size);
}

function readDimensions(file: TiffFile, ifd: Ifd): { width: number; height: number } {
  const width = requiredInt(file, ifd, TAG.width);
  const height = requiredInt(file, ifd, TAG.height);
  if (width <= 0 || height <= 0) corrupt(`TIFF has invalid size ${width}x${height}`);
  return { width, height };
}

/** Reads the first page's width and height from the IFD without decoding pixels (for pixel limits). */
export function readTiffSize(bytes: Uint8Array): { width: number; height: number } {
  const file = openTiff(bytes);
  return readDimensions(file, readIfd(file, file.firstIfd));
}

/** Decodes the first page of a TIFF to an 8-bit raster. */
export function decodeTiff(bytes: Uint8Array): Decoded {
  try {
    const file = openTiff(bytes);
    const ifd = readIfd(file, file.firstIfd);
    const page = describePage(file, ifd);
    const samples = readSamples(file, page);
    const notes: string[] = [];
    const raster = toRaster(page, samples, notes);
    const info: DecodeInfo = {};
    const pages = countPages(file, file.firstIfd, ifd.next);
    if (pages > 1) {
      info.pages = pages;
      notes.unshift(`multi-page TIFF: first of ${pages} pages analysed`);
    }
    if (notes.length > 0) info.notes = notes;
    return { raster, info };
  } catch (err) {
    if (err instanceof ImageError) throw err;
    // Anything else escaping the checks above is still a property of these bytes, not a transient failure.
    const reason = err instanceof Error ? err.message : String(err);
    throw new ImageError("corrupt_image", `could not decode TIFF: ${reason}`);
  }
}

function countPages(file: TiffFile, first: number, next: number): number {
  const { view, le } = file;
  const len = file.bytes.length;
  const seen = new Set([first]);
  let pages = 1;
  // Later pages are never decoded, so a damaged or looping chain just ends the count instead of failing the image.
  for (let off = next; off !== 0 && pages < MAX_PAGES_COUNTED; pages++) {
    if (seen.has(off) || off < 8 || off + 2 > len) break;
    seen.add(off);
    const count = view.getUint16(off, le);
    const end = off + 2 + count * 12;
    if (count === 0 || end > len) break;
    off = end + 4 <= len ? view.getUint32(end, le) : 0;
  }
  return pages;
}

function describePage(file: TiffFile, ifd: Ifd): Page {
  const { width, height } = readDimensions(file, ifd);

  const compression = int(file, ifd, TAG.compression, COMPRESSION_NONE);
  const problem = compressionProblem(compression);
  if (problem) unsupported(problem);

  const spp = int(file, ifd, TAG.samplesPerPixel, 1);
  if (spp < 1) corrupt(`TIFF has ${spp} samples per pixel`);
  const bpsList = ints(file, ifd, TAG.bitsPerSample) ?? [1];
  const bps = bpsList[0];
  if (bpsList.some((b) => b !== bps)) unsupported(`TIFF with mixed bits per sample (${bpsList.join(",")})`);
  if (![1, 2, 4, 8, 16].includes(bps)) unsupported(`TIFF with ${bps}-bit samples`);
  const formats = ints(file, ifd, TAG.sampleFormat) ?? [1];
  for (const f of formats) {
    // 4 ("void") is what some writers put for plain unsigned data.
    if (f !== 1 && f !== 4) {
      const kind = f === 2 ? "signed integer" : f === 3 ? "floating-point" : `format ${f}`;
      unsupported(`TIFF with ${kind} samples`);
    }
  }

  const planarValue = int(file, ifd, TAG.planarConfig, 1);
  if (planarValue !== 1 && planarValue !== 2) unsupported(`TIFF planar configuration ${planarValue}`);
  const planar = spp === 1 ? 1 : planarValue;

  const extraSamples = ints(file, ifd, TAG.extraSamples) ?? [];
  let photometric = int(file, ifd, TAG.photometric, spp - extraSamples.length >= 3 ? RGB : BLACK_IS_ZERO);
  const colorSamples = photometric === RGB || photometric === YCBCR ? 3 : photometric === CMYK ? 4 : 1;
  let jpegColorTransform: boolean | undefined;
  let colorMap: number[] | undefined;
  const jpegTables = compression === COMPRESSION_JPEG ? rawBytes(file, ifd, TAG.jpegTables) : undefined;

  if (compression === COMPRESSION_JPEG) {
    if (bps !== 8) unsupported(`TIFF JPEG with ${bps}-bit samples`);
    if (planar === 2) unsupported("TIFF JPEG with separate colour planes (PlanarConfiguration 2)");
    const ok = (photometric === BLACK_IS_ZERO && spp === 1) ||
      ((photometric === RGB || photometric === YCBCR) && spp === 3);
    if (!ok) unsupported(`TIFF JPEG with photometric interpretation ${photometric} and ${spp} samples per pixel`);
    // Without an Adobe marker a 3-component JPEG gives no hint of its colour space; the TIFF tag is authoritative.
    jpegColorTransform = photometric === YCBCR ? true : photometric === RGB ? false : undefined;
    if (photometric === YCBCR) photometric = RGB;
  } else if (photometric === YCBCR) {
    unsupported("TIFF YCbCr without JPEG compression");
  }
  let fax: FaxCoding | undefined;
  if (FAX_COMPRESSIONS.has(compression)) {
    // libtiff's fax codec, too, only reads one bilevel sample per pixel.
    if (bps !== 1) unsupported(`TIFF CCITT fax with ${bps}-bit samples`);
    if (spp !== 1) unsupported(`TIFF CCITT fax with ${spp} samples per pixel`);
    const t4Options = compression === COMPRESSION_CCITT_G3 ? int(file, ifd, TAG.t4Options, 0) : 0;
    fax = { compression: compression as FaxCoding["compression"], twoDimensional: (t4Options & 1) === 1 };
  }

  switch (photometric) {
    case WHITE_IS_ZERO:
    case BLACK_IS_ZERO:
      break;
    case RGB:
      if (bps < 8) unsupported(`TIFF RGB with ${bps}-bit samples`);
      break;
    case PALETTE: {
      if (bps > 8) unsupported(`TIFF palette with ${bps}-bit indices`);
      colorMap = ints(file, ifd, TAG.colorMap);
      if (colorMap === undefined) corrupt("TIFF palette image has no ColorMap");
      if (colorMap.length < 3 << bps) corrupt(`TIFF ColorMap has ${colorMap.length} entries, expected ${3 << bps}`);
      break;
    }
    case CMYK: {
      const inkSet = int(file, ifd, TAG.inkSet, 1);
      if (inkSet !== 1) unsupported(`TIFF separated image with ink set ${inkSet} (not CMYK)`);
      if (bps < 8) unsupported(`TIFF CMYK with ${bps}-bit samples`);
      break;
    }
    default: {
      const name = PHOTOMETRIC_NAMES[photometric];
      unsupported(`TIFF photometric interpretation ${photometric}${name ? ` (${name})` : ""}`);
    }
  }
  if (spp < colorSamples) {
    corrupt(`TIFF has ${spp} samples per pixel, photometric ${photometric} needs ${colorSamples}`);
  }

  const predictorValue = int(file, ifd, TAG.predictor, 1);
  // Only the codecs that libtiff pairs with a predictor honour the tag; elsewhere writers leave stray values.
  const predicted = compression === COMPRESSION_LZW || compression === COMPRESSION_DEFLATE ||
    compression === COMPRESSION_DEFLATE_OLD || compression === COMPRESSION_ZSTD || compression === COMPRESSION_LZMA;
  let predictor = false;
  if (predicted && predictorValue !== 1) {
    if (predictorValue === 3) unsupported("TIFF floating-point predictor (Predictor 3)");
    if (predictorValue !== 2) unsupported(`TIFF predictor ${predictorValue}`);
    if (bps < 8) unsupported(`TIFF horizontal predictor with ${bps}-bit samples`);
    predictor = true;
  }
  const fillOrder = int(file, ifd, TAG.fillOrder, 1);
  const reverseBits = fillOrder === 2 && compression !== COMPRESSION_JPEG;

  const tiled = ifd.entries.has(TAG.tileWidth) || ifd.entries.has(TAG.tileOffsets);
  let chunkWidth: number, chunkHeight: number, offsets: number[] | undefined, counts: number[] | undefined;
  if (tiled) {
    chunkWidth = requiredInt(file, ifd, TAG.tileWidth);
    chunkHeight = requiredInt(file, ifd, TAG.tileLength);
    if (chunkWidth <= 0 || chunkHeight <= 0) corrupt(`TIFF has invalid tile size ${chunkWidth}x${chunkHeight}`);
    const tileSamples = planar === 2 ? 1 : spp;
    if (Math.ceil((chunkWidth * tileSamples * bps) / 8) * chunkHeight > MAX_TILE_BYTES) {
      corrupt(`TIFF tile size ${chunkWidth}x${chunkHeight} is implausible`);
    }
    offsets = ints(file, ifd, TAG.tileOffsets);
    counts = ints(file, ifd, TAG.tileByteCounts);
  } else {
    chunkWidth = width;
    const rps = int(file, ifd, TAG.rowsPerStrip, height);
    // 2^32-1 ("one strip") is the usual way of saying "all rows"; anything past the height means the same.
    chunkHeight = rps <= 0 || rps > height ? height : rps;
    offsets = ints(file, ifd, TAG.stripOffsets);
    counts = ints(file, ifd, TAG.stripByteCounts);
  }
  const kind = tiled ? "tile" : "strip";
  const across = Math.ceil(width / chunkWidth);
  const down = Math.ceil(height / chunkHeight);
  const chunks = across * down * (planar === 2 ? spp : 1);
  if (offsets === undefined) corrupt(`TIFF has no ${kind} offsets`);
  if (offsets.length < chunks) corrupt(`TIFF lists ${offsets.length} ${kind} offsets, expected ${chunks}`);
  if (counts === undefined) {
    // libtiff likewise estimates missing byte counts, which is only possible when the data is uncompressed.
    if (compression !== COMPRESSION_NONE) corrupt(`TIFF has no ${kind} byte counts`);
    const rowBytes = Math.ceil((chunkWidth * (planar === 2 ? 1 : spp) * bps) / 8);
    counts = Array.from({ length: chunks }, (_, i) => {
      const y0 = Math.floor((i % (across * down)) / across) * chunkHeight;
      return rowBytes * (tiled ? chunkHeight : Math.min(chunkHeight, height - y0));
    });
  }
  if (counts.length < chunks) corrupt(`TIFF lists ${counts.length} ${kind} byte counts, expected ${chunks}`);

  return {
    width,
    height,
    bps,
    spp,
    compression,
    photometric,
    jpegColorTransform,
    fax,
    planar,
    predictor,
    reverseBits,
    extraSamples,
    colorMap,
    jpegTables,
    tiled,
    chunkWidth,
    chunkHeight,
    across,
    down,
    offsets,
    counts,
  };
}

/**
 * Decodes every strip or tile into one interleaved buffer of width*height*spp samples reduced to 8 bits
 * (16-bit: high byte; 1/2/4-bit: the raw value, scaled or looked up later by `toRaster`).
 */
function readSamples(file: TiffFile, page: Page): Uint8Array {
  const { width, height, spp, bps, chunkWidth, chunkHeight, across, down } = page;
  const samples = allocate(width * height * spp, `image ${width}x${height}`);
  const chunkSamples = page.planar === 2 ? 1 : spp;
  const rowBytes = Math.ceil((chunkWidth * chunkSamples * bps) / 8);
  // 8-bit interleaved strips are laid out exactly like the output, so they are decoded in place without a copy.
  const direct = !page.tiled && page.planar === 1 && bps === 8;
  const scratch = direct ? undefined : allocate(rowBytes * chunkHeight, `tile ${chunkWidth}x${chunkHeight}`);
  const planes = page.planar === 2 ? spp : 1;
  for (let plane = 0; plane < planes; plane++) {
    for (let cy = 0; cy < down; cy++) {
      for (let cx = 0; cx < across; cx++) {
        const index = (plane * down + cy) * across + cx;
        const x0 = cx * chunkWidth, y0 = cy * chunkHeight;
        // Tiles are always stored whole; only the last strip is allowed to be short.
        const rows = page.tiled ? chunkHeight : Math.min(chunkHeight, height - y0);
        const size = rows * rowBytes;
        const target = scratch === undefined
          ? samples.subarray(y0 * rowBytes, y0 * rowBytes + size)
          : scratch.subarray(0, size);
        const chunk: Chunk = {
          label: `${page.tiled ? "tile" : "strip"} ${index}`,
          index,
          rows,
          rowBytes,
          neededWidth: Math.min(chunkWidth, width - x0),
          neededRows: Math.min(rows, height - y0),
        };
        decodeChunk(file, page, chunk, target);
        if (page.predictor) {
          undoPredictor(target, rows, rowBytes, chunkWidth * chunkSamples, chunkSamples, bps, file.le);
        }
        if (scratch !== undefined) storeChunk(page, target, rowBytes, x0, y0, rows, plane, file.le, samples);
      }
    }
  }
  return samples;
}

interface Chunk {
  label: string;
  index: number;
  rows: number;
  rowBytes: number;
  /** Columns and rows of this chunk that fall inside the image (tiles overhang the right and bottom edges). */
  neededWidth: number;
  neededRows: number;
}

function decodeChunk(file: TiffFile, page: Page, chunk: Chunk, target: Uint8Array): void {
  const len = file.bytes.length;
  const offset = page.offsets[chunk.index];
  const count = page.counts[chunk.index];
  const expected = target.length;
  if (offset >= len) corrupt(`TIFF ${chunk.label} starts at offset ${offset}, beyond the end of the ${len}-byte file`);
  if (count <= 0) corrupt(`TIFF ${chunk.label} is empty`);
  if (offset + count > len) corrupt(`TIFF ${chunk.label} is truncated: ${len - offset} of ${count} bytes present`);
  let raw = file.bytes.subarray(offset, offset + count);
  if (page.reverseBits) raw = reverseBits(raw);

  let produced: number;
  switch (page.compression) {
    case COMPRESSION_NONE:
      produced = Math.min(raw.length, expected);
      target.set(raw.subarray(0, produced));
      break;
    case COMPRESSION_LZW:
      // Pre-TIFF-6 LZW (LSB-first codes) starts with a zero byte followed by an odd one; libtiff detects it the same way.
      if (raw.length >= 2 && raw[0] === 0 && (raw[1] & 1) === 1) unsupported("TIFF old-style (pre-6.0) LZW");
      produced = decodeLzw(raw, target);
      break;
    case COMPRESSION_DEFLATE:
    case COMPRESSION_DEFLATE_OLD:
      try {
        // A fixed output buffer caps what a decompression bomb can allocate.
        produced = unzlibSync(raw, { out: target }).length;
      } catch (err) {
        corrupt(`TIFF ${chunk.label}: invalid Deflate data (${err instanceof Error ? err.message : String(err)})`);
      }
      break;
    case COMPRESSION_PACKBITS:
      produced = unpackBits(raw, target);
      break;
    case COMPRESSION_CCITT_RLE:
    case COMPRESSION_CCITT_G3:
    case COMPRESSION_CCITT_G4:
      decodeFax(raw, page.fax!, page.chunkWidth, chunk.rows, target, chunk.rowBytes);
      produced = expected;
      break;
    case COMPRESSION_ZSTD:
      produced = zstdDecode(raw, target, page.chunkHeight * chunk.rowBytes, chunk.label);
      break;
    case COMPRESSION_LZMA:
      produced = decodeXz(raw, target);
      break;
    case COMPRESSION_JPEG:
      decodeJpegChunk(page, chunk, raw, target);
      return;
    default:
      unsupported(`TIFF compression ${page.compression}`);
  }
  if (produced < expected) {
    corrupt(`TIFF ${chunk.label} is truncated: its data decodes to ${produced} of ${expected} bytes`);
  }
}

/**
 * One Zstandard frame into `target`; returns `target.length` when the frame fills it, otherwise 0. `fullSize` is a whole
 * strip's or tile's size: a last strip's frame may hold that many bytes, of which libtiff keeps what the image needs.
 */
function zstdDecode(raw: Uint8Array, target: Uint8Array, fullSize: number, label: string): number {
  // fzstd writes into a given buffer without saying how much it wrote (it stops quietly where the frame ends), and
  // fails on a frame larger than the buffer; without a buffer it allocates the frame's whole window (4 MiB for each
  // of libtiff's strips). So the last byte wanted says whether the frame reached it: it is preset, and when the frame
  // happens to write that same value, preset to another and decoded again.
  const out = target.length < fullSize ? new Uint8Array(fullSize) : target;
  const last = target.length - 1;
  const reaches = (sentinel: number) => {
    out[last] = sentinel;
    unzstd(raw, out);
    return out[last] !== sentinel;
  };
  try {
    if (!reaches(0x5a) && !reaches(0xa5)) return 0;
  } catch (err) {
    corrupt(`TIFF ${label}: invalid Zstandard data (${err instanceof Error ? err.message : String(err)})`);
  }
  if (out !== target) target.set(out.subarray(0, target.length));
  return target.length;
}

function decodeJpegChunk(page: Page, chunk: Chunk, raw: Uint8Array, target: Uint8Array): void {
  const data = page.jpegTables ? spliceJpegTables(page.jpegTables, raw) : raw;
  const pixels = page.chunkWidth * page.chunkHeight;
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(data, {
      useTArray: true,
      formatAsRGBA: false,
      colorTransform: page.jpegColorTransform,
      // The JPEG must not be larger than its strip or tile; saying so stops a forged frame size from allocating.
      maxResolutionInMP: (pixels + 1) / 1e6,
      maxMemoryUsageInMB: Math.ceil((pixels * 24) / (1 << 20)) + 16,
    });
  } catch (err) {
    corrupt(`TIFF ${chunk.label}: invalid JPEG data (${err instanceof Error ? err.message : String(err)})`);
  }
  if (img.width < chunk.neededWidth || img.height < chunk.neededRows) {
    corrupt(
      `TIFF ${chunk.label}: JPEG is ${img.width}x${img.height}, expected ${chunk.neededWidth}x${chunk.neededRows}`,
    );
  }
  // jpeg-js always returns RGB triples (gray repeated), so a gray page keeps every third byte.
  const cs = page.spp;
  const cols = Math.min(img.width, page.chunkWidth);
  const rows = Math.min(img.height, chunk.rows);
  const src = img.data;
  if (cs === 3 && img.width === page.chunkWidth) {
    target.set(src.subarray(0, rows * cols * 3));
    return;
  }
  for (let y = 0; y < rows; y++) {
    let s = y * img.width * 3;
    let d = y * chunk.rowBytes;
    if (cs === 3) {
      target.set(src.subarray(s, s + cols * 3), d);
    } else {
      for (let x = 0; x < cols; x++, s += 3) target[d++] = src[s];
    }
  }
}

/** Joins "abbreviated" JPEG data with the shared JPEGTables: tables without their EOI, then the data without its SOI. */
function spliceJpegTables(tables: Uint8Array, data: Uint8Array): Uint8Array {
  let tablesEnd = tables.length;
  if (tablesEnd >= 2 && tables[tablesEnd - 2] === 0xff && tables[tablesEnd - 1] === 0xd9) tablesEnd -= 2;
  const dataStart = data.length >= 2 && data[0] === 0xff && data[1] === 0xd8 ? 2 : 0;
  const out = new Uint8Array(tablesEnd + data.length - dataStart);
  out.set(tables.subarray(0, tablesEnd));
  out.set(data.subarray(dataStart), tablesEnd);
  return out;
}

const BIT_REVERSE = (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    let r = 0;
    for (let b = 0; b < 8; b++) r |= ((i >> b) & 1) << (7 - b);
    t[i] = r;
  }
  return t;
})();

function reverseBits(raw: Uint8Array): Uint8Array {
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = BIT_REVERSE[raw[i]];
  return out;
}

/** TIFF LZW (in WASM: imaging/unpack.ts); returns the number of bytes written, at most `out.length`. */
function decodeLzw(src: Uint8Array, out: Uint8Array): number {
  const produced = lzwDecode(src, out);
  if (typeof produced !== "number") {
    corrupt(`TIFF LZW data has invalid code ${produced.code} (next free code ${produced.next})`);
  }
  return produced;
}

/** PackBits (Macintosh RLE); returns the number of bytes written, at most `out.length`. */
function unpackBits(src: Uint8Array, out: Uint8Array): number {
  let ip = 0, op = 0;
  const srcLen = src.length, outLen = out.length;
  while (ip < srcLen && op < outLen) {
    const n = src[ip++];
    if (n < 128) {
      const count = Math.min(n + 1, srcLen - ip, outLen - op);
      out.set(src.subarray(ip, ip + count), op);
      ip += n + 1;
      op += count;
    } else if (n > 128) {
      if (ip >= srcLen) break;
      const count = Math.min(257 - n, outLen - op);
      out.fill(src[ip++], op, op + count);
      op += count;
    }
    // 128 is a no-op by definition.
  }
  return op;
}

function undoPredictor(
  buf: Uint8Array,
  rows: number,
  rowBytes: number,
  samplesPerRow: number,
  stride: number,
  bps: number,
  le: boolean,
): void {
  if (bps === 8) {
    for (let r = 0; r < rows; r++) {
      const base = r * rowBytes;
      for (let i = base + stride, end = base + samplesPerRow; i < end; i++) buf[i] += buf[i - stride];
    }
    return;
  }
  // 16-bit differences are taken on whole values, so the carry must cross bytes in the file's byte order.
  const lo = le ? 0 : 1, hi = le ? 1 : 0;
  for (let r = 0; r < rows; r++) {
    const base = r * rowBytes;
    for (let i = stride; i < samplesPerRow; i++) {
      const o = base + 2 * i, p = base + 2 * (i - stride);
      const v = ((buf[o + hi] << 8) | buf[o + lo]) + ((buf[p + hi] << 8) | buf[p + lo]);
      buf[o + lo] = v;
      buf[o + hi] = v >> 8;
    }
  }
}

function storeChunk(
  page: Page,
  buf: Uint8Array,
  rowBytes: number,
  x0: number,
  y0: number,
  rows: number,
  plane: number,
  le: boolean,
  samples: Uint8Array,
): void {
  const { width, height, spp, bps } = page;
  const cs = page.planar === 2 ? 1 : spp;
  const nr = Math.min(rows, height - y0);
  const nc = Math.min(page.chunkWidth, width - x0);
  const stride = width * spp;
  for (let r = 0; r < nr; r++) {
    const src = r * rowBytes;
    const dst = (y0 + r) * stride + x0 * spp + plane;
    if (bps === 8 && cs === spp) {
      samples.set(buf.subarray(src, src + nc * spp), dst);
    } else if (bps === 8) {
      for (let c = 0, d = dst; c < nc; c++, d += spp) samples[d] = buf[src + c];
    } else if (bps === 16) {
      // Keeping the high byte is what libpng's strip_16 and OpenCV do for 16 → 8 bits.
      const hi = src + (le ? 1 : 0);
      const n = nc * cs;
      if (cs === spp) {
        for (let k = 0; k < n; k++) samples[dst + k] = buf[hi + 2 * k];
      } else {
        for (let c = 0, d = dst; c < nc; c++, d += spp) samples[d] = buf[hi + 2 * c];
      }
    } else {
      const mask = (1 << bps) - 1;
      for (let c = 0; c < nc; c++) {
        for (let s = 0; s < cs; s++) {
          const bit = (c * cs + s) * bps;
          samples[dst + c * spp + s] = (buf[src + (bit >> 3)] >> (8 - bps - (bit & 7))) & mask;
        }
      }
    }
  }
}

function toRaster(page: Page, samples: Uint8Array, notes: string[]): Raster {
  const { width, height, spp, bps, photometric } = page;
  const area = width * height;
  const colorSamples = photometric === RGB ? 3 : photometric === CMYK ? 4 : 1;
  // ExtraSamples is what says the sample after the colour ones is alpha; without it extra samples are ignored.
  const hasAlpha = page.extraSamples.length > 0 && spp > colorSamples;
  if (hasAlpha && page.extraSamples[0] === 1) notes.push("TIFF alpha is premultiplied (associated); kept as stored");
  const alphaLut = bps < 8 ? scaleLut(bps, false) : undefined;

  if (photometric === RGB) {
    if (spp === 3 || (spp === 4 && hasAlpha)) return { width, height, channels: spp as 3 | 4, data: samples };
    return pick(samples, width, height, spp, [0, 1, 2], hasAlpha ? 3 : -1);
  }

  if (photometric === WHITE_IS_ZERO || photometric === BLACK_IS_ZERO) {
    const invert = photometric === WHITE_IS_ZERO;
    const lut = bps < 8 || invert ? scaleLut(Math.min(bps, 8), invert) : undefined;
    if (spp === 1 && !hasAlpha) {
      if (lut) { for (let i = 0; i < area; i++) samples[i] = lut[samples[i]]; }
      return { width, height, channels: 1, data: samples };
    }
    if (!hasAlpha) {
      const out = allocate(area, `image ${width}x${height}`);
      for (let i = 0, s = 0; i < area; i++, s += spp) out[i] = lut ? lut[samples[s]] : samples[s];
      return { width, height, channels: 1, data: out };
    }
    // Gray + alpha becomes RGBA so that every raster has 1, 3 or 4 channels.
    const out = allocate(area * 4, `image ${width}x${height}`);
    for (let i = 0, s = 0, o = 0; i < area; i++, s += spp, o += 4) {
      const g = lut ? lut[samples[s]] : samples[s];
      out[o] = out[o + 1] = out[o + 2] = g;
      out[o + 3] = alphaLut ? alphaLut[samples[s + 1]] : samples[s + 1];
    }
    return { width, height, channels: 4, data: out };
  }

  const channels = hasAlpha ? 4 : 3;
  const out = allocate(area * channels, `image ${width}x${height}`);
  if (photometric === PALETTE) {
    // ColorMap holds 16-bit values: all reds, then all greens, then all blues.
    const map = page.colorMap!;
    const n = 1 << bps;
    const lut = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      lut[i * 3] = map[i] >> 8;
      lut[i * 3 + 1] = map[n + i] >> 8;
      lut[i * 3 + 2] = map[2 * n + i] >> 8;
    }
    for (let i = 0, s = 0, o = 0; i < area; i++, s += spp, o += channels) {
      const e = samples[s] * 3;
      out[o] = lut[e];
      out[o + 1] = lut[e + 1];
      out[o + 2] = lut[e + 2];
      if (hasAlpha) out[o + 3] = alphaLut ? alphaLut[samples[s + 1]] : samples[s + 1];
    }
    return { width, height, channels, data: out };
  }

  // CMYK without a colour profile as libtiff's RGBA interface (TIFFReadRGBAStrip, which OpenCV reads 8-bit TIFF
  // through) converts it: complement and multiply, the division truncated (putRGBcontig8bitCMYKtile).
  notes.push("CMYK converted to RGB");
  for (let i = 0, s = 0, o = 0; i < area; i++, s += spp, o += channels) {
    const k = 255 - samples[s + 3];
    out[o] = ((255 - samples[s]) * k / 255) | 0;
    out[o + 1] = ((255 - samples[s + 1]) * k / 255) | 0;
    out[o + 2] = ((255 - samples[s + 2]) * k / 255) | 0;
    if (hasAlpha) out[o + 3] = samples[s + 4];
  }
  return { width, height, channels, data: out };
}

/** Maps raw `bps`-bit values to 0–255, optionally inverted (WhiteIsZero). */
function scaleLut(bps: number, invert: boolean): Uint8Array {
  const max = (1 << bps) - 1;
  const lut = new Uint8Array(256);
  for (let v = 0; v <= 255; v++) {
    const scaled = v > max ? 255 : Math.round((v * 255) / max);
    lut[v] = invert ? 255 - scaled : scaled;
  }
  return lut;
}

function pick(samples: Uint8Array, width: number, height: number, spp: number, color: number[], alpha: number): Raster {
  const channels = alpha >= 0 ? 4 : 3;
  const area = width * height;
  const out = allocate(area * channels, `image ${width}x${height}`);
  for (let i = 0, s = 0, o = 0; i < area; i++, s += spp, o += channels) {
    out[o] = samples[s + color[0]];
    out[o + 1] = samples[s + color[1]];
    out[o + 2] = samples[s + color[2]];
    if (alpha >= 0) out[o + 3] = samples[s + alpha];
  }
  return { width, height, channels, data: out };
}
