// Gray conversion, Gaussian blur, histogram and threshold for 8-bit images, with WASM SIMD.
//
// OpenCV.js on npm is built without WASM SIMD, so these steps ran 4-8x slower than native OpenCV (docs/performance.md).
// Each function here computes exactly what OpenCV 4.x computes for 8-bit data, bit for bit:
//   - RGB2GRAY: (9798 R + 19235 G + 3735 B + 2^14) >> 15, OpenCV's 15-bit fixed-point coefficients;
//   - GaussianBlur: OpenCV's bit-exact path for 8-bit images: the kernel in 8-bit fixed point (sum 256), rows
//     filtered into 16-bit sums without rounding, columns summed without rounding, then (sum + 2^15) >> 16;
//   - borders: BORDER_REFLECT_101 (OpenCV's BORDER_DEFAULT).
// tests/prefilter_test.ts compares every function with OpenCV.js on samples and random images.
// Built by build.sh (clang, wasm32, -msimd128); no libc: the caller owns all memory.
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name)))

// OpenCV's borderInterpolate for BORDER_REFLECT_101.
static int reflect101(int p, int len) {
  if (len == 1) return 0;
  while ((unsigned)p >= (unsigned)len) p = p < 0 ? -p : 2 * len - 2 - p;
  return p;
}

// Sixteen pixels, as four vectors of four four-byte pixels (R G B and a byte that is ignored), to their sixteen gray
// bytes at dst. Per pixel, a multiply-add of 16-bit lanes (R G B x) with (cR cG cB 0) yields R*cR + G*cG and B*cB; the
// pairs are then gathered and summed.
static inline void gray16(const v128_t px[4], uint8_t* dst) {
  const v128_t coef = wasm_i16x8_make(9798, 19235, 3735, 0, 9798, 19235, 3735, 0);
  const v128_t half = wasm_i32x4_splat(1 << 14);
  v128_t y[4];
  for (int k = 0; k < 4; k++) {
    v128_t d0 = wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(px[k]), coef);
    v128_t d1 = wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(px[k]), coef);
    v128_t s = wasm_i32x4_add(wasm_i32x4_shuffle(d0, d1, 0, 2, 4, 6), wasm_i32x4_shuffle(d0, d1, 1, 3, 5, 7));
    y[k] = wasm_u32x4_shr(wasm_i32x4_add(s, half), 15);
  }
  v128_t lo = wasm_i16x8_narrow_i32x4(y[0], y[1]);
  v128_t hi = wasm_i16x8_narrow_i32x4(y[2], y[3]);
  wasm_v128_store(dst, wasm_u8x16_narrow_i16x8(lo, hi));
}

EXPORT("gray_from_rgba")
void gray_from_rgba(const uint8_t* src, uint8_t* dst, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    v128_t px[4];
    for (int k = 0; k < 4; k++) px[k] = wasm_v128_load(src + 4 * (i + 4 * k));
    gray16(px, dst + i);
  }
  for (; i < n; i++) {
    const uint8_t* p = src + 4 * i;
    dst[i] = (uint8_t)((p[0] * 9798 + p[1] * 19235 + p[2] * 3735 + (1 << 14)) >> 15);
  }
}

EXPORT("gray_from_rgb")
void gray_from_rgb(const uint8_t* src, uint8_t* dst, int n) {
  int i = 0;
  // Each 16-byte load is spread into four RGB0 pixels (a swizzle index of 0x80 gives a zero byte). The last load of a
  // round reads 4 bytes past its 16 pixels: the loop stops while those bytes are still inside the image.
  const v128_t spread = wasm_i8x16_make(0, 1, 2, -128, 3, 4, 5, -128, 6, 7, 8, -128, 9, 10, 11, -128);
  for (; i + 17 <= n; i += 16) {
    v128_t px[4];
    for (int k = 0; k < 4; k++) px[k] = wasm_i8x16_swizzle(wasm_v128_load(src + 3 * (i + 4 * k)), spread);
    gray16(px, dst + i);
  }
  for (; i < n; i++) {
    const uint8_t* p = src + 3 * i;
    dst[i] = (uint8_t)((p[0] * 9798 + p[1] * 19235 + p[2] * 3735 + (1 << 14)) >> 15);
  }
}

// One row filtered horizontally: out[x] = sum_j k[j] * row[reflect(x - r + j)], exact in 16 bits (sum of k <= 256).
static void filter_row(const uint8_t* row, uint16_t* out, int w, const uint16_t* k, int ksize) {
  const int r = ksize / 2;
  int x = 0;
  // Left border, and the whole row when it is narrower than the vector loop needs.
  const int inner_end = w - r;
  for (; x < r && x < w; x++) {
    uint32_t s = 0;
    for (int j = 0; j < ksize; j++) s += k[j] * row[reflect101(x - r + j, w)];
    out[x] = (uint16_t)s;
  }
  for (; x + 16 <= inner_end; x += 16) {
    v128_t lo = wasm_i16x8_splat(0), hi = wasm_i16x8_splat(0);
    for (int j = 0; j < ksize; j++) {
      v128_t p = wasm_v128_load(row + x - r + j);
      v128_t kj = wasm_i16x8_splat((int16_t)k[j]);
      lo = wasm_i16x8_add(lo, wasm_i16x8_mul(wasm_u16x8_extend_low_u8x16(p), kj));
      hi = wasm_i16x8_add(hi, wasm_i16x8_mul(wasm_u16x8_extend_high_u8x16(p), kj));
    }
    wasm_v128_store(out + x, lo);
    wasm_v128_store(out + x + 8, hi);
  }
  for (; x < w; x++) {
    uint32_t s = 0;
    if (x >= r && x < inner_end) {
      for (int j = 0; j < ksize; j++) s += k[j] * row[x - r + j];
    } else {
      for (int j = 0; j < ksize; j++) s += k[j] * row[reflect101(x - r + j, w)];
    }
    out[x] = (uint16_t)s;
  }
}

// Gaussian blur of a w x h gray image. OpenCV's taps are 8-bit fixed point summing to 256, and its result is
// (sum_j t_j * sum_i t_i * src + 2^15) >> 16. Here the taps come divided by their common power of two g (k = t / g),
// so the sum is g^2 times smaller and the result is (sum + 2^(shift-1)) >> shift with shift = 16 - 2 log2 g: the same
// integer. When that sum fits 16 bits (3 and 5 taps) the columns are summed in 16-bit lanes, twice as many per
// instruction. ksize is odd and at most 15; rows is scratch for ksize filtered rows (ksize * w uint16).
EXPORT("blur")
void blur(const uint8_t* src, uint8_t* dst, int w, int h, const uint16_t* k, int ksize, int shift, uint16_t* rows) {
  const int r = ksize / 2;
  uint32_t ksum = 0;
  for (int j = 0; j < ksize; j++) ksum += k[j];
  const int narrow = 255u * ksum * ksum + (1u << (shift - 1)) < 65536u;
  // Ring of filtered rows: source row y lives in slot y % ksize once filtered; reflected rows are filtered again
  // into their own slot, which costs a few extra rows per image and keeps the ring simple.
  int slot_row[15];
  for (int i = 0; i < ksize; i++) slot_row[i] = -1;
  const uint16_t* taps[15];
  for (int y = 0; y < h; y++) {
    for (int j = 0; j < ksize; j++) {
      const int yy = y - r + j;
      const int slot = ((yy % ksize) + ksize) % ksize;
      uint16_t* buf = rows + slot * w;
      const int sy = reflect101(yy, h);
      if (slot_row[slot] != sy) {
        filter_row(src + (long)sy * w, buf, w, k, ksize);
        slot_row[slot] = sy;
      }
      taps[j] = buf;
    }
    uint8_t* out = dst + (long)y * w;
    int x = 0;
    if (narrow) {
      const v128_t half = wasm_i16x8_splat((int16_t)(1 << (shift - 1)));
      for (; x + 16 <= w; x += 16) {
        v128_t lo = half, hi = half;
        for (int j = 0; j < ksize; j++) {
          v128_t kj = wasm_i16x8_splat((int16_t)k[j]);
          lo = wasm_i16x8_add(lo, wasm_i16x8_mul(wasm_v128_load(taps[j] + x), kj));
          hi = wasm_i16x8_add(hi, wasm_i16x8_mul(wasm_v128_load(taps[j] + x + 8), kj));
        }
        wasm_v128_store(out + x, wasm_u8x16_narrow_i16x8(wasm_u16x8_shr(lo, shift), wasm_u16x8_shr(hi, shift)));
      }
    } else {
      const v128_t half = wasm_i32x4_splat(1 << (shift - 1));
      for (; x + 8 <= w; x += 8) {
        v128_t lo = half, hi = half;
        for (int j = 0; j < ksize; j++) {
          v128_t v = wasm_v128_load(taps[j] + x);
          v128_t kj = wasm_i16x8_splat((int16_t)k[j]);
          lo = wasm_i32x4_add(lo, wasm_u32x4_extmul_low_u16x8(v, kj));
          hi = wasm_i32x4_add(hi, wasm_u32x4_extmul_high_u16x8(v, kj));
        }
        v128_t s16 = wasm_u16x8_narrow_i32x4(wasm_u32x4_shr(lo, shift), wasm_u32x4_shr(hi, shift));
        wasm_v128_store64_lane(out + x, wasm_u8x16_narrow_i16x8(s16, s16), 0);
      }
    }
    for (; x < w; x++) {
      uint32_t s = 1u << (shift - 1);
      for (int j = 0; j < ksize; j++) s += (uint32_t)taps[j][x] * k[j];
      out[x] = (uint8_t)(s >> shift);
    }
  }
}

// 256-bin histogram (hist must hold 4 x 256 zeroed counters; the first 256 receive the result).
EXPORT("histogram")
void histogram(const uint8_t* src, int n, uint32_t* hist) {
  // Four interleaved sub-histograms, so runs of equal pixels do not wait on one counter.
  uint32_t* h0 = hist; uint32_t* h1 = hist + 256; uint32_t* h2 = hist + 512; uint32_t* h3 = hist + 768;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    h0[src[i]]++; h1[src[i + 1]]++; h2[src[i + 2]]++; h3[src[i + 3]]++;
  }
  for (; i < n; i++) h0[src[i]]++;
  for (int b = 0; b < 256; b++) h0[b] += h1[b] + h2[b] + h3[b];
}

// OpenCV's THRESH_BINARY (or _INV with invert) for 8-bit images: dst = src > t ? 255 : 0, t an integer in 0..254.
EXPORT("threshold")
void threshold(const uint8_t* src, uint8_t* dst, int n, int t, int invert) {
  const v128_t vt = wasm_u8x16_splat((uint8_t)t);
  const v128_t flip = wasm_i8x16_splat(invert ? -1 : 0);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    v128_t m = wasm_u8x16_gt(wasm_v128_load(src + i), vt);
    wasm_v128_store(dst + i, wasm_v128_xor(m, flip));
  }
  for (; i < n; i++) dst[i] = (uint8_t)(((src[i] > t) ? 255 : 0) ^ (invert ? 255 : 0));
}
