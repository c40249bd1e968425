import { type ByteSource, memorySource } from "./byte_source.ts";
import { ImageError } from "./image_error.ts";
import type { Raster } from "./raster.ts";

const FILE_HEADER_SIZE = 14;
// Larger dimensions do not occur in real files and would only serve to provoke huge allocations.
const MAX_DIMENSION = 1 << 16;

export const BI_RGB = 0;
export const BI_RLE8 = 1;
export const BI_RLE4 = 2;
export const BI_BITFIELDS = 3;
export const BI_ALPHABITFIELDS = 6;

export const CORE_HEADER_SIZE = 12;
export const INFO_HEADER_SIZE = 40;
// BITMAPINFOHEADER, V2 (52, RGB masks in the header), V3 (56, + alpha mask), V4 (108) and V5 (124).
const SUPPORTED_HEADER_SIZES = new Set([CORE_HEADER_SIZE, INFO_HEADER_SIZE, 52, 56, 108, 124]);
export const SUPPORTED_BIT_DEPTHS = new Set([1, 4, 8, 16, 24, 32]);

interface Dimensions {
  width: number;
  height: number;
  topDown: boolean;
  headerSize: number;
}

/** How one channel is packed into a 16- or 32-bit pixel. */
interface Field {
  mask: number;
  shift: number;
  max: number;
  // Precomputed 8-bit values for fields up to 16 bits wide; wider fields are scaled on the fly.
  lut: Uint8Array | null;
}

function corrupt(message: string): never {
  throw new ImageError("corrupt_image", message);
}

function u16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}

function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

function i32(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
}

/** `length` is the whole file's size when `bytes` holds only its first bytes (at least the headers, if present). */
function readDimensions(bytes: Uint8Array, length = bytes.length): Dimensions {
  if (length < 2 || bytes[0] !== 0x42 || bytes[1] !== 0x4d) {
    throw new ImageError("not_an_image", "not a BMP file (missing BM signature)");
  }
  if (length < FILE_HEADER_SIZE + 4) corrupt(`BMP header truncated: file has only ${length} bytes`);
  const headerSize = u32(bytes, FILE_HEADER_SIZE);
  if (!SUPPORTED_HEADER_SIZES.has(headerSize)) {
    // A size that cannot even fit is damage; a plausible one (e.g. OS/2 2.x, 16 or 64 bytes) is a variant we skip.
    if (headerSize < CORE_HEADER_SIZE || FILE_HEADER_SIZE + headerSize > length) {
      corrupt(`BMP info header size ${headerSize} is invalid`);
    }
    throw new ImageError("unsupported_image", `BMP header size ${headerSize}`);
  }
  if (FILE_HEADER_SIZE + headerSize > length) {
    corrupt(
      `BMP header truncated: ${headerSize}-byte info header needs ${
        FILE_HEADER_SIZE + headerSize
      } bytes, file has ${length}`,
    );
  }
  let width: number;
  let rawHeight: number;
  if (headerSize === CORE_HEADER_SIZE) {
    // OS/2 1.x stores unsigned 16-bit dimensions, so it has no top-down form.
    width = u16(bytes, 18);
    rawHeight = u16(bytes, 20);
  } else {
    width = i32(bytes, 18);
    rawHeight = i32(bytes, 22);
  }
  const height = Math.abs(rawHeight);
  if (width < 1 || width > MAX_DIMENSION) corrupt(`BMP width ${width} out of range 1..${MAX_DIMENSION}`);
  if (height < 1 || height > MAX_DIMENSION) corrupt(`BMP height ${rawHeight} out of range 1..${MAX_DIMENSION}`);
  return { width, height, topDown: rawHeight < 0, headerSize };
}

/**
 * Reads width/height from a BMP header without decoding pixels (for size limits before decoding); `length` is the
 * file's size when `bytes` holds only its first bytes.
 */
export function readBmpSize(bytes: Uint8Array, length = bytes.length): { width: number; height: number } {
  const { width, height } = readDimensions(bytes, length);
  return { width, height };
}

function makeField(rawMask: number): Field {
  const mask = rawMask >>> 0;
  if (mask === 0) return { mask: 0, shift: 0, max: 0, lut: null };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = mask >>> shift;
  let lut: Uint8Array | null = null;
  if (max <= 0xffff) {
    lut = new Uint8Array(max + 1);
    for (let v = 0; v <= max; v++) lut[v] = Math.round((v * 255) / max);
  }
  return { mask, shift, max, lut };
}

function sample(px: number, f: Field): number {
  if (f.max === 0) return 0;
  // `&` yields a signed int32 for masks with the top bit set; `>>>` turns it back into the unsigned field value.
  const v = (px & f.mask) >>> f.shift;
  return f.lut !== null ? f.lut[v] : Math.round((v * 255) / f.max);
}

function allocate(size: number, width: number, height: number): Uint8Array {
  try {
    return new Uint8Array(size);
  } catch {
    throw new ImageError("image_too_large", `BMP ${width}x${height} is too large to decode`);
  }
}

/** Decodes a BMP file to an RGB (channels 3) or RGBA (channels 4, only when the file really carries alpha) raster. */
export function decodeBmp(bytes: Uint8Array): Raster {
  const { width, height, topDown, headerSize } = readDimensions(bytes);
  const core = headerSize === CORE_HEADER_SIZE;
  const bpp = u16(bytes, core ? 24 : 28);
  const compression = core ? BI_RGB : u32(bytes, 30);

  // Compression is checked first because JPEG/PNG-in-BMP files usually declare bit depth 0.
  if (
    compression !== BI_RGB && compression !== BI_RLE8 && compression !== BI_RLE4 && compression !== BI_BITFIELDS &&
    compression !== BI_ALPHABITFIELDS
  ) {
    throw new ImageError("unsupported_image", `BMP compression ${compression}`);
  }
  if (!SUPPORTED_BIT_DEPTHS.has(bpp)) throw new ImageError("unsupported_image", `BMP bit depth ${bpp}`);
  checkCompressionDepth(compression, bpp);
  const rle = compression === BI_RLE8 || compression === BI_RLE4;
  const bitfields = compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS;
  if (rle && topDown) corrupt("BMP RLE bitmaps cannot be top-down (negative height)");

  let cursor = FILE_HEADER_SIZE + headerSize;
  let masks: [number, number, number, number] = [0, 0, 0, 0];
  if (bitfields) {
    if (headerSize === INFO_HEADER_SIZE) {
      // A plain BITMAPINFOHEADER keeps its masks right after the header, where a palette would otherwise go.
      const count = compression === BI_ALPHABITFIELDS ? 4 : 3;
      if (cursor + count * 4 > bytes.length) corrupt("BMP color masks past end of file");
      masks = [
        u32(bytes, cursor),
        u32(bytes, cursor + 4),
        u32(bytes, cursor + 8),
        count === 4 ? u32(bytes, cursor + 12) : 0,
      ];
      cursor += count * 4;
    } else {
      masks = [u32(bytes, 54), u32(bytes, 58), u32(bytes, 62), headerSize >= 56 ? u32(bytes, 66) : 0];
    }
  } else if (bpp === 16) {
    masks = [0x7c00, 0x03e0, 0x001f, 0];
  } else if (bpp === 32) {
    // BI_RGB 32-bit is BGRX: the fourth byte is unspecified, so it never counts as alpha (any V3+ alpha mask too).
    masks = [0xff0000, 0xff00, 0xff, 0];
  }

  // Indices past the end of a short palette come out black, as in browsers.
  const palette = new Uint8Array(256 * 3);
  if (bpp <= 8) {
    const maxColors = 1 << bpp;
    const clrUsed = core ? 0 : u32(bytes, 46);
    const count = clrUsed === 0 || clrUsed > maxColors ? maxColors : clrUsed;
    const entrySize = core ? 3 : 4;
    if (cursor + count * entrySize > bytes.length) {
      corrupt(`BMP palette of ${count} colors past end of file`);
    }
    for (let i = 0, p = cursor; i < count; i++, p += entrySize) {
      palette[i * 3] = bytes[p + 2];
      palette[i * 3 + 1] = bytes[p + 1];
      palette[i * 3 + 2] = bytes[p];
    }
  }

  const dataOffset = u32(bytes, 10);
  if (dataOffset > bytes.length) {
    corrupt(`BMP pixel data offset ${dataOffset} past end of file (${bytes.length} bytes)`);
  }
  if (dataOffset < cursor) corrupt(`BMP pixel data offset ${dataOffset} overlaps the headers`);

  if (rle) return decodeRle(bytes, dataOffset, width, height, bpp, palette);

  const stride = checkPixelData(bytes, dataOffset, width, height, bpp);

  const rowStart = (y: number) => dataOffset + (topDown ? y : height - 1 - y) * stride;

  if (bpp <= 8) {
    const out = allocate(width * height * 3, width, height);
    const perByte = 8 / bpp;
    const indexMask = (1 << bpp) - 1;
    let o = 0;
    for (let y = 0; y < height; y++) {
      const s = rowStart(y);
      for (let x = 0; x < width; x++) {
        const index = bpp === 8
          ? bytes[s + x]
          : (bytes[s + Math.floor(x / perByte)] >> (8 - bpp - (x % perByte) * bpp)) & indexMask;
        const p = index * 3;
        out[o++] = palette[p];
        out[o++] = palette[p + 1];
        out[o++] = palette[p + 2];
      }
    }
    return { width, height, channels: 3, data: out };
  }

  if (bpp === 24) {
    // Each row copied whole, then blue and red swapped in place: a copy and two bytes per pixel, not three.
    const out = allocate(width * height * 3, width, height);
    const rowBytes = width * 3;
    for (let y = 0; y < height; y++) {
      const s = rowStart(y);
      const o = y * rowBytes;
      out.set(bytes.subarray(s, s + rowBytes), o);
      for (let i = o, end = o + rowBytes; i < end; i += 3) {
        const blue = out[i];
        out[i] = out[i + 2];
        out[i + 2] = blue;
      }
    }
    return { width, height, channels: 3, data: out };
  }

  if (bpp === 32 && !bitfields) {
    const out = allocate(width * height * 3, width, height);
    const step = 4;
    let o = 0;
    for (let y = 0; y < height; y++) {
      let s = rowStart(y);
      for (let x = 0; x < width; x++, s += step) {
        out[o++] = bytes[s + 2];
        out[o++] = bytes[s + 1];
        out[o++] = bytes[s];
      }
    }
    return { width, height, channels: 3, data: out };
  }

  const [red, green, blue, alpha] = masks.map(makeField);
  const channels = alpha.max === 0 ? 3 : 4;
  const out = allocate(width * height * channels, width, height);
  let alphaSeen = 0;
  let o = 0;
  for (let y = 0; y < height; y++) {
    let s = rowStart(y);
    for (let x = 0; x < width; x++) {
      let px: number;
      if (bpp === 16) {
        px = bytes[s] | (bytes[s + 1] << 8);
        s += 2;
      } else {
        px = (bytes[s] | (bytes[s + 1] << 8) | (bytes[s + 2] << 16) | (bytes[s + 3] << 24)) >>> 0;
        s += 4;
      }
      out[o++] = sample(px, red);
      out[o++] = sample(px, green);
      out[o++] = sample(px, blue);
      if (channels === 4) {
        const a = sample(px, alpha);
        out[o++] = a;
        alphaSeen |= a;
      }
    }
  }
  if (channels === 4 && alphaSeen === 0) {
    // Many writers declare an alpha mask but leave it zero; browsers then show the image opaque, and so do we.
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
      rgb[j] = out[i];
      rgb[j + 1] = out[i + 1];
      rgb[j + 2] = out[i + 2];
    }
    return { width, height, channels: 3, data: rgb };
  }
  return { width, height, channels, data: out };
}

/** What an RLE stream paints: an encoded run of one value, or an absolute run of indices starting at `pos`. */
export interface RlePainter {
  run(x: number, y: number, count: number, value: number): void;
  absolute(x: number, y: number, count: number, pos: number): void;
}

/** Refuses pairs that cannot occur: RLE8 is 8-bit, RLE4 4-bit, bitfields 16- or 32-bit. Shared with the structure check. */
export function checkCompressionDepth(compression: number, bpp: number): void {
  const bitfields = compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS;
  if (
    (compression === BI_RLE8 && bpp !== 8) || (compression === BI_RLE4 && bpp !== 4) ||
    (bitfields && bpp !== 16 && bpp !== 32)
  ) {
    corrupt(`BMP compression ${compression} is invalid with bit depth ${bpp}`);
  }
}

/**
 * Checks that uncompressed pixel rows fit in the file and returns the row stride (rows are padded to 4 bytes). The
 * last row's padding is never read, so files that omit it are accepted. Shared with the upload-time structure check.
 */
export function checkPixelData(
  bytes: { length: number },
  dataOffset: number,
  width: number,
  height: number,
  bpp: number,
) {
  const stride = Math.floor((width * bpp + 31) / 32) * 4;
  const needed = stride * (height - 1) + Math.ceil((width * bpp) / 8);
  if (bytes.length - dataOffset < needed) {
    corrupt(
      `BMP pixel data truncated: ${needed} bytes needed at offset ${dataOffset}, ${
        bytes.length - dataOffset
      } available`,
    );
  }
  return stride;
}

/**
 * Walks BMP RLE4/RLE8 commands from `start`, failing with corrupt_image where the stream is truncated; `y` counts
 * rows from the bottom, in file order. Without a painter the walk only validates (the upload-time structure check).
 */
export function walkRle(
  bytes: ByteSource,
  start: number,
  width: number,
  height: number,
  bpp: number,
  painter?: RlePainter,
): void {
  const end = bytes.length;
  let pos = start;
  let x = 0;
  let y = 0;
  // Every command consumes at least two bytes, so the loop always terminates.
  while (y < height) {
    if (pos + 2 > end) {
      // A stream that ends right after its last pixel, without end-of-bitmap, still gave us the whole image.
      if (y === height - 1 && x >= width) return;
      corrupt("BMP RLE data truncated");
    }
    const count = bytes.at(pos);
    const value = bytes.at(pos + 1);
    pos += 2;
    if (count > 0) {
      // Runs that overshoot the row are clipped rather than wrapped, as in browsers.
      painter?.run(x, y, Math.min(count, width - x), value);
      x += count;
    } else if (value === 0) {
      x = 0;
      y++;
    } else if (value === 1) {
      return;
    } else if (value === 2) {
      if (pos + 2 > end) corrupt("BMP RLE data truncated");
      x += bytes.at(pos);
      y += bytes.at(pos + 1);
      pos += 2;
    } else {
      const dataBytes = bpp === 8 ? value : (value + 1) >> 1;
      if (pos + dataBytes > end) corrupt("BMP RLE data truncated");
      painter?.absolute(x, y, Math.min(value, width - x), pos);
      x += value;
      // Absolute runs are padded to a 16-bit boundary.
      pos += dataBytes + (dataBytes & 1);
    }
  }
}

function decodeRle(
  bytes: Uint8Array,
  start: number,
  width: number,
  height: number,
  bpp: number,
  palette: Uint8Array,
): Raster {
  const out = allocate(width * height * 3, width, height);
  // Pixels the stream skips (delta, early end of line or bitmap) have no defined colour. Browsers make them
  // transparent, but an RGB raster has no transparency, so they get palette entry 0, the usual background.
  for (let o = 0; o < out.length; o += 3) {
    out[o] = palette[0];
    out[o + 1] = palette[1];
    out[o + 2] = palette[2];
  }
  const at = (x: number, y: number) => ((height - 1 - y) * width + x) * 3;
  walkRle(memorySource(bytes), start, width, height, bpp, {
    run(x, y, n, value) {
      const hi = (bpp === 8 ? value : value >> 4) * 3;
      const lo = (bpp === 8 ? value : value & 15) * 3;
      for (let i = 0, o = at(x, y); i < n; i++, o += 3) {
        const p = (i & 1) === 0 ? hi : lo;
        out[o] = palette[p];
        out[o + 1] = palette[p + 1];
        out[o + 2] = palette[p + 2];
      }
    },
    absolute(x, y, n, pos) {
      for (let i = 0, o = at(x, y); i < n; i++, o += 3) {
        const index = bpp === 8
          ? bytes[pos + i]
          : (i & 1) === 0
          ? bytes[pos + (i >> 1)] >> 4
          : bytes[pos + (i >> 1)] & 15;
        const p = index * 3;
        out[o] = palette[p];
        out[o + 1] = palette[p + 1];
        out[o + 2] = palette[p + 2];
      }
    },
  });
  return { width, height, channels: 3, data: out };
}
