import { crc32 } from "node:zlib";
import {
  BI_ALPHABITFIELDS,
  BI_BITFIELDS,
  BI_RGB,
  BI_RLE4,
  BI_RLE8,
  checkCompressionDepth,
  checkPixelData,
  CORE_HEADER_SIZE,
  INFO_HEADER_SIZE,
  readBmpSize,
  SUPPORTED_BIT_DEPTHS,
  walkRle,
} from "./bmp.ts";
import { type ByteSource, memorySource, readInt, readUint } from "./byte_source.ts";
import { concatBytes } from "./bytes.ts";
import { assertPixelCount } from "./decode.ts";
import { type ImageFormat, sniffFormat } from "./format.ts";
import { ImageError } from "./image_error.ts";
import { readJpegSize } from "./jpeg.ts";
import { readPngSize } from "./png.ts";
import {
  BLACK_IS_ZERO,
  CMYK,
  COMPRESSION_JPEG,
  compressionProblem,
  MAX_TILE_BYTES,
  PALETTE,
  RGB,
  tagName,
} from "./tiff.ts";

// The upload path needs to refuse truncated or broken files before storing them, but decoding belongs to the
// workers. Every check here only walks the container (chunks, markers, directories, offsets) and never inflates,
// entropy-decodes or converts pixel data, so it costs a few milliseconds even for large files.
//
// Each rule mirrors a refusal of the matching decoder, so that a file passing here is not refused later as corrupt
// for a reason visible in its structure. Unsupported features are reported where the header names them (a JPEG
// coding process, a TIFF compression), with the decoder's words; the rest are left for the worker to name. The one
// deliberate difference is in checkJpeg.
//
// The walks read through a ByteSource, so that an upload spilled to disk is checked a few pages at a time rather
// than read back whole; the header readers of the decoders get only the header bytes they look at.

function corrupt(message: string): never {
  throw new ImageError("corrupt_image", message);
}

/** Called with the header's width and height before the rest of the file is walked. */
type SizeCheck = (width: number, height: number) => void;

// More than the sniffer and the header readers given a prefix look at: PNG's IHDR ends at byte 33, BMP's size at 26.
const HEAD_BYTES = 256;

/**
 * Checks a file's container structure without decoding pixels and returns its format; throws
 * ImageError("corrupt_image", reason) when it is truncated or malformed. With `maxPixels`, a header that declares
 * more pixels is refused (image_too_large) as soon as it is read: a bomb's tiny body would fail the walk too.
 */
export function checkStructure(input: Uint8Array | ByteSource, maxPixels = Infinity): ImageFormat {
  const src = input instanceof Uint8Array ? memorySource(input) : input;
  const format = sniffFormat(src.slice(0, HEAD_BYTES));
  const size: SizeCheck = (width, height) => assertPixelCount(format, width, height, maxPixels);
  try {
    if (format === "png") checkPng(src, size);
    else if (format === "jpeg") checkJpeg(src, size);
    else if (format === "tiff") checkTiff(src, size);
    else checkBmp(src, size);
  } catch (err) {
    if (err instanceof ImageError) throw err;
    // Every read is bounds-checked; should one slip through, the bytes are still what caused it. Anything else (a
    // failed read of the file) is not the image's fault.
    if (!(err instanceof RangeError || err instanceof TypeError)) throw err;
    corrupt(`${format.toUpperCase()} structure is malformed: ${err.message}`);
  }
  return format;
}

// ---------------------------------------------------------------------------------------------------------------
// PNG: the same chunk walk as imaging/png.ts, without inflating IDAT.

const PNG_IHDR = 0x49484452;
const PNG_PLTE = 0x504c5445;
const PNG_IDAT = 0x49444154;
const PNG_IEND = 0x49454e44;
const PNG_PALETTE = 3;
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
// png.ts refuses image data this much smaller than the header promises: deflate cannot expand more than 1032:1.
const MAX_DEFLATE_RATIO = 1032;

function checkPng(src: ByteSource, size: SizeCheck): void {
  const { width, height } = readPngSize(src.slice(0, HEAD_BYTES));
  size(width, height);
  const depth = src.at(24);
  const colorType = src.at(25);
  const interlaced = src.at(28) === 1;
  let idatLength = 0;
  let idatChunks = 0;
  let palette = false;
  // Each step advances at least 12 bytes, so the walk is linear and ends on any input.
  for (let pos = 33;;) {
    if (pos + 12 > src.length) {
      corrupt(pos === src.length ? "PNG is truncated (no IEND chunk)" : "PNG is truncated inside a chunk header");
    }
    const length = readUint(src, pos, 4);
    const type = readUint(src, pos + 4, 4);
    const start = pos + 8;
    // Built only for messages: files can hold hundreds of thousands of chunks.
    const name = () => String.fromCharCode(...src.slice(start - 4, start)).replace(/[^A-Za-z]/g, "?");
    if (length > 0x7fffffff) corrupt(`PNG ${name()} chunk has an invalid length`);
    const end = start + length;
    if (end + 4 > src.length) corrupt(`PNG is truncated inside its ${name()} chunk`);
    pos = end + 4;
    // Ancillary chunks are skipped by the decoder even when damaged, so only critical ones are worth the CRC.
    if ((src.at(start - 4) & 0x20) === 0 && crcOf(src, start - 4, end) !== readUint(src, end, 4)) {
      corrupt(`PNG ${name()} chunk has a bad CRC (the file is damaged)`);
    }
    if (type === PNG_IDAT) {
      idatChunks++;
      idatLength += length;
    } else if (type === PNG_PLTE) {
      if (length === 0 || length % 3 !== 0 || length > 768) corrupt(`PNG PLTE chunk has invalid length ${length}`);
      if (idatChunks > 0) corrupt("PNG PLTE chunk comes after the image data");
      palette = true;
    } else if (type === PNG_IHDR) {
      corrupt("PNG has more than one IHDR chunk");
    } else if (type === PNG_IEND) {
      if (idatChunks === 0) corrupt("PNG has no image data (no IDAT chunk)");
      if (colorType === PNG_PALETTE && !palette) corrupt("palette PNG has no PLTE chunk");
      const rawSize = filteredSize(width, height, depth * PNG_CHANNELS[colorType], interlaced);
      if (rawSize > idatLength * MAX_DEFLATE_RATIO + 1024) {
        corrupt(`PNG image data is far too short for a ${width}×${height} image (truncated or forged header)`);
      }
      return;
    }
  }
}

/** CRC-32 of bytes [start, end), a page at a time. */
function crcOf(src: ByteSource, start: number, end: number): number {
  let crc = 0;
  for (const piece of src.pieces(start, end)) crc = crc32(piece, crc);
  return crc;
}

const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

/** Bytes of filtered scanlines (filter byte included) that the image data must inflate to. */
function filteredSize(width: number, height: number, bitsPerPixel: number, interlaced: boolean): number {
  let size = 0;
  for (const [x0, y0, dx, dy] of interlaced ? ADAM7 : [[0, 0, 1, 1]]) {
    const columns = Math.max(0, Math.ceil((width - x0) / dx));
    const rows = Math.max(0, Math.ceil((height - y0) / dy));
    if (columns > 0) size += rows * (1 + Math.ceil((columns * bitsPerPixel) / 8));
  }
  return size;
}

// ---------------------------------------------------------------------------------------------------------------
// JPEG: the marker walk of imaging/jpeg.ts (readLayout), skipping entropy-coded data by scanning for its end marker.

const JPEG_SOI = 0xd8;
const JPEG_START = Uint8Array.of(0xff, JPEG_SOI);
const JPEG_EOI = 0xd9;
const JPEG_SOS = 0xda;
const JPEG_DHT = 0xc4;
const JPEG_DRI = 0xdd;
const JPEG_DQT = 0xdb;

const hex = (n: number) => n.toString(16).toUpperCase().padStart(2, "0");
const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== JPEG_DHT && m !== 0xc8 && m !== 0xcc;

/**
 * Files that end before their EOI follow jpeg.ts: it decodes up to the cut when the scans there are complete, and a
 * multi-scan file cut inside its last scan without that scan. So a missing end is accepted once some scan is known
 * to be complete, i.e. followed by a marker. The exception, stricter than the decoder: a file whose only scan runs
 * to the end of the file is refused, even though jpeg.ts accepts it when the scan happens to hold every MCU (a
 * baseline file that lost just its last one or two bytes, the EOI). Telling that apart from a cut in the middle of
 * the scan means Huffman-decoding the whole scan, which is the worker's job; accepting every such file would let
 * through nearly every truncated baseline upload.
 */
function checkJpeg(src: ByteSource, size: SizeCheck): void {
  const len = src.length;
  let frameIds: number[] | null = null;
  let frameTables: number[] = [];
  const quantTables = new Set<number>();
  let scans = 0;
  let lastScanOpen = false;
  let truncated = false;
  let ended = false;
  let p = 2;
  while (!ended && !truncated) {
    if (p >= len) {
      truncated = true;
      break;
    }
    if (src.at(p) !== 0xff) corrupt(`JPEG marker expected at byte ${p}, found 0x${hex(src.at(p))}`);
    // Any number of 0xFF fill bytes may precede a marker.
    let m = p + 1;
    while (m < len && src.at(m) === 0xff) m++;
    if (m >= len) {
      truncated = true;
      break;
    }
    const marker = src.at(m);
    const start = p;
    p = m + 1;
    if (marker === JPEG_EOI) {
      ended = true;
      break;
    }
    if (marker === JPEG_SOI || marker === 0x00 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      corrupt(`unexpected JPEG marker FF${hex(marker)} at byte ${start}`);
    }
    if (p + 2 > len) {
      truncated = true;
      break;
    }
    const length = readUint(src, p, 2);
    if (length < 2) corrupt(`JPEG segment FF${hex(marker)} at byte ${start} has invalid length ${length}`);
    if (p + length > len) {
      truncated = true;
      break;
    }
    const body = p + 2;
    const next = p + length;
    if (isSof(marker) || (!frameIds && isUnsupportedFrame(marker))) {
      if (frameIds) corrupt("JPEG has more than one frame header (SOF)");
      // Up to here this walk has refused what the decoder's own walk (readJpegSize) refuses, with its words; the
      // frame header itself, and the markers of coding processes it does not support, are left to it, given just
      // that segment: the file before it may be megabytes of metadata.
      const { width, height } = readJpegSize(concatBytes([JPEG_START, src.slice(start, next)]));
      size(width, height);
      // readJpegSize has checked that this first frame header holds its component list.
      frameIds = Array.from({ length: src.at(body + 5) }, (_, i) => src.at(body + 6 + 3 * i));
      frameTables = Array.from({ length: src.at(body + 5) }, (_, i) => src.at(body + 8 + 3 * i));
    } else if (marker === JPEG_DQT) {
      for (let q = body; q < next;) {
        const id = src.at(q) & 15;
        if (id > 3) corrupt(`JPEG quantization table id ${id} is invalid`);
        if (q + 1 + (src.at(q) >> 4 ? 128 : 64) > next) corrupt("JPEG quantization table (DQT) is truncated");
        quantTables.add(id);
        q += 1 + (src.at(q) >> 4 ? 128 : 64);
      }
    } else if (marker === JPEG_DHT) {
      for (let q = body; q < next;) {
        if (q + 17 > next) corrupt("JPEG Huffman table (DHT) is truncated");
        let count = 0;
        for (let i = 1; i <= 16; i++) count += src.at(q + i);
        if (q + 17 + count > next) corrupt("JPEG Huffman table (DHT) is truncated");
        q += 17 + count;
      }
    } else if (marker === JPEG_DRI) {
      if (length !== 4) corrupt("JPEG restart interval (DRI) segment is invalid");
    } else if (marker === JPEG_SOS) {
      if (!frameIds) corrupt("JPEG scan (SOS) comes before the frame header (SOF)");
      const count = src.at(body);
      if (count < 1 || count > 4 || length < 6 + 2 * count) corrupt("JPEG scan header (SOS) is invalid");
      for (let i = 0; i < count; i++) {
        const id = src.at(body + 1 + 2 * i);
        if (!frameIds.includes(id)) corrupt(`JPEG scan uses unknown component ${id}`);
        const tq = frameTables[frameIds.indexOf(id)];
        if (!quantTables.has(tq)) {
          corrupt(`JPEG component ${id} uses quantization table ${tq} before it is defined (DQT)`);
        }
      }
      scans++;
      const end = entropyDataEnd(src, next);
      lastScanOpen = end < 0;
      if (lastScanOpen) {
        truncated = true;
        break;
      }
      p = end;
      continue;
    }
    p = next;
  }
  // The decoder's words for a file without a frame header.
  if (!frameIds) {
    corrupt(truncated ? "JPEG is truncated before its frame header (SOF)" : "JPEG has no frame header (SOF)");
  }
  if (scans === 0) {
    corrupt(truncated ? "JPEG is truncated before its image data (SOS)" : "JPEG has no image data (SOS)");
  }
  if (lastScanOpen && scans === 1) corrupt("JPEG file is truncated (no end marker)");
}

/** Hierarchical (DHP, EXP) and extension (JPG) frame markers, which the decoder refuses as unsupported. */
function isUnsupportedFrame(marker: number): boolean {
  return marker === 0xde || marker === 0xdf || marker === 0xc8;
}

/** Offset of the marker that ends entropy-coded data starting at `from`, or -1 when the file ends first. */
function entropyDataEnd(src: ByteSource, from: number): number {
  const len = src.length;
  // indexOf is native, so only the rare 0xFF bytes (stuffing, restart markers) cost a step in JavaScript.
  for (let q = from;;) {
    // Runs of stuffed bytes would otherwise cost a native call each.
    if (src.at(q) !== 0xff) q = src.indexOf(0xff, q);
    if (q < 0 || q + 1 >= len) return -1;
    const b = src.at(q + 1);
    if (b === 0 || (b >= 0xd0 && b <= 0xd7)) q += 2;
    else if (b === 0xff) q += 1;
    else return q;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// TIFF: the first directory and every strip or tile the decoder reads, with tiff.ts's rules for which tags count.

const TIFF_TYPE_SIZES = [0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4];
const TIFF_INTEGER_TYPES = new Set([1, 3, 4, 6, 8, 9, 13]);
const TIFF_SIGNED_TYPES = new Set([6, 8, 9]);
const TIFF_NONE = 1;

interface TiffEntry {
  type: number;
  count: number;
  at: number;
  size: number;
}

/** A tag's integer values, read from the file one by one as they are asked for. */
interface TiffValues {
  length: number;
  get(i: number): number;
}

function checkTiff(src: ByteSource, size: SizeCheck): void {
  const len = src.length;
  // tiff.ts's header and first-directory checks (openTiff, readIfd), with its messages.
  const ii = len >= 2 && src.at(0) === 0x49 && src.at(1) === 0x49;
  const mm = len >= 2 && src.at(0) === 0x4d && src.at(1) === 0x4d;
  if (!ii && !mm) throw new ImageError("not_an_image", "not a TIFF file (missing II/MM byte-order mark)");
  if (len < 8) corrupt(`TIFF header truncated: file has only ${len} bytes`);
  const le = ii;
  const magic = readUint(src, 2, 2, le);
  if (magic === 43) throw new ImageError("unsupported_image", "BigTIFF (64-bit offsets)");
  if (magic !== 42) throw new ImageError("not_an_image", `not a TIFF file (version ${magic} instead of 42)`);
  const ifd = readUint(src, 4, 4, le);
  if (ifd < 8 || ifd + 2 > len) corrupt(`TIFF directory offset ${ifd} lies outside the ${len}-byte file`);
  const entryCount = readUint(src, ifd, 2, le);
  if (entryCount === 0) corrupt(`TIFF directory at ${ifd} has no entries`);
  const ifdEnd = ifd + 2 + entryCount * 12;
  if (ifdEnd > len) {
    corrupt(`TIFF directory at ${ifd} (${entryCount} entries) runs past the end of the ${len}-byte file`);
  }
  const entries = new Map<number, TiffEntry>();
  for (let p = ifd + 2; p < ifdEnd; p += 12) {
    const type = readUint(src, p + 2, 2, le);
    const unit = TIFF_TYPE_SIZES[type] ?? 0;
    // Unknown field types are skipped, as TIFF 6 (and tiff.ts) require.
    if (unit === 0) continue;
    const count = readUint(src, p + 4, 4, le);
    const size = unit * count;
    entries.set(readUint(src, p, 2, le), { type, count, at: size <= 4 ? p + 8 : readUint(src, p + 8, 4, le), size });
  }
  const present = (tag: number): TiffEntry | undefined => {
    const e = entries.get(tag);
    return e === undefined || e.count === 0 ? undefined : e;
  };
  const inFile = (tag: number, e: TiffEntry) => {
    if (e.at + e.size > len) corrupt(`TIFF ${tagName(tag)} values lie beyond the end of the file`);
  };
  // Like tiff.ts, only tags the decoder reads are checked, so a damaged irrelevant tag does not spoil the file.
  const ints = (tag: number): TiffValues | undefined => {
    const e = present(tag);
    if (e === undefined) return undefined;
    if (!TIFF_INTEGER_TYPES.has(e.type)) corrupt(`TIFF ${tagName(tag)} has non-integer field type ${e.type}`);
    inFile(tag, e);
    const { type, count, at } = e;
    const unit = TIFF_TYPE_SIZES[type] as 1 | 2 | 4;
    const read = TIFF_SIGNED_TYPES.has(type) ? readInt : readUint;
    return { length: count, get: (i) => read(src, at + i * unit, unit, le) };
  };
  const int = (tag: number, fallback: number) => ints(tag)?.get(0) ?? fallback;
  // tiff.ts's readDimensions.
  const dimension = (tag: number) => {
    const v = ints(tag)?.get(0);
    if (v === undefined) corrupt(`TIFF has no ${tagName(tag)}`);
    return v;
  };
  const width = dimension(256);
  const height = dimension(257);
  if (width <= 0 || height <= 0) corrupt(`TIFF has invalid size ${width}x${height}`);
  size(width, height);

  const compression = int(259, TIFF_NONE);
  const problem = compressionProblem(compression);
  if (problem) throw new ImageError("unsupported_image", problem);
  const spp = int(277, 1);
  if (spp < 1) corrupt(`TIFF has ${spp} samples per pixel`);
  const bps = ints(258)?.get(0) ?? 1;
  ints(339);
  const planarValue = int(284, 1);
  const planar = spp === 1 ? 1 : planarValue;
  const extraSamples = ints(338) ?? { length: 0 };
  const photometric = int(262, spp - extraSamples.length >= 3 ? RGB : BLACK_IS_ZERO);
  if (compression === COMPRESSION_JPEG) {
    const e = present(347);
    if (e !== undefined && TIFF_TYPE_SIZES[e.type] !== 1) {
      corrupt(`TIFF JPEGTables has unexpected field type ${e.type}`);
    }
    if (e !== undefined) inFile(347, e);
  }
  if (photometric === PALETTE && bps <= 8) {
    const colorMap = ints(320);
    if (colorMap === undefined) corrupt("TIFF palette image has no ColorMap");
    if (colorMap.length < 3 << bps) corrupt(`TIFF ColorMap has ${colorMap.length} entries, expected ${3 << bps}`);
  }
  if (photometric === CMYK) ints(332);
  ints(317);
  ints(266);
  if (compression === 3) ints(292);
  // Planar layouts other than 1 and 2 are unsupported; with no known layout there are no strips to check.
  if (planar !== 1 && planar !== 2) return;

  const tiled = entries.has(322) || entries.has(324);
  const kind = tiled ? "tile" : "strip";
  let chunkWidth: number, chunkHeight: number, offsets: TiffValues | undefined, counts: TiffValues | undefined;
  if (tiled) {
    const tileWidth = ints(322)?.get(0);
    if (tileWidth === undefined) corrupt("TIFF has no TileWidth");
    const tileLength = ints(323)?.get(0);
    if (tileLength === undefined) corrupt("TIFF has no TileLength");
    chunkWidth = tileWidth;
    chunkHeight = tileLength;
    if (chunkWidth <= 0 || chunkHeight <= 0) corrupt(`TIFF has invalid tile size ${chunkWidth}x${chunkHeight}`);
    if (Math.ceil((chunkWidth * (planar === 2 ? 1 : spp) * bps) / 8) * chunkHeight > MAX_TILE_BYTES) {
      corrupt(`TIFF tile size ${chunkWidth}x${chunkHeight} is implausible`);
    }
    offsets = ints(324);
    counts = ints(325);
  } else {
    chunkWidth = width;
    const rps = int(278, height);
    chunkHeight = rps <= 0 || rps > height ? height : rps;
    offsets = ints(273);
    counts = ints(279);
  }
  const across = Math.ceil(width / chunkWidth);
  const down = Math.ceil(height / chunkHeight);
  const chunks = across * down * (planar === 2 ? spp : 1);
  if (offsets === undefined) corrupt(`TIFF has no ${kind} offsets`);
  if (offsets.length < chunks) corrupt(`TIFF lists ${offsets.length} ${kind} offsets, expected ${chunks}`);
  // Uncompressed data must fill its strip or tile; tiff.ts infers missing byte counts from exactly that size.
  const rowBytes = Math.ceil((chunkWidth * (planar === 2 ? 1 : spp) * bps) / 8);
  const expected = (i: number) => {
    const y0 = Math.floor((i % (across * down)) / across) * chunkHeight;
    return rowBytes * (tiled ? chunkHeight : Math.min(chunkHeight, height - y0));
  };
  if (counts === undefined && compression !== TIFF_NONE) corrupt(`TIFF has no ${kind} byte counts`);
  if (counts !== undefined && counts.length < chunks) {
    corrupt(`TIFF lists ${counts.length} ${kind} byte counts, expected ${chunks}`);
  }
  // `chunks` is at most offsets.length, which the bounds check above limits to the file size.
  for (let i = 0; i < chunks; i++) {
    const offset = offsets.get(i);
    const count = counts === undefined ? expected(i) : counts.get(i);
    if (offset < 0 || offset >= len) {
      corrupt(`TIFF ${kind} ${i} starts at offset ${offset}, beyond the end of the ${len}-byte file`);
    }
    if (count <= 0) corrupt(`TIFF ${kind} ${i} is empty`);
    if (offset + count > len) corrupt(`TIFF ${kind} ${i} is truncated: ${len - offset} of ${count} bytes present`);
    if (compression === TIFF_NONE && count < expected(i)) {
      corrupt(`TIFF ${kind} ${i} is truncated: it holds ${count} of ${expected(i)} bytes`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// BMP: headers, palette and masks, then the pixel array (or the RLE command stream) as imaging/bmp.ts reads them.

const BMP_COMPRESSIONS = new Set([BI_RGB, BI_RLE8, BI_RLE4, BI_BITFIELDS, BI_ALPHABITFIELDS]);

function checkBmp(src: ByteSource, size: SizeCheck): void {
  // Validates the file and info headers (size, supported variant, dimensions).
  const { width, height } = readBmpSize(src.slice(0, HEAD_BYTES), src.length);
  size(width, height);
  const headerSize = readUint(src, 14, 4, true);
  const core = headerSize === CORE_HEADER_SIZE;
  const bpp = readUint(src, core ? 24 : 28, 2, true);
  const compression = core ? BI_RGB : readUint(src, 30, 4, true);
  // The decoder calls these unsupported; without a known layout there is nothing further to measure.
  if (!BMP_COMPRESSIONS.has(compression) || !SUPPORTED_BIT_DEPTHS.has(bpp)) return;
  checkCompressionDepth(compression, bpp);
  const rle = compression === BI_RLE8 || compression === BI_RLE4;
  const bitfields = compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS;
  if (rle && !core && readInt(src, 22, 4, true) < 0) corrupt("BMP RLE bitmaps cannot be top-down (negative height)");

  let cursor = 14 + headerSize;
  if (bitfields && headerSize === INFO_HEADER_SIZE) {
    const count = compression === BI_ALPHABITFIELDS ? 4 : 3;
    if (cursor + count * 4 > src.length) corrupt("BMP color masks past end of file");
    cursor += count * 4;
  }
  if (bpp <= 8) {
    const maxColors = 1 << bpp;
    const used = core ? 0 : readUint(src, 46, 4, true);
    const count = used === 0 || used > maxColors ? maxColors : used;
    if (cursor + count * (core ? 3 : 4) > src.length) corrupt(`BMP palette of ${count} colors past end of file`);
  }
  const dataOffset = readUint(src, 10, 4, true);
  if (dataOffset > src.length) {
    corrupt(`BMP pixel data offset ${dataOffset} past end of file (${src.length} bytes)`);
  }
  if (dataOffset < cursor) corrupt(`BMP pixel data offset ${dataOffset} overlaps the headers`);
  if (rle) {
    walkRle(src, dataOffset, width, height, bpp);
    return;
  }
  checkPixelData(src, dataOffset, width, height, bpp);
}
