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
import { sniffFormat } from "./format.ts";
import { ImageError } from "./image_error.ts";
import { readJpegSize } from "./jpeg.ts";
import { readPngSize } from "./png.ts";
import { BLACK_IS_ZERO, CMYK, COMPRESSION_JPEG, MAX_TILE_BYTES, PALETTE, readTiffSize, RGB, tagName } from "./tiff.ts";

// The upload path needs to refuse truncated or broken files before storing them, but decoding belongs to the
// workers. Every check here only walks the container (chunks, markers, directories, offsets) and never inflates,
// entropy-decodes or converts pixel data, so it costs a few milliseconds even for large files.
//
// Each rule mirrors a refusal of the matching decoder, so that a file passing here is not refused later as corrupt
// for a reason visible in its structure. Unsupported features are reported only where the exported header readers
// already do so; the rest are left for the worker to name. The one deliberate difference is in checkJpeg.

function corrupt(message: string): never {
  throw new ImageError("corrupt_image", message);
}

/** Checks a file's container structure without decoding pixels; throws ImageError("corrupt_image", reason) when it is truncated or malformed. */
export function checkStructure(bytes: Uint8Array): void {
  const format = sniffFormat(bytes);
  try {
    if (format === "png") checkPng(bytes);
    else if (format === "jpeg") checkJpeg(bytes);
    else if (format === "tiff") checkTiff(bytes);
    else checkBmp(bytes);
  } catch (err) {
    if (err instanceof ImageError) throw err;
    // Every read is bounds-checked; should one slip through, the bytes are still what caused it.
    const reason = err instanceof Error ? err.message : String(err);
    corrupt(`${format.toUpperCase()} structure is malformed: ${reason}`);
  }
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

function checkPng(bytes: Uint8Array): void {
  const { width, height } = readPngSize(bytes);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const depth = bytes[24];
  const colorType = bytes[25];
  const interlaced = bytes[28] === 1;
  let idatLength = 0;
  let idatChunks = 0;
  let palette = false;
  // Each step advances at least 12 bytes, so the walk is linear and ends on any input.
  for (let pos = 33;;) {
    if (pos + 12 > bytes.length) {
      corrupt(pos === bytes.length ? "PNG is truncated (no IEND chunk)" : "PNG is truncated inside a chunk header");
    }
    const length = dv.getUint32(pos);
    const type = dv.getUint32(pos + 4);
    const start = pos + 8;
    // Built only for messages: files can hold hundreds of thousands of chunks.
    const name = () => String.fromCharCode(...bytes.subarray(start - 4, start)).replace(/[^A-Za-z]/g, "?");
    if (length > 0x7fffffff) corrupt(`PNG ${name()} chunk has an invalid length`);
    const end = start + length;
    if (end + 4 > bytes.length) corrupt(`PNG is truncated inside its ${name()} chunk`);
    pos = end + 4;
    // Ancillary chunks are skipped by the decoder even when damaged, so only critical ones are worth the CRC.
    if ((bytes[start - 4] & 0x20) === 0 && crc32(bytes.subarray(start - 4, end)) !== dv.getUint32(end)) {
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
const JPEG_EOI = 0xd9;
const JPEG_SOS = 0xda;
const JPEG_DHT = 0xc4;
const JPEG_DRI = 0xdd;

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
function checkJpeg(bytes: Uint8Array): void {
  // Validates SOI up to the frame header and refuses unsupported coding processes with the decoder's own messages.
  readJpegSize(bytes);
  const len = bytes.length;
  let frameIds: number[] | null = null;
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
    if (bytes[p] !== 0xff) corrupt(`JPEG marker expected at byte ${p}, found 0x${hex(bytes[p])}`);
    // Any number of 0xFF fill bytes may precede a marker.
    let m = p + 1;
    while (m < len && bytes[m] === 0xff) m++;
    if (m >= len) {
      truncated = true;
      break;
    }
    const marker = bytes[m];
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
    const length = (bytes[p] << 8) | bytes[p + 1];
    if (length < 2) corrupt(`JPEG segment FF${hex(marker)} at byte ${start} has invalid length ${length}`);
    if (p + length > len) {
      truncated = true;
      break;
    }
    const body = p + 2;
    const next = p + length;
    if (isSof(marker)) {
      if (frameIds) corrupt("JPEG has more than one frame header (SOF)");
      // readJpegSize has checked that this first frame header holds its component list.
      frameIds = Array.from({ length: bytes[body + 5] }, (_, i) => bytes[body + 6 + 3 * i]);
    } else if (marker === JPEG_DHT) {
      for (let q = body; q < next;) {
        if (q + 17 > next) corrupt("JPEG Huffman table (DHT) is truncated");
        let count = 0;
        for (let i = 1; i <= 16; i++) count += bytes[q + i];
        if (q + 17 + count > next) corrupt("JPEG Huffman table (DHT) is truncated");
        q += 17 + count;
      }
    } else if (marker === JPEG_DRI) {
      if (length !== 4) corrupt("JPEG restart interval (DRI) segment is invalid");
    } else if (marker === JPEG_SOS) {
      if (!frameIds) corrupt("JPEG scan (SOS) comes before the frame header (SOF)");
      const count = bytes[body];
      if (count < 1 || count > 4 || length < 6 + 2 * count) corrupt("JPEG scan header (SOS) is invalid");
      for (let i = 0; i < count; i++) {
        const id = bytes[body + 1 + 2 * i];
        if (!frameIds.includes(id)) corrupt(`JPEG scan uses unknown component ${id}`);
      }
      scans++;
      const end = entropyDataEnd(bytes, next);
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
  if (scans === 0) {
    corrupt(truncated ? "JPEG is truncated before its image data (SOS)" : "JPEG has no image data (SOS)");
  }
  if (lastScanOpen && scans === 1) corrupt("JPEG file is truncated (no end marker)");
}

/** Offset of the marker that ends entropy-coded data starting at `from`, or -1 when the file ends first. */
function entropyDataEnd(bytes: Uint8Array, from: number): number {
  const len = bytes.length;
  // indexOf is native, so only the rare 0xFF bytes (stuffing, restart markers) cost a step in JavaScript.
  for (let q = from;;) {
    // Runs of stuffed bytes would otherwise cost a native call each.
    if (bytes[q] !== 0xff) q = bytes.indexOf(0xff, q);
    if (q < 0 || q + 1 >= len) return -1;
    const b = bytes[q + 1];
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

function checkTiff(bytes: Uint8Array): void {
  // Validates the header, that the first directory lies inside the file, and the image size.
  const { width, height } = readTiffSize(bytes);
  const len = bytes.length;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = bytes[0] === 0x49;
  const ifd = dv.getUint32(4, le);
  const entries = new Map<number, TiffEntry>();
  for (let p = ifd + 2, end = ifd + 2 + 12 * dv.getUint16(ifd, le); p < end; p += 12) {
    const type = dv.getUint16(p + 2, le);
    const unit = TIFF_TYPE_SIZES[type] ?? 0;
    // Unknown field types are skipped, as TIFF 6 (and tiff.ts) require.
    if (unit === 0) continue;
    const count = dv.getUint32(p + 4, le);
    const size = unit * count;
    entries.set(dv.getUint16(p, le), { type, count, at: size <= 4 ? p + 8 : dv.getUint32(p + 8, le), size });
  }
  const present = (tag: number): TiffEntry | undefined => {
    const e = entries.get(tag);
    return e === undefined || e.count === 0 ? undefined : e;
  };
  const inFile = (tag: number, e: TiffEntry) => {
    if (e.at + e.size > len) corrupt(`TIFF ${tagName(tag)} values lie beyond the end of the file`);
  };
  // Like tiff.ts, only tags the decoder reads are checked, so a damaged irrelevant tag does not spoil the file.
  const ints = (tag: number): number[] | undefined => {
    const e = present(tag);
    if (e === undefined) return undefined;
    if (!TIFF_INTEGER_TYPES.has(e.type)) corrupt(`TIFF ${tagName(tag)} has non-integer field type ${e.type}`);
    inFile(tag, e);
    const { type, count, at } = e;
    const unit = TIFF_TYPE_SIZES[type];
    const signed = TIFF_SIGNED_TYPES.has(type);
    const out = new Array<number>(count);
    for (let i = 0, p = at; i < count; i++, p += unit) {
      if (unit === 1) out[i] = signed ? dv.getInt8(p) : dv.getUint8(p);
      else if (unit === 2) out[i] = signed ? dv.getInt16(p, le) : dv.getUint16(p, le);
      else out[i] = signed ? dv.getInt32(p, le) : dv.getUint32(p, le);
    }
    return out;
  };
  const int = (tag: number, fallback: number) => ints(tag)?.[0] ?? fallback;

  const compression = int(259, TIFF_NONE);
  const spp = int(277, 1);
  if (spp < 1) corrupt(`TIFF has ${spp} samples per pixel`);
  const bps = (ints(258) ?? [1])[0];
  ints(339);
  const planarValue = int(284, 1);
  const planar = spp === 1 ? 1 : planarValue;
  const extraSamples = ints(338) ?? [];
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
  // Planar layouts other than 1 and 2 are unsupported; with no known layout there are no strips to check.
  if (planar !== 1 && planar !== 2) return;

  const tiled = entries.has(322) || entries.has(324);
  const kind = tiled ? "tile" : "strip";
  let chunkWidth: number, chunkHeight: number, offsets: number[] | undefined, counts: number[] | undefined;
  if (tiled) {
    const tileWidth = ints(322)?.[0];
    if (tileWidth === undefined) corrupt("TIFF has no TileWidth");
    const tileLength = ints(323)?.[0];
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
    const offset = offsets[i];
    const count = counts === undefined ? expected(i) : counts[i];
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

function checkBmp(bytes: Uint8Array): void {
  // Validates the file and info headers (size, supported variant, dimensions).
  const { width, height } = readBmpSize(bytes);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerSize = dv.getUint32(14, true);
  const core = headerSize === CORE_HEADER_SIZE;
  const bpp = dv.getUint16(core ? 24 : 28, true);
  const compression = core ? BI_RGB : dv.getUint32(30, true);
  // The decoder calls these unsupported; without a known layout there is nothing further to measure.
  if (!BMP_COMPRESSIONS.has(compression) || !SUPPORTED_BIT_DEPTHS.has(bpp)) return;
  checkCompressionDepth(compression, bpp);
  const rle = compression === BI_RLE8 || compression === BI_RLE4;
  const bitfields = compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS;
  if (rle && !core && dv.getInt32(22, true) < 0) corrupt("BMP RLE bitmaps cannot be top-down (negative height)");

  let cursor = 14 + headerSize;
  if (bitfields && headerSize === INFO_HEADER_SIZE) {
    const count = compression === BI_ALPHABITFIELDS ? 4 : 3;
    if (cursor + count * 4 > bytes.length) corrupt("BMP color masks past end of file");
    cursor += count * 4;
  }
  if (bpp <= 8) {
    const maxColors = 1 << bpp;
    const used = core ? 0 : dv.getUint32(46, true);
    const count = used === 0 || used > maxColors ? maxColors : used;
    if (cursor + count * (core ? 3 : 4) > bytes.length) corrupt(`BMP palette of ${count} colors past end of file`);
  }
  const dataOffset = dv.getUint32(10, true);
  if (dataOffset > bytes.length) {
    corrupt(`BMP pixel data offset ${dataOffset} past end of file (${bytes.length} bytes)`);
  }
  if (dataOffset < cursor) corrupt(`BMP pixel data offset ${dataOffset} overlaps the headers`);
  if (rle) {
    walkRle(bytes, dataOffset, width, height, bpp);
    return;
  }
  checkPixelData(bytes, dataOffset, width, height, bpp);
}
