import { ImageError } from "./image_error.ts";

// CCITT fax decoding (ITU-T T.4 and T.6) for TIFF compressions 2, 3 and 4, following libtiff's tif_fax3.c: which rows
// carry an EOL, the 1D/2D tag bit, byte alignment for modified Huffman, and how the reference line is searched. It
// is stricter than libtiff where libtiff warns and goes on (a bad code word, a row longer or shorter than the image,
// data that runs out): those rows would be guessed, so here they make the strip corrupt.
// No npm library fits: utif/utif2 decode code words as strings bit by bit, report no error on damaged data, and
// utif2's modified Huffman loses rows ending in a make-up code; geotiff has no CCITT decoder (docs/decoders.md).

/** TIFF compressions this module decodes. */
export const COMPRESSION_CCITT_RLE = 2;
export const COMPRESSION_CCITT_G3 = 3;
export const COMPRESSION_CCITT_G4 = 4;

/** How a strip is coded. */
export interface FaxCoding {
  compression: 2 | 3 | 4;
  /** T4Options bit 0: Group 3 rows may be 2D-coded (a tag bit after each EOL says which). */
  twoDimensional: boolean;
}

function corrupt(message: string): never {
  throw new ImageError("corrupt_image", `TIFF CCITT data: ${message}`);
}

// Run-length code words of T.4 tables 2 and 3, as bit strings: terminating codes for runs 0–63, then make-up codes for
// 64, 128, … 1728; the extended make-up codes (1792–2560) are shared by both colours.
const WHITE_TERMINATING =
  "00110101 000111 0111 1000 1011 1100 1110 1111 10011 10100 00111 01000 001000 000011 110100 110101 101010 101011 " +
  "0100111 0001100 0001000 0010111 0000011 0000100 0101000 0101011 0010011 0100100 0011000 00000010 00000011 " +
  "00011010 00011011 00010010 00010011 00010100 00010101 00010110 00010111 00101000 00101001 00101010 00101011 " +
  "00101100 00101101 00000100 00000101 00001010 00001011 01010010 01010011 01010100 01010101 00100100 00100101 " +
  "01011000 01011001 01011010 01011011 01001010 01001011 00110010 00110011 00110100";
const WHITE_MAKEUP = "11011 10010 010111 0110111 00110110 00110111 01100100 01100101 01101000 01100111 011001100 " +
  "011001101 011010010 011010011 011010100 011010101 011010110 011010111 011011000 011011001 011011010 011011011 " +
  "010011000 010011001 010011010 011000 010011011";
const BLACK_TERMINATING =
  "0000110111 010 11 10 011 0011 0010 00011 000101 000100 0000100 0000101 0000111 00000100 00000111 000011000 " +
  "0000010111 0000011000 0000001000 00001100111 00001101000 00001101100 00000110111 00000101000 00000010111 " +
  "00000011000 000011001010 000011001011 000011001100 000011001101 000001101000 000001101001 000001101010 " +
  "000001101011 000011010010 000011010011 000011010100 000011010101 000011010110 000011010111 000001101100 " +
  "000001101101 000011011010 000011011011 000001010100 000001010101 000001010110 000001010111 000001100100 " +
  "000001100101 000001010010 000001010011 000000100100 000000110111 000000111000 000000100111 000000101000 " +
  "000001011000 000001011001 000000101011 000000101100 000001011010 000001100110 000001100111";
const BLACK_MAKEUP = "0000001111 000011001000 000011001001 000001011011 000000110011 000000110100 000000110101 " +
  "0000001101100 0000001101101 0000001001010 0000001001011 0000001001100 0000001001101 0000001110010 " +
  "0000001110011 0000001110100 0000001110101 0000001110110 0000001110111 0000001010010 0000001010011 " +
  "0000001010100 0000001010101 0000001011010 0000001011011 0000001100100 0000001100101";
const EXTENDED_MAKEUP = "00000001000 00000001100 00000001101 000000010010 000000010011 000000010100 000000010101 " +
  "000000010110 000000010111 000000011100 000000011101 000000011110 000000011111";

// Lookup tables indexed by the next 13 bits (the longest run code word): entry = run << 4 | code length, 0 = no code.
const RUN_BITS = 13;
/** The run value of the EOL code word (000000000001), which both tables hold. */
const EOL = 4095;

function runTable(terminating: string, makeup: string): Uint32Array {
  const table = new Uint32Array(1 << RUN_BITS);
  const add = (code: string, run: number) => {
    const shift = RUN_BITS - code.length;
    const first = parseInt(code, 2) << shift;
    for (let i = 0; i < 1 << shift; i++) table[first + i] = (run << 4) | code.length;
  };
  terminating.split(" ").forEach((code, run) => add(code, run));
  makeup.split(" ").forEach((code, i) => add(code, 64 * (i + 1)));
  EXTENDED_MAKEUP.split(" ").forEach((code, i) => add(code, 1792 + 64 * i));
  add("000000000001", EOL);
  return table;
}

let tables: { white: Uint32Array; black: Uint32Array; modes: Uint8Array } | undefined;

// 2D mode codes (T.4 table 4), indexed by the next 7 bits: entry = mode << 3 | code length. Vertical modes are
// VERTICAL + the offset of a1 from b1 (−3…3).
const PASS = 1, HORIZONTAL = 2, EXTENSION = 3, VERTICAL = 8;
const VERTICAL_CODES: [string, number][] = [
  ["1", 0],
  ["011", 1],
  ["000011", 2],
  ["0000011", 3],
  ["010", -1],
  ["000010", -2],
  ["0000010", -3],
];

function modeTable(): Uint8Array {
  const table = new Uint8Array(128);
  const add = (code: string, mode: number) => {
    const shift = 7 - code.length;
    const first = parseInt(code, 2) << shift;
    for (let i = 0; i < 1 << shift; i++) table[first + i] = (mode << 3) | code.length;
  };
  add("0001", PASS);
  add("001", HORIZONTAL);
  for (const [code, offset] of VERTICAL_CODES) add(code, VERTICAL + offset);
  add("0000001", EXTENSION);
  return table;
}

/** Reads bits MSB first; past the end it reads zeros and `overrun` says so. */
class BitReader {
  private readonly data: Uint8Array;
  private readonly bits: number;
  pos = 0;

  constructor(src: Uint8Array) {
    // Three bytes of zero padding let peek read 24 bits anywhere without bounds checks.
    this.data = new Uint8Array(src.length + 3);
    this.data.set(src);
    this.bits = src.length * 8;
  }

  /** The next `n` (at most 16) bits. */
  peek(n: number): number {
    const d = this.data, i = this.pos >>> 3;
    const window = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
    return (window >>> (24 - n - (this.pos & 7))) & ((1 << n) - 1);
  }

  skip(n: number): void {
    this.pos += n;
  }

  get overrun(): boolean {
    return this.pos > this.bits;
  }

  /** Whether fewer than `n` bits are left. */
  endsWithin(n: number): boolean {
    return this.pos + n > this.bits;
  }

  alignToByte(): void {
    this.pos = (this.pos + 7) & ~7;
  }
}

/**
 * Decodes one strip or tile of `rows` rows, `width` pixels each, into `out` (rows of `rowBytes` bytes, bit 1 = black
 * as libtiff returns fax data, before PhotometricInterpretation is applied). Data after the last row is ignored.
 */
export function decodeFax(
  src: Uint8Array,
  coding: FaxCoding,
  width: number,
  rows: number,
  out: Uint8Array,
  rowBytes: number,
): void {
  tables ??= {
    white: runTable(WHITE_TERMINATING, WHITE_MAKEUP),
    black: runTable(BLACK_TERMINATING, BLACK_MAKEUP),
    modes: modeTable(),
  };
  const { white, black, modes } = tables;
  const bits = new BitReader(src);
  // Changing elements (positions where the colour changes, starting with white → black) of the reference line and
  // the current one, each followed by sentinels at `width` so that b1 and b2 always exist. Zero-length runs repeat a
  // position, so a row may list more elements than it has pixels; more than twice as many is only damage.
  const capacity = 2 * width + 8;
  let ref = new Int32Array(capacity).fill(width);
  let cur = new Int32Array(capacity);
  const push = (row: number, count: number, x: number) => {
    if (count >= capacity - 4) corrupt(`row ${row} has more colour changes than pixels`);
    cur[count] = x;
  };

  const truncated = (row: number) => corrupt(`the data ends in row ${row} of ${rows} (truncated)`);

  /** One run length: make-up codes then a terminating code; EOL (or -1 for no valid code) ends the row early. */
  const readRun = (table: Uint32Array, row: number): number => {
    let run = 0;
    for (;;) {
      const entry = table[bits.peek(RUN_BITS)];
      if (entry === 0) {
        if (bits.endsWithin(RUN_BITS)) truncated(row);
        corrupt(`bad code word in row ${row}`);
      }
      bits.skip(entry & 15);
      if (bits.overrun) truncated(row);
      const value = entry >>> 4;
      if (value === EOL) corrupt(`row ${row} ends early (EOL after ${run} pixels of a run)`);
      run += value;
      if (value < 64) return run;
    }
  };

  const fillBlack = (rowStart: number, from: number, to: number) => {
    for (let x = from; x < to;) {
      const byte = rowStart + (x >>> 3);
      const bit = x & 7;
      if (bit === 0 && to - x >= 8) {
        out[byte] = 0xff;
        x += 8;
      } else {
        out[byte] |= 0x80 >>> bit;
        x++;
      }
    }
  };

  /** Modified Huffman: alternating white and black runs from the left edge. */
  const decode1D = (row: number, rowStart: number): number => {
    let a0 = 0, count = 0, color = 0;
    while (a0 < width) {
      const run = readRun(color === 0 ? white : black, row);
      const a1 = a0 + run;
      if (a1 > width) corrupt(`row ${row} is longer than the image width ${width}`);
      if (color === 1) fillBlack(rowStart, a0, a1);
      push(row, count++, a1);
      a0 = a1;
      color ^= 1;
    }
    return count;
  };

  /** T.4 two-dimensional coding against the reference line `ref`. */
  const decode2D = (row: number, rowStart: number): number => {
    // a0 starts on an imaginary white pixel just before the row, so a changing element at 0 counts as "to its right".
    let a0 = -1, count = 0, color = 0, b = 0;
    while (a0 < width) {
      // b1: the first changing element right of a0 whose colour is the opposite of a0's (even index: white → black).
      b = Math.max(0, b - 2);
      while (ref[b] <= a0 || (b & 1) !== color) b++;
      const b1 = ref[b], b2 = ref[b + 1];
      const entry = modes[bits.peek(7)];
      if (entry === 0) {
        // Seven zero bits start an EOL: the end of the data in Group 4, damage in a row that is not complete.
        if (bits.peek(12) === 1) corrupt(`row ${row} ends early (EOL at pixel ${Math.max(a0, 0)})`);
        if (bits.endsWithin(12)) truncated(row);
        corrupt(`bad mode code in row ${row}`);
      }
      bits.skip(entry & 7);
      if (bits.overrun) truncated(row);
      const mode = entry >>> 3;
      const start = Math.max(a0, 0);
      if (mode === PASS) {
        if (color === 1) fillBlack(rowStart, start, b2);
        a0 = b2;
      } else if (mode === HORIZONTAL) {
        const first = readRun(color === 0 ? white : black, row);
        const second = readRun(color === 0 ? black : white, row);
        const a1 = start + first, a2 = a1 + second;
        if (a2 > width) corrupt(`row ${row} is longer than the image width ${width}`);
        fillBlack(rowStart, color === 1 ? start : a1, color === 1 ? a1 : a2);
        push(row, count++, a1);
        push(row, count++, a2);
        a0 = a2;
      } else if (mode === EXTENSION) {
        throw new ImageError("unsupported_image", "TIFF CCITT uncompressed mode (code extension) is not supported");
      } else {
        const a1 = b1 + mode - VERTICAL;
        if (a1 < start || a1 > width) corrupt(`vertical mode code points outside row ${row}`);
        if (color === 1) fillBlack(rowStart, start, a1);
        push(row, count++, a1);
        a0 = a1;
        color ^= 1;
      }
    }
    return count;
  };

  /** Group 3 rows begin with an EOL: libtiff skips to the next one (any fill bits included), as done here. */
  const syncToEol = (row: number) => {
    while (bits.peek(11) !== 0) {
      bits.skip(1);
      if (bits.overrun) truncated(row);
    }
    while (bits.peek(1) === 0) {
      bits.skip(1);
      if (bits.overrun) truncated(row);
    }
    bits.skip(1);
  };

  for (let row = 0; row < rows; row++) {
    const rowStart = row * rowBytes;
    out.fill(0, rowStart, rowStart + rowBytes);
    let count: number;
    if (coding.compression === COMPRESSION_CCITT_G4) {
      count = decode2D(row, rowStart);
    } else if (coding.compression === COMPRESSION_CCITT_RLE) {
      count = decode1D(row, rowStart);
      bits.alignToByte();
    } else {
      syncToEol(row);
      let oneDimensional = true;
      if (coding.twoDimensional) {
        oneDimensional = bits.peek(1) === 1;
        bits.skip(1);
      }
      count = oneDimensional ? decode1D(row, rowStart) : decode2D(row, rowStart);
    }
    if (bits.overrun) truncated(row);
    // This row is the next one's reference line.
    [ref, cur] = [cur, ref];
    ref.fill(width, count, count + 4);
  }
}
