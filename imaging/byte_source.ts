/**
 * Random access to a file's bytes for the container checks: a buffer in memory, or a file on disk read a page at a
 * time. Checking a large upload thereby holds a few pages of it, never the whole file.
 *
 * ```ts
 * const file = await Deno.open(path);
 * try {
 *   checkStructure(fileSource(file, (await file.stat()).size));
 * } finally {
 *   file.close();
 * }
 * ```
 */
export interface ByteSource {
  /** Size in bytes. */
  readonly length: number;
  /** The byte at `i`; undefined past the end, as with a Uint8Array. */
  at(i: number): number;
  /** Bytes [start, end), clamped to the source: a view of memory or of a cached page, or a copy. Keep ranges small. */
  slice(start: number, end: number): Uint8Array;
  /** Index of the first `value` at or after `from`, or -1. */
  indexOf(value: number, from: number): number;
  /** Bytes [start, end) in consecutive pieces, for checksums over large ranges. */
  pieces(start: number, end: number): Iterable<Uint8Array>;
}

/** A ByteSource over bytes already in memory. */
export function memorySource(bytes: Uint8Array): ByteSource {
  return {
    length: bytes.length,
    at: (i) => bytes[i],
    slice: (start, end) => bytes.subarray(start, end),
    indexOf: (value, from) => bytes.indexOf(value, from),
    pieces: (start, end) => [bytes.subarray(start, end)],
  };
}

/** Size of one page read from disk. */
export const PAGE_BYTES = 64 * 1024;
// A walk moves forward through the file; a few pages cover the look-backs of TIFF directories and their value arrays.
const CACHED_PAGES = 4;

/**
 * A ByteSource over an open file of `length` bytes, read synchronously in PAGE_BYTES pages of which at most four are
 * kept (the checks are synchronous, and the file was just written, so reads come from the kernel's cache).
 */
export function fileSource(file: Deno.FsFile, length: number): ByteSource {
  const pages: { index: number; bytes: Uint8Array }[] = [];
  const page = (index: number): Uint8Array => {
    const hit = pages.findIndex((p) => p.index === index);
    if (hit >= 0) {
      const [found] = pages.splice(hit, 1);
      pages.unshift(found);
      return found.bytes;
    }
    const start = index * PAGE_BYTES;
    const bytes = new Uint8Array(Math.min(PAGE_BYTES, length - start));
    file.seekSync(start, Deno.SeekMode.Start);
    for (let off = 0; off < bytes.length;) {
      const n = file.readSync(bytes.subarray(off));
      if (n === null) throw new Error(`the file ended at byte ${start + off}, before its ${length} bytes`);
      off += n;
    }
    pages.unshift({ index, bytes });
    if (pages.length > CACHED_PAGES) pages.pop();
    return bytes;
  };
  // The last page used answers most lookups without a search.
  let lastIndex = -1;
  let last: Uint8Array = new Uint8Array();
  const at = (i: number): number => {
    if (!(i >= 0 && i < length)) return undefined as unknown as number;
    const index = Math.floor(i / PAGE_BYTES);
    if (index !== lastIndex) {
      last = page(index);
      lastIndex = index;
    }
    return last[i - index * PAGE_BYTES];
  };
  function* pieces(start: number, end: number): Iterable<Uint8Array> {
    const to = Math.min(end, length);
    for (let pos = Math.max(0, start); pos < to;) {
      const index = Math.floor(pos / PAGE_BYTES);
      const bytes = page(index);
      const from = pos - index * PAGE_BYTES;
      const upto = Math.min(bytes.length, to - index * PAGE_BYTES);
      yield bytes.subarray(from, upto);
      pos += upto - from;
    }
  }
  return {
    length,
    at,
    slice(start, end) {
      const from = Math.max(0, Math.min(start, length));
      const to = Math.max(from, Math.min(end, length));
      const parts = [...pieces(from, to)];
      if (parts.length === 1) return parts[0];
      const out = new Uint8Array(to - from);
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      return out;
    },
    indexOf(value, from) {
      let pos = Math.max(0, from);
      for (const piece of pieces(pos, length)) {
        const i = piece.indexOf(value);
        if (i >= 0) return pos + i;
        pos += piece.length;
      }
      return -1;
    },
    pieces,
  };
}

/**
 * The integer of `size` bytes (1, 2 or 4) at `i`, big-endian unless `le`; throws RangeError past the end, as (and in
 * the words of) a DataView.
 */
export function readUint(src: ByteSource, i: number, size: 1 | 2 | 4, le = false): number {
  if (i < 0 || i + size > src.length) throw new RangeError("Offset is outside the bounds of the DataView");
  let value = 0;
  for (let k = 0; k < size; k++) value = value * 256 + src.at(le ? i + size - 1 - k : i + k);
  return value;
}

/** As readUint, as a two's-complement signed value. */
export function readInt(src: ByteSource, i: number, size: 1 | 2 | 4, le = false): number {
  const value = readUint(src, i, size, le);
  const half = 2 ** (8 * size - 1);
  return value >= half ? value - 2 * half : value;
}
