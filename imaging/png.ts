import { unzlibSync } from "fflate";
import { crc32, inflateSync } from "node:zlib";
import { ImageError } from "./image_error.ts";
import type { Decoded, DecodeInfo, Raster } from "./raster.ts";
import { pngUnfilter } from "./unpack.ts";

// The decoder is our own (chunk walk, native zlib, unfilter, conversion) rather than fast-png's:
// fast-png 8.0.0 cannot decode Adam7 images below 8 bits per sample, silently zero-fills a short last row,
// does not check CRCs by default, inflates with fflate in JavaScript (about 3× slower than node:zlib) and
// makes extra copies (stream concatenation, 16-bit byte swapping). Owning the pipeline also lets the
// unfiltered rows become the raster itself when no conversion is needed.
//
// Output matches what libpng gives OpenCV's imread: gray → 1 channel, RGB → 3, gray+alpha and RGBA → 4,
// palette → 3, or 4 when it has a tRNS chunk. tRNS on gray or RGB images (a single transparent colour key)
// is ignored, as OpenCV does: it would otherwise turn opaque image types into 4-channel ones.

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

// Chunk types as big-endian uint32, so the walk compares numbers instead of building strings.
const IHDR = 0x49484452;
const PLTE = 0x504c5445;
const IDAT = 0x49444154;
const IEND = 0x49454e44;
const TRNS = 0x74524e53;
const ACTL = 0x6163544c;
const CGBI = 0x43674249;

const GRAY = 0, RGB = 2, PALETTE = 3, GRAY_ALPHA = 4, RGBA = 6;
const SAMPLES_PER_PIXEL: Record<number, number> = { [GRAY]: 1, [RGB]: 3, [PALETTE]: 1, [GRAY_ALPHA]: 2, [RGBA]: 4 };
const LEGAL_DEPTHS: Record<number, number[]> = {
  [GRAY]: [1, 2, 4, 8, 16],
  [RGB]: [8, 16],
  [PALETTE]: [1, 2, 4, 8],
  [GRAY_ALPHA]: [8, 16],
  [RGBA]: [8, 16],
};

/** One sub-image of the file: the whole image, or an Adam7 pass (start x/y and step x/y). */
interface Pass {
  x0: number;
  y0: number;
  dx: number;
  dy: number;
}

const WHOLE_IMAGE: Pass[] = [{ x0: 0, y0: 0, dx: 1, dy: 1 }];
const ADAM7: Pass[] = [
  { x0: 0, y0: 0, dx: 8, dy: 8 },
  { x0: 4, y0: 0, dx: 8, dy: 8 },
  { x0: 0, y0: 4, dx: 4, dy: 8 },
  { x0: 2, y0: 0, dx: 4, dy: 4 },
  { x0: 0, y0: 2, dx: 2, dy: 4 },
  { x0: 1, y0: 0, dx: 2, dy: 2 },
  { x0: 0, y0: 1, dx: 1, dy: 2 },
];

// Deflate cannot expand data more than 1032:1, so image data smaller than this fraction of what the header
// promises is certainly truncated; checking first avoids allocating gigabytes for a forged header.
const MAX_DEFLATE_RATIO = 1032;

interface Header {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlaced: boolean;
}

interface Chunks {
  idat: Uint8Array;
  palette?: Uint8Array;
  transparency?: Uint8Array;
  frames?: number;
}

const corrupt = (message: string) => new ImageError("corrupt_image", message);

/** Reads width and height from the IHDR chunk without decoding (for pixel limits before decoding). */
export function readPngSize(bytes: Uint8Array): { width: number; height: number } {
  const { width, height } = readHeader(bytes, view(bytes));
  return { width, height };
}

/** Decodes any PNG (every colour type and bit depth, palette with tRNS, gray+alpha, Adam7) to an 8-bit raster. */
export function decodePng(bytes: Uint8Array): Decoded {
  try {
    const dv = view(bytes);
    const header = readHeader(bytes, dv);
    const chunks = readChunks(bytes, dv, header);
    const info: DecodeInfo = {};
    if (chunks.frames !== undefined && chunks.frames > 1) {
      info.pages = chunks.frames;
      info.notes = [`animated PNG with ${chunks.frames} frames: only the default (first) image was analysed`];
    }
    return { raster: decodePixels(header, chunks), info };
  } catch (err) {
    if (err instanceof ImageError) throw err;
    // Nothing above should throw anything else; if it does, the file is still what triggered it.
    const reason = err instanceof Error ? err.message : String(err);
    throw corrupt(`could not decode PNG: ${reason}`);
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function readHeader(bytes: Uint8Array, dv: DataView): Header {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new ImageError("not_an_image", "the file is not a PNG (bad signature)");
  }
  if (bytes.length >= 16 && dv.getUint32(12) === CGBI) {
    throw new ImageError("unsupported_image", "Apple CgBI-optimised PNGs are not supported; re-save as a standard PNG");
  }
  if (bytes.length < 33) throw corrupt("PNG is truncated inside its IHDR header");
  if (dv.getUint32(8) !== 13 || dv.getUint32(12) !== IHDR) throw corrupt("PNG does not start with an IHDR chunk");
  if (crc32(bytes.subarray(12, 29)) !== dv.getUint32(29)) {
    throw corrupt("PNG IHDR chunk has a bad CRC (the file is damaged)");
  }
  const width = dv.getUint32(16);
  const height = dv.getUint32(20);
  const depth = bytes[24];
  const colorType = bytes[25];
  if (width === 0 || height === 0) throw corrupt(`PNG has zero ${width === 0 ? "width" : "height"}`);
  if (width > 0x7fffffff || height > 0x7fffffff) throw corrupt("PNG width or height exceeds 2^31-1");
  const depths = LEGAL_DEPTHS[colorType];
  if (!depths) throw corrupt(`PNG has invalid colour type ${colorType}`);
  if (!depths.includes(depth)) throw corrupt(`PNG bit depth ${depth} is invalid for colour type ${colorType}`);
  if (bytes[26] !== 0) throw corrupt(`PNG has unknown compression method ${bytes[26]}`);
  if (bytes[27] !== 0) throw corrupt(`PNG has unknown filter method ${bytes[27]}`);
  if (bytes[28] > 1) throw corrupt(`PNG has unknown interlace method ${bytes[28]}`);
  return { width, height, depth, colorType, interlaced: bytes[28] === 1 };
}

function chunkName(bytes: Uint8Array, at: number): string {
  let name = "";
  for (let i = at; i < at + 4; i++) {
    const c = bytes[i] | 0x20;
    name += c >= 0x61 && c <= 0x7a ? String.fromCharCode(bytes[i]) : "?";
  }
  return name;
}

function readChunks(bytes: Uint8Array, dv: DataView, header: Header): Chunks {
  const idat: Uint8Array[] = [];
  let idatLength = 0;
  let palette: Uint8Array | undefined;
  let transparency: Uint8Array | undefined;
  let frames: number | undefined;
  // Every iteration advances by at least 12 bytes, so the walk ends on any input.
  for (let pos = 33;;) {
    if (pos + 12 > bytes.length) {
      throw corrupt(
        pos === bytes.length ? "PNG is truncated (no IEND chunk)" : "PNG is truncated inside a chunk header",
      );
    }
    const length = dv.getUint32(pos);
    const type = dv.getUint32(pos + 4);
    const name = chunkName(bytes, pos + 4);
    if (length > 0x7fffffff) throw corrupt(`PNG ${name} chunk has an invalid length`);
    const start = pos + 8;
    const end = start + length;
    if (end + 4 > bytes.length) throw corrupt(`PNG is truncated inside its ${name} chunk`);
    pos = end + 4;
    const critical = (bytes[start - 4] & 0x20) === 0;
    if (critical || type === TRNS || type === ACTL) {
      if (crc32(bytes.subarray(start - 4, end)) !== dv.getUint32(end)) {
        if (critical) throw corrupt(`PNG ${name} chunk has a bad CRC (the file is damaged)`);
        // libpng discards damaged ancillary chunks with a warning; the image itself is intact.
        continue;
      }
    }
    const data = bytes.subarray(start, end);
    switch (type) {
      case IDAT:
        idat.push(data);
        idatLength += length;
        break;
      case IEND:
        if (idat.length === 0) throw corrupt("PNG has no image data (no IDAT chunk)");
        if (header.colorType === PALETTE && !palette) throw corrupt("palette PNG has no PLTE chunk");
        return { idat: concat(idat, idatLength), palette, transparency, frames };
      case PLTE:
        if (length === 0 || length % 3 !== 0 || length > 768) {
          throw corrupt(`PNG PLTE chunk has invalid length ${length}`);
        }
        if (idat.length > 0) throw corrupt("PNG PLTE chunk comes after the image data");
        // A PLTE in an RGB image is only a quantisation hint.
        if (header.colorType === PALETTE) palette = data;
        break;
      case TRNS:
        // Like libpng, ignore a tRNS that is empty, misplaced or longer than the palette instead of failing.
        if (
          header.colorType === PALETTE && palette && idat.length === 0 && length > 0 && length <= palette.length / 3
        ) {
          transparency = data;
        }
        break;
      case ACTL:
        if (length === 8) frames = dv.getUint32(start);
        break;
      case IHDR:
        throw corrupt("PNG has more than one IHDR chunk");
      default:
        if (critical) throw new ImageError("unsupported_image", `PNG has an unknown critical chunk "${name}"`);
    }
  }
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = allocate(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function allocate(length: number): Uint8Array {
  try {
    return new Uint8Array(length);
  } catch {
    throw new ImageError("image_too_large", `PNG needs ${length} bytes of memory to decode, more than is available`);
  }
}

function passSize(header: Header, pass: Pass): { columns: number; rows: number } {
  return {
    columns: Math.max(0, Math.ceil((header.width - pass.x0) / pass.dx)),
    rows: Math.max(0, Math.ceil((header.height - pass.y0) / pass.dy)),
  };
}

function decodePixels(header: Header, chunks: Chunks): Raster {
  const { width, height, depth, colorType } = header;
  const bitsPerPixel = SAMPLES_PER_PIXEL[colorType] * depth;
  // Filters work on whole bytes: sub-byte pixels use the previous byte.
  const filterStep = Math.max(1, bitsPerPixel >> 3);
  const passes = header.interlaced ? ADAM7 : WHOLE_IMAGE;

  let rawSize = 0;
  for (const pass of passes) {
    const { columns, rows } = passSize(header, pass);
    if (columns > 0) rawSize += rows * (1 + Math.ceil((columns * bitsPerPixel) / 8));
  }
  if (rawSize > chunks.idat.length * MAX_DEFLATE_RATIO + 1024) {
    throw corrupt(`PNG image data is far too short for a ${width}×${height} image (truncated or forged header)`);
  }
  const raw = inflate(chunks.idat, rawSize);

  const channels = outputChannels(colorType, chunks.transparency !== undefined);
  const direct = !header.interlaced && depth === 8 && (colorType === GRAY || colorType === RGB || colorType === RGBA);
  if (direct) {
    // Unfiltering compacts rows in place, so the inflated buffer already is the raster.
    const stride = width * channels;
    unfilter(raw, 0, height, stride, filterStep, "");
    return { width, height, channels, data: raw.subarray(0, height * stride) };
  }

  const out = allocate(width * height * channels);
  const convert = converter(header, chunks, channels);
  let at = 0;
  passes.forEach((pass, index) => {
    const { columns, rows } = passSize(header, pass);
    if (columns === 0 || rows === 0) return;
    const stride = Math.ceil((columns * bitsPerPixel) / 8);
    unfilter(raw, at, rows, stride, filterStep, header.interlaced ? ` of Adam7 pass ${index + 1}` : "");
    convert(raw, at, stride, pass, columns, rows, out);
    at += rows * (stride + 1);
  });
  return { width, height, channels, data: out };
}

function outputChannels(colorType: number, paletteAlpha: boolean): 1 | 3 | 4 {
  if (colorType === GRAY) return 1;
  if (colorType === RGB) return 3;
  if (colorType === PALETTE) return paletteAlpha ? 4 : 3;
  return 4;
}

function inflate(compressed: Uint8Array, size: number): Uint8Array {
  let reason: string;
  try {
    // One output chunk of exactly the expected size avoids zlib's chunk list and final concatenation;
    // the cap stops a zip bomb at the size the header promised.
    const out = inflateSync(compressed, { maxOutputLength: size, chunkSize: Math.max(64, size) });
    if (out.length === size) {
      // Small Buffers live in Node's shared pool; a raster must not expose unrelated bytes through .buffer.
      return out.byteOffset === 0 && out.buffer.byteLength === size
        ? new Uint8Array(out.buffer, 0, size)
        : new Uint8Array(out);
    }
    reason = `truncated: ${out.length} of ${size} bytes`;
  } catch (err) {
    reason = err instanceof Error ? err.message : String(err);
  }
  // zlib rejects streams that libpng accepts with a warning once every row is there (surplus data, a bad or
  // missing Adler-32); fflate, given an output of exactly the expected size, stops as soon as it is full.
  const out = allocate(size);
  try {
    if (unzlibSync(compressed, { out }).length === size) return out;
  } catch {
    // The zlib message is the more informative one.
  }
  throw corrupt(`PNG image data could not be decompressed (${reason})`);
}

/**
 * Reverses the row filters of `rows` rows starting at `at` (each a filter byte then `stride` bytes) and moves
 * each row down over the filter bytes, so row y ends up at at + y * stride (in WASM: imaging/unpack.ts).
 */
function unfilter(buf: Uint8Array, at: number, rows: number, stride: number, bpp: number, where: string): void {
  const bad = pngUnfilter(buf, at, rows, stride, bpp);
  if (bad) throw corrupt(`PNG has invalid filter type ${bad.filter} in row ${bad.row}${where}`);
}

type Converter = (
  raw: Uint8Array,
  at: number,
  stride: number,
  pass: Pass,
  columns: number,
  rows: number,
  out: Uint8Array,
) => void;

function converter(header: Header, chunks: Chunks, channels: 1 | 3 | 4): Converter {
  const { width, depth, colorType } = header;
  if (colorType === PALETTE || depth < 8) {
    return indexedConverter(width, depth, channels, lookupTable(header, chunks, channels));
  }
  const sampleBytes = depth >> 3;
  if (colorType === GRAY_ALPHA) return grayAlphaConverter(width, sampleBytes);
  return sampleConverter(width, sampleBytes, channels);
}

/** Output samples for every possible index or sub-byte gray value, so conversion is a table look-up. */
function lookupTable(header: Header, chunks: Chunks, channels: number): Uint8Array {
  const table = new Uint8Array(256 * channels);
  if (header.colorType !== PALETTE) {
    const max = (1 << header.depth) - 1;
    for (let v = 0; v <= max; v++) table[v] = Math.round((v * 255) / max);
    return table;
  }
  // Indices beyond the palette stay black and opaque, as with libpng (which pads the palette with zeros).
  const palette = chunks.palette!;
  const alpha = chunks.transparency;
  const entries = palette.length / 3;
  for (let i = 0; i < 256; i++) {
    const t = i * channels;
    if (i < entries) {
      table[t] = palette[i * 3];
      table[t + 1] = palette[i * 3 + 1];
      table[t + 2] = palette[i * 3 + 2];
    }
    if (channels === 4) table[t + 3] = alpha && i < alpha.length ? alpha[i] : 255;
  }
  return table;
}

function indexedConverter(width: number, depth: number, channels: number, table: Uint8Array): Converter {
  const mask = (1 << depth) - 1;
  const perByteLog = depth === 1 ? 3 : depth === 2 ? 2 : depth === 4 ? 1 : 0;
  const lastInByte = (1 << perByteLog) - 1;
  return (raw, at, stride, pass, columns, rows, out) => {
    const step = pass.dx * channels;
    for (let py = 0; py < rows; py++) {
      const row = at + py * stride;
      let o = ((pass.y0 + py * pass.dy) * width + pass.x0) * channels;
      for (let x = 0; x < columns; x++, o += step) {
        const shift = 8 - depth - (x & lastInByte) * depth;
        const v = (raw[row + (x >> perByteLog)] >> shift) & mask;
        if (channels === 1) {
          out[o] = table[v];
        } else {
          const t = v * channels;
          out[o] = table[t];
          out[o + 1] = table[t + 1];
          out[o + 2] = table[t + 2];
          if (channels === 4) out[o + 3] = table[t + 3];
        }
      }
    }
  };
}

/** 8- or 16-bit gray, RGB or RGBA; for 16 bits the high byte is kept, as libpng's strip_16 does. */
function sampleConverter(width: number, sampleBytes: number, channels: number): Converter {
  return (raw, at, stride, pass, columns, rows, out) => {
    const step = pass.dx * channels;
    const pixelBytes = channels * sampleBytes;
    for (let py = 0; py < rows; py++) {
      let s = at + py * stride;
      let o = ((pass.y0 + py * pass.dy) * width + pass.x0) * channels;
      if (pass.dx === 1) {
        // Whole rows are contiguous in the output: one flat loop is several times faster than per pixel.
        const end = o + columns * channels;
        if (sampleBytes === 1) out.set(raw.subarray(s, s + columns * channels), o);
        else for (; o < end; o++, s += 2) out[o] = raw[s];
        continue;
      }
      for (let x = 0; x < columns; x++, o += step, s += pixelBytes) {
        for (let c = 0; c < channels; c++) out[o + c] = raw[s + c * sampleBytes];
      }
    }
  };
}

/** Gray+alpha becomes RGBA (gray copied to R, G and B) so that every raster has 1, 3 or 4 channels. */
function grayAlphaConverter(width: number, sampleBytes: number): Converter {
  return (raw, at, stride, pass, columns, rows, out) => {
    const step = pass.dx * 4;
    const pixelBytes = 2 * sampleBytes;
    for (let py = 0; py < rows; py++) {
      let s = at + py * stride;
      let o = ((pass.y0 + py * pass.dy) * width + pass.x0) * 4;
      for (let x = 0; x < columns; x++, o += step, s += pixelBytes) {
        const g = raw[s];
        out[o] = g;
        out[o + 1] = g;
        out[o + 2] = g;
        out[o + 3] = raw[s + sampleBytes];
      }
    }
  };
}
