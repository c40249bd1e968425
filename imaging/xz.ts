import { crc32 } from "node:zlib";
import { ImageError } from "./image_error.ts";

// The .xz streams libtiff's LZMA codec (TIFF compression 34925) writes through liblzma: one stream per strip or tile,
// a Delta filter then LZMA2. A decoder of our own, since none on npm fits: xz-decompress (xz-embedded in WASM) has no
// Delta filter and only an asynchronous stream interface, and xz-compat decodes .xz only asynchronously, takes only
// Node Buffers and may try to install a native module at run time (docs/decoders.md). Decoding stops once `out` is
// full, so a stream cannot expand past the strip it belongs to; the integrity checks (CRC32/CRC64/SHA-256 of the data)
// are skipped, as the strip sizes already catch short data and libtiff writes streams without one.

function corrupt(message: string): never {
  throw new ImageError("corrupt_image", `TIFF LZMA data: ${message}`);
}

const MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];
const FILTER_DELTA = 0x03;
const FILTER_LZMA2 = 0x21;

/** Decodes the .xz stream `src` into `out`; returns the number of bytes written (at most `out.length`). */
export function decodeXz(src: Uint8Array, out: Uint8Array): number {
  if (src.length < 12 || MAGIC.some((b, i) => src[i] !== b)) corrupt("not an .xz stream (bad magic)");
  if (crc32(src.subarray(6, 8)) >>> 0 !== readUint32(src, 8)) corrupt("stream header is damaged (bad CRC)");
  if (src[6] !== 0 || src[7] > 15) corrupt("stream header has unknown flags");
  const checkSize = CHECK_SIZES[src[7]];
  let p = 12, produced = 0;
  while (produced < out.length) {
    if (p >= src.length) corrupt("the stream is truncated");
    // A zero where a block header would start is the index: the stream has no more blocks.
    if (src[p] === 0) break;
    const headerSize = (src[p] + 1) * 4;
    if (p + headerSize > src.length) corrupt("the stream is truncated in a block header");
    const header = src.subarray(p, p + headerSize);
    if (crc32(header.subarray(0, headerSize - 4)) >>> 0 !== readUint32(header, headerSize - 4)) {
      corrupt("block header is damaged (bad CRC)");
    }
    const filters = readBlockHeader(header);
    const start = produced;
    const lzma2 = decodeLzma2(src, p + headerSize, out, produced);
    produced = lzma2.produced;
    for (let i = filters.length - 2; i >= 0; i--) undoDelta(out, start, produced, filters[i].distance);
    if (produced >= out.length) break;
    // Block padding to a multiple of four, then the check.
    p = ((lzma2.end - (p + headerSize) + 3) & ~3) + p + headerSize + checkSize;
  }
  return produced;
}

function readUint32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

interface Filter {
  id: number;
  /** Delta only: bytes between a byte and the one it was subtracted from. */
  distance: number;
}

function readBlockHeader(header: Uint8Array): Filter[] {
  const end = header.length - 4;
  let p = 1;
  const varint = () => {
    let value = 0;
    for (let shift = 0; shift < 63; shift += 7) {
      if (p >= end) corrupt("block header is truncated");
      const b = header[p++];
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    corrupt("block header has an over-long number");
  };
  const flags = header[p++];
  if (flags & 0x3c) corrupt("block header has unknown flags");
  if (flags & 0x40) varint(); // compressed size: the LZMA2 end marker is what ends the data here
  if (flags & 0x80) varint(); // uncompressed size: `out` is what bounds it
  const filters: Filter[] = [];
  for (let i = 0; i <= (flags & 3); i++) {
    const id = varint();
    const size = varint();
    if (p + size > end) corrupt("block header is truncated");
    if (id === FILTER_DELTA && size === 1) filters.push({ id, distance: header[p] + 1 });
    else if (id === FILTER_LZMA2 && size === 1) filters.push({ id, distance: 0 });
    else {
      throw new ImageError("unsupported_image", `TIFF LZMA data with .xz filter 0x${id.toString(16)} is not supported`);
    }
    p += size;
  }
  if (filters.at(-1)!.id !== FILTER_LZMA2 || filters.slice(0, -1).some((f) => f.id !== FILTER_DELTA)) {
    throw new ImageError("unsupported_image", "TIFF LZMA data with an .xz filter chain other than Delta + LZMA2");
  }
  for (; p < end; p++) if (header[p] !== 0) corrupt("block header padding is not zero");
  return filters;
}

/** The Delta filter's decoding: each byte is stored as its difference from the byte `distance` before it. */
function undoDelta(out: Uint8Array, start: number, end: number, distance: number): void {
  for (let i = start + distance; i < end; i++) out[i] = (out[i] + out[i - distance]) & 0xff;
}

// ---------------------------------------------------------------------------------------------------------------
// LZMA2 chunks around LZMA (the algorithm as in Igor Pavlov's LzmaSpec.cpp, which is public domain).

const PROB_INIT = 1024;
const NUM_STATES = 12;
const POS_STATES_MAX = 16;
const MATCH_MIN_LEN = 2;
const END_POS_MODEL_INDEX = 14;
const NUM_FULL_DISTANCES = 128;
const ALIGN_BITS = 4;
const LEN_LOW_BITS = 3, LEN_MID_BITS = 3, LEN_HIGH_BITS = 8;

// Offsets into one Uint16Array of probabilities.
const IS_MATCH = 0;
const IS_REP = IS_MATCH + (NUM_STATES << 4);
const IS_REP_G0 = IS_REP + NUM_STATES;
const IS_REP_G1 = IS_REP_G0 + NUM_STATES;
const IS_REP_G2 = IS_REP_G1 + NUM_STATES;
const IS_REP0_LONG = IS_REP_G2 + NUM_STATES;
const POS_SLOT = IS_REP0_LONG + (NUM_STATES << 4);
const SPEC_POS = POS_SLOT + (4 << 6);
const ALIGN = SPEC_POS + NUM_FULL_DISTANCES - END_POS_MODEL_INDEX;
const LEN_SIZE = 2 + POS_STATES_MAX * (1 << LEN_LOW_BITS) * 2 + (1 << LEN_HIGH_BITS);
const LEN_CODER = ALIGN + (1 << ALIGN_BITS);
const REP_LEN_CODER = LEN_CODER + LEN_SIZE;
const LITERAL = REP_LEN_CODER + LEN_SIZE;

class LzmaState {
  lc = 0;
  lp = 0;
  pb = 0;
  probs = new Uint16Array(LITERAL + (0x300 << 4));
  state = 0;
  rep0 = 0;
  rep1 = 0;
  rep2 = 0;
  rep3 = 0;
  // Range decoder.
  range = 0;
  code = 0;
  src: Uint8Array = new Uint8Array(0);
  in = 0;
  inEnd = 0;

  setProperties(props: number): void {
    if (props >= 9 * 5 * 5) corrupt("invalid LZMA properties");
    this.lc = props % 9;
    this.lp = Math.floor(props / 9) % 5;
    this.pb = Math.floor(props / 45);
    if (this.lc + this.lp > 4) corrupt("invalid LZMA properties (lc + lp > 4)");
    if (this.probs.length < LITERAL + (0x300 << (this.lc + this.lp))) {
      this.probs = new Uint16Array(LITERAL + (0x300 << (this.lc + this.lp)));
    }
  }

  resetState(): void {
    this.probs.fill(PROB_INIT, 0, LITERAL + (0x300 << (this.lc + this.lp)));
    this.state = 0;
    this.rep0 =
      this.rep1 =
      this.rep2 =
      this.rep3 =
        0;
  }

  initRange(src: Uint8Array, at: number, end: number): void {
    if (end - at < 5 || src[at] !== 0) corrupt("invalid LZMA chunk start");
    this.src = src;
    this.code = ((src[at + 1] << 24) | (src[at + 2] << 16) | (src[at + 3] << 8) | src[at + 4]) >>> 0;
    this.range = 0xffffffff;
    this.in = at + 5;
    this.inEnd = end;
    if (this.code === this.range) corrupt("invalid LZMA chunk start");
  }

  private nextByte(): number {
    // Reading past the chunk is damage; a zero lets the current symbol finish and the caller then sees `in` overrun.
    return this.in < this.inEnd ? this.src[this.in++] : (this.in++, 0);
  }

  bit(index: number): number {
    const p = this.probs[index];
    const bound = (this.range >>> 11) * p;
    let bit: number;
    if (this.code < bound) {
      this.range = bound;
      this.probs[index] = p + ((2048 - p) >>> 5);
      bit = 0;
    } else {
      this.range = (this.range - bound) >>> 0;
      this.code = (this.code - bound) >>> 0;
      this.probs[index] = p - (p >>> 5);
      bit = 1;
    }
    if (this.range < 0x1000000) {
      this.range = (this.range << 8) >>> 0;
      this.code = ((this.code << 8) | this.nextByte()) >>> 0;
    }
    return bit;
  }

  directBits(count: number): number {
    let result = 0;
    for (let i = 0; i < count; i++) {
      this.range >>>= 1;
      let bit = 0;
      if (this.code >= this.range) {
        this.code = (this.code - this.range) >>> 0;
        bit = 1;
      }
      result = ((result << 1) | bit) >>> 0;
      if (this.range < 0x1000000) {
        this.range = (this.range << 8) >>> 0;
        this.code = ((this.code << 8) | this.nextByte()) >>> 0;
      }
    }
    return result;
  }

  tree(base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(base + m);
    return m - (1 << bits);
  }

  reverseTree(base: number, bits: number): number {
    let m = 1, symbol = 0;
    for (let i = 0; i < bits; i++) {
      const bit = this.bit(base + m);
      m = (m << 1) | bit;
      symbol |= bit << i;
    }
    return symbol;
  }

  length(base: number, posState: number): number {
    if (this.bit(base) === 0) return this.tree(base + 2 + (posState << LEN_LOW_BITS), LEN_LOW_BITS);
    if (this.bit(base + 1) === 0) {
      return 8 + this.tree(base + 2 + (POS_STATES_MAX << LEN_LOW_BITS) + (posState << LEN_MID_BITS), LEN_MID_BITS);
    }
    return 16 + this.tree(base + 2 + 2 * (POS_STATES_MAX << LEN_LOW_BITS), LEN_HIGH_BITS);
  }

  distance(len: number): number {
    const lenState = len < 3 ? len : 3;
    const slot = this.tree(POS_SLOT + (lenState << 6), 6);
    if (slot < 4) return slot;
    const direct = (slot >>> 1) - 1;
    let dist = ((2 | (slot & 1)) << direct) >>> 0;
    if (slot < END_POS_MODEL_INDEX) return dist + this.reverseTree(SPEC_POS + dist - slot, direct);
    dist = (dist + ((this.directBits(direct - ALIGN_BITS) << ALIGN_BITS) >>> 0)) >>> 0;
    return (dist + this.reverseTree(ALIGN, ALIGN_BITS)) >>> 0;
  }

  /**
   * Decodes LZMA symbols into out[pos, end); the dictionary is `out` from `dictStart`. Returns the new position.
   */
  decode(out: Uint8Array, pos: number, end: number, dictStart: number): number {
    const pbMask = (1 << this.pb) - 1;
    const lpMask = (1 << this.lp) - 1;
    const lc = this.lc;
    while (pos < end) {
      const posState = (pos - dictStart) & pbMask;
      let state = this.state;
      if (this.bit(IS_MATCH + (state << 4) + posState) === 0) {
        const prev = pos > dictStart ? out[pos - 1] : 0;
        const base = LITERAL + 0x300 * ((((pos - dictStart) & lpMask) << lc) + (prev >>> (8 - lc)));
        let symbol = 1;
        if (state >= 7) {
          let match = out[pos - this.rep0 - 1];
          do {
            const matchBit = (match >>> 7) & 1;
            match <<= 1;
            const bit = this.bit(base + ((1 + matchBit) << 8) + symbol);
            symbol = (symbol << 1) | bit;
            if (matchBit !== bit) break;
          } while (symbol < 0x100);
        }
        while (symbol < 0x100) symbol = (symbol << 1) | this.bit(base + symbol);
        out[pos++] = symbol - 0x100;
        this.state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let len: number;
      if (this.bit(IS_REP + state) === 0) {
        this.rep3 = this.rep2;
        this.rep2 = this.rep1;
        this.rep1 = this.rep0;
        len = this.length(LEN_CODER, posState);
        state = state < 7 ? 7 : 10;
        this.rep0 = this.distance(len);
        // The end marker (distance 2^32 - 1) is not allowed inside LZMA2, whose chunks carry their sizes.
        if (this.rep0 === 0xffffffff) corrupt("unexpected LZMA end marker");
      } else {
        if (pos === dictStart) corrupt("repeated match before any data");
        if (this.bit(IS_REP_G0 + state) === 0) {
          if (this.bit(IS_REP0_LONG + (state << 4) + posState) === 0) {
            this.state = state < 7 ? 9 : 11;
            out[pos] = out[pos - this.rep0 - 1];
            pos++;
            continue;
          }
        } else {
          let dist: number;
          if (this.bit(IS_REP_G1 + state) === 0) {
            dist = this.rep1;
          } else {
            if (this.bit(IS_REP_G2 + state) === 0) {
              dist = this.rep2;
            } else {
              dist = this.rep3;
              this.rep3 = this.rep2;
            }
            this.rep2 = this.rep1;
          }
          this.rep1 = this.rep0;
          this.rep0 = dist;
        }
        len = this.length(REP_LEN_CODER, posState);
        state = state < 7 ? 8 : 11;
      }
      this.state = state;
      const from = pos - this.rep0 - 1;
      if (from < dictStart) corrupt("match distance reaches before the start of the data");
      const n = Math.min(len + MATCH_MIN_LEN, end - pos);
      if (n < len + MATCH_MIN_LEN && end < out.length) corrupt("match runs past the end of its chunk");
      for (let i = 0; i < n; i++) out[pos + i] = out[from + i];
      pos += n;
    }
    return pos;
  }
}

/** Decodes LZMA2 chunks starting at src[at] into out from `pos`; stops at the end marker or when `out` is full. */
function decodeLzma2(src: Uint8Array, at: number, out: Uint8Array, pos: number): { produced: number; end: number } {
  const lzma = new LzmaState();
  let p = at;
  let dictStart = pos;
  let needDictReset = true, needProps = true;
  while (pos < out.length) {
    if (p >= src.length) corrupt("the stream is truncated in its LZMA2 data");
    const control = src[p++];
    if (control === 0) return { produced: pos, end: p };
    if (control === 1 || control === 2) {
      if (p + 2 > src.length) corrupt("the stream is truncated in an LZMA2 chunk header");
      if (control === 1) {
        dictStart = pos;
        needDictReset = false;
      } else if (needDictReset) corrupt("the first LZMA2 chunk does not reset the dictionary");
      const size = ((src[p] << 8) | src[p + 1]) + 1;
      p += 2;
      if (p + size > src.length) corrupt("the stream is truncated in an uncompressed LZMA2 chunk");
      const n = Math.min(size, out.length - pos);
      out.set(src.subarray(p, p + n), pos);
      pos += n;
      p += size;
      continue;
    }
    if (control < 0x80) corrupt(`invalid LZMA2 chunk type 0x${control.toString(16)}`);
    if (p + 4 > src.length) corrupt("the stream is truncated in an LZMA2 chunk header");
    const unpacked = ((control & 0x1f) << 16) + (src[p] << 8) + src[p + 1] + 1;
    const packed = (src[p + 2] << 8) + src[p + 3] + 1;
    p += 4;
    const reset = (control >>> 5) & 3;
    if (reset === 3) {
      dictStart = pos;
      needDictReset = false;
    } else if (needDictReset) corrupt("the first LZMA2 chunk does not reset the dictionary");
    if (reset >= 2) {
      if (p >= src.length) corrupt("the stream is truncated in an LZMA2 chunk header");
      lzma.setProperties(src[p++]);
      needProps = false;
    } else if (needProps) corrupt("an LZMA2 chunk has no properties");
    if (reset >= 1) lzma.resetState();
    if (p + packed > src.length) corrupt("the stream is truncated in an LZMA2 chunk");
    lzma.initRange(src, p, p + packed);
    const whole = pos + unpacked;
    pos = lzma.decode(out, pos, Math.min(whole, out.length), dictStart);
    if (lzma.in > p + packed) corrupt("an LZMA2 chunk reads past its end");
    // A chunk decoded whole has used exactly its bytes, as liblzma requires.
    if (pos === whole && lzma.in !== p + packed) corrupt("an LZMA2 chunk has data left over");
    p += packed;
  }
  return { produced: pos, end: p };
}
