import { crc32 } from "node:zlib";
import { deflateSync } from "node:zlib";
import { concatBytes } from "../imaging/bytes.ts";

/** Generators of decompression bombs: tiny files whose headers declare enormous images. */

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)) >>> 0);
  return out;
}

/** A valid-looking gray PNG that declares `width`×`height` and carries a few bytes of pixel data. */
export function pngBomb(width = 50_000, height = 50_000): Uint8Array {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 0, 0, 0, 0], 8);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", new Uint8Array(deflateSync(new Uint8Array(1024)))),
    chunk("IEND", new Uint8Array(0)),
  ];
  return concatBytes(parts);
}

/** A real JPEG with its frame header patched to declare `width`×`height`. */
export function jpegBomb(jpeg: Uint8Array, width = 65_500, height = 65_500): Uint8Array {
  const out = jpeg.slice();
  for (let i = 2; i + 9 < out.length;) {
    if (out[i] !== 0xff) throw new Error("not at a marker");
    const marker = out[i + 1];
    const length = (out[i + 2] << 8) | out[i + 3];
    if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      new DataView(out.buffer).setUint16(i + 5, height);
      new DataView(out.buffer).setUint16(i + 7, width);
      return out;
    }
    i += 2 + length;
  }
  throw new Error("no frame header");
}

/** A PNG whose chunks are all well-formed (CRCs fixed) but whose compressed pixel data is garbage. */
export function pngWithBrokenData(png: Uint8Array): Uint8Array {
  const out = png.slice();
  const dv = new DataView(out.buffer);
  for (let i = 8; i + 8 <= out.length;) {
    const length = dv.getUint32(i);
    const type = new TextDecoder().decode(out.subarray(i + 4, i + 8));
    if (type === "IDAT") {
      // Past the 2-byte zlib header: an invalid deflate block, caught only when inflating.
      out.fill(0xff, i + 10, i + 8 + Math.min(length, 64));
      dv.setUint32(i + 8 + length, crc32(out.subarray(i + 4, i + 8 + length)) >>> 0);
      return out;
    }
    i += 12 + length;
  }
  throw new Error("no IDAT");
}

/** A little-endian TIFF with its first directory's ImageWidth and ImageLength set to `width`×`height`. */
export function tiffDeclaring(tiff: Uint8Array, width = 65_500, height = 65_500): Uint8Array {
  const out = tiff.slice();
  const dv = new DataView(out.buffer);
  if (dv.getUint16(0) !== 0x4949) throw new Error("not a little-endian TIFF");
  const ifd = dv.getUint32(4, true);
  for (let i = 0, n = dv.getUint16(ifd, true); i < n; i++) {
    const p = ifd + 2 + 12 * i;
    const tag = dv.getUint16(p, true);
    if (tag !== 256 && tag !== 257) continue;
    const value = tag === 256 ? width : height;
    if (dv.getUint16(p + 2, true) === 3) dv.setUint16(p + 8, value, true);
    else dv.setUint32(p + 8, value, true);
  }
  return out;
}
