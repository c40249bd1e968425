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
// the output (start, length), as the JavaScript decoder did.
#define LZW_CLEAR 256
#define LZW_EOI 257
#define LZW_FIRST 258
static int32_t lzw_start[4096];
static int32_t lzw_length[4096];
static int32_t lzw_bad[2];

// Decodes `src_len` bytes at `src` into at most `out_len` bytes at `out`; returns the bytes written, or -1 on a code
// that is not in the table (lzw_bad_code and lzw_bad_next then say which code, and the next free one).
EXPORT("lzw_decode")
int lzw_decode(const uint8_t* src, int src_len, uint8_t* out, int out_len) {
  int ip = 0, bit_count = 0, width = 9, next = LZW_FIRST;
  uint32_t bit_buf = 0;
  int op = 0, prev_start = -1, prev_len = 0;
  while (op < out_len) {
    while (bit_count < width) {
      // Running out of input without an EOI code just ends the strip; the caller checks the length.
      if (ip >= src_len) return op;
      bit_buf = ((bit_buf << 8) | src[ip++]) & 0xffffff;
      bit_count += 8;
    }
    bit_count -= width;
    const int code = (int)((bit_buf >> bit_count) & ((1u << width) - 1));
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
      len = lzw_length[code];
      const int from = lzw_start[code];
      const int n = len < out_len - op ? len : out_len - op;
      // A table entry lies wholly before `op`, so the copy never overlaps what it writes. Most strings are a few
      // bytes, for which a loop beats memory.copy's call.
      if (n > 32) {
        __builtin_memmove(out + op, out + from, n);
      } else {
        for (int i = 0; i < n; i++) out[op + i] = out[from + i];
      }
      op += n;
    } else if (code == next && prev_start >= 0) {
      // The "KwKwK" case: the previous string plus its own first byte, so the copy reads bytes it has just written.
      len = prev_len + 1;
      const int n = len < out_len - op ? len : out_len - op;
      for (int i = 0; i < n; i++) out[op + i] = out[prev_start + i];
      op += n;
    } else {
      lzw_bad[0] = code;
      lzw_bad[1] = next;
      return -1;
    }
    if (prev_start >= 0 && next < 4096) {
      // Previous string + first byte of this one is exactly the output run starting at the previous string.
      lzw_start[next] = prev_start;
      lzw_length[next] = prev_len + 1;
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
