// The per-byte loops of the lossless decoders, in WASM: PNG's row filters and TIFF's LZW. As JavaScript they took a
// third of a PNG's and two thirds of an LZW TIFF's decoding time (docs/decoders.md); each function here does exactly
// what the JavaScript did, so imaging/png.ts and imaging/tiff.ts keep every check and message of their own.
// Built by build.sh (clang, wasm32, -msimd128, bulk memory); no libc: the caller owns all memory.
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name)))

static inline int absdiff(int v) { return v < 0 ? -v : v; }

// PNG: reverses the row filters of `rows` rows at `buf` (each a filter byte then `stride` bytes) and moves each row
// down over the filter bytes, so row y ends up at buf + y * stride; `bpp` is the filter step (bytes per pixel, at
// least 1). Writes never pass unread input: the output of a row ends before its input does. Returns -1, or the index
// of the first row whose filter type is invalid (rows before it are done, it and the rest are not).
EXPORT("png_unfilter")
int png_unfilter(uint8_t* buf, int rows, int stride, int bpp) {
  uint8_t* src = buf;
  uint8_t* dst = buf;
  const uint8_t* prev = 0;
  const int lead = bpp < stride ? bpp : stride;
  for (int y = 0; y < rows; y++) {
    const int filter = *src++;
    if (filter > 4) return y;
    int i = 0;
    if (filter == 0 || (filter == 2 && !prev)) {
      // dst is below src, so a forward copy never reads a byte it has written.
      __builtin_memmove(dst, src, stride);
    } else if (filter == 1) {
      for (; i < lead; i++) dst[i] = src[i];
      for (; i < stride; i++) dst[i] = (uint8_t)(src[i] + dst[i - bpp]);
    } else if (filter == 2) {
      // Each vector is loaded whole before it is stored, and the store ends before the next load begins.
      for (; i + 16 <= stride; i += 16) {
        wasm_v128_store(dst + i, wasm_i8x16_add(wasm_v128_load(src + i), wasm_v128_load(prev + i)));
      }
      for (; i < stride; i++) dst[i] = (uint8_t)(src[i] + prev[i]);
    } else if (filter == 3) {
      if (!prev) {
        for (; i < lead; i++) dst[i] = src[i];
        for (; i < stride; i++) dst[i] = (uint8_t)(src[i] + (dst[i - bpp] >> 1));
      } else {
        for (; i < lead; i++) dst[i] = (uint8_t)(src[i] + (prev[i] >> 1));
        for (; i < stride; i++) dst[i] = (uint8_t)(src[i] + ((dst[i - bpp] + prev[i]) >> 1));
      }
    } else if (!prev) {
      // Paeth with no previous row always predicts the left byte.
      for (; i < lead; i++) dst[i] = src[i];
      for (; i < stride; i++) dst[i] = (uint8_t)(src[i] + dst[i - bpp]);
    } else {
      for (; i < lead; i++) dst[i] = (uint8_t)(src[i] + prev[i]);
      for (; i < stride; i++) {
        const int a = dst[i - bpp], b = prev[i], c = prev[i - bpp];
        const int pa = absdiff(b - c), pb = absdiff(a - c), pc = absdiff(a + b - c - c);
        const int predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        dst[i] = (uint8_t)(src[i] + predicted);
      }
    }
    prev = dst;
    dst += stride;
    src += stride;
  }
  return -1;
}

// TIFF LZW (MSB-first codes, "early change" widths). The string table keeps each entry as a run already present in
// the output (start, length), so a code is one copy from earlier output. The caller leaves LZW_SRC_PAD readable bytes
// after the input and LZW_OUT_PAD writable bytes after the output: codes are read from 64 bits refilled four bytes at a
// time, and strings are copied sixteen bytes at a time, past their end (what lands beyond a string is overwritten by
// the next one, or is beyond the bytes returned).
#define LZW_CLEAR 256
#define LZW_EOI 257
#define LZW_FIRST 258
#define LZW_SRC_PAD 8
#define LZW_OUT_PAD 16
typedef struct {
  int32_t start, length;
} lzw_entry;
static lzw_entry lzw_table[4096];
static int32_t lzw_bad[2];

static inline uint32_t load_be32(const uint8_t* p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}

// Copies n bytes from out + from to out + to, where from + n <= to: every byte read below `to` is final, and what a
// vector reads at or beyond `to` only fills bytes past the n copied.
static inline void copy_run(uint8_t* out, int from, int to, int n) {
  for (int i = 0; i < n; i += 16) wasm_v128_store(out + to + i, wasm_v128_load(out + from + i));
}

// Decodes `src_len` bytes at `src` into at most `out_len` bytes at `out`; returns the bytes written, or -1 on a code
// that is not in the table (lzw_bad_code and lzw_bad_next then say which code, and the next free one).
EXPORT("lzw_decode")
int lzw_decode(const uint8_t* src, int src_len, uint8_t* out, int out_len) {
  int width = 9, next = LZW_FIRST;
  // `bits` holds the next unread bits at its top; `have` of them are valid. `left` counts input bits not yet taken.
  uint64_t bits = 0;
  int have = 0, ip = 0;
  int64_t left = (int64_t)src_len * 8;
  int op = 0, prev_start = -1, prev_len = 0;
  while (op < out_len) {
    // Running out of input without an EOI code just ends the strip; the caller checks the length.
    if (left < width) return op;
    if (have < width) {
      bits |= (uint64_t)load_be32(src + ip) << (32 - have);
      ip += 4;
      have += 32;
    }
    const int code = (int)(bits >> (64 - width));
    bits <<= width;
    have -= width;
    left -= width;
    if (code == LZW_EOI) break;
    if (code == LZW_CLEAR) {
      width = 9;
      next = LZW_FIRST;
      prev_start = -1;
      continue;
    }
    const int at = op;
    int len;
    if (code < 256) {
      out[op++] = (uint8_t)code;
      len = 1;
    } else if (code < next) {
      const lzw_entry e = lzw_table[code];
      len = e.length;
      const int n = len < out_len - op ? len : out_len - op;
      copy_run(out, e.start, op, n);
      op += n;
    } else if (code == next && prev_start >= 0) {
      // The "KwKwK" case: the previous string (which ends where this one begins) plus its own first byte.
      len = prev_len + 1;
      const int n = len < out_len - op ? len : out_len - op;
      copy_run(out, prev_start, op, n < prev_len ? n : prev_len);
      if (n > prev_len) out[op + prev_len] = out[prev_start];
      op += n;
    } else {
      lzw_bad[0] = code;
      lzw_bad[1] = next;
      return -1;
    }
    if (prev_start >= 0 && next < 4096) {
      // Previous string + first byte of this one is exactly the output run starting at the previous string.
      lzw_table[next].start = prev_start;
      lzw_table[next].length = prev_len + 1;
      next++;
      if (next + 1 >= (1 << width) && width < 12) width++;
    }
    prev_start = at;
    prev_len = len;
  }
  return op;
}

EXPORT("lzw_bad_code")
int lzw_bad_code(void) { return lzw_bad[0]; }

EXPORT("lzw_bad_next")
int lzw_bad_next(void) { return lzw_bad[1]; }
