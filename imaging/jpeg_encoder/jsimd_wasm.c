// libjpeg-turbo's SIMD hooks (jsimd.h) for the compressor, in WASM SIMD128: the stages that dominate the C encoder's
// profile (colour conversion, 2×2 downsampling, sample conversion, the islow DCT, quantisation, Huffman coding of a
// block). Each computes exactly what the C code in jccolext.c, jcsample.c, jcdctmgr.c, jfdctint.c and jchuff.c computes
// (libjpeg-turbo's own SIMD code is held to the same rule), so the output is byte-identical to libjpeg-turbo's.
//
// libjpeg-turbo's Arm Neon intrinsics would be the obvious source, but through SIMDe's Neon-to-WASM headers they run
// slower than the C code: the structure loads, 64-bit vectors and per-lane shifts they use have no WASM counterpart
// and become scalar loops through memory (docs/jpeg-encoder.md). These follow the shape of its x86 SSE2 code instead,
// whose operations WASM SIMD has (pmaddwd is i32x4.dot_i16x8_s, pmulhuw a widening multiply and a shuffle).
//
// Every WASM engine this runs on has SIMD128, so there is no run-time detection; what is not implemented here reports 0
// and libjpeg-turbo uses its C code.
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <wasm_simd128.h>

#define JPEG_INTERNALS
#include "jinclude.h"
#include "jpeglib.h"
#include "jsimd.h"
#include "jdct.h"
#include "jsimddct.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

// --- RGB → YCbCr (jccolext.c) ----------------------------------------------------------------------------------------
//
// Y  = ( 19595 R + 38470 G +  7471 B + 2^15) >> 16
// Cb = (-11059 R - 21709 G + 32768 B + 128·2^16 + 2^15 − 1) >> 16
// Cr = ( 32768 R - 27439 G -  5329 B + 128·2^16 + 2^15 − 1) >> 16
// with pairs of 16-bit products summed by i32x4.dot_i16x8_s; 38470 does not fit in 16 bits, so G's Y weight is split
// between the (R, G) and (B, G) pairs as 22086 + 16384, as simd/x86_64/jccolext-sse2.asm does.

#define F_0_299 19595
#define F_0_337 22086 /* 0.587 − 0.250 */
#define F_0_114 7471
#define F_0_250 16384
#define F_0_168 11059
#define F_0_331 21709
#define F_0_418 27439
#define F_0_081 5329

ALWAYS_INLINE v128_t high_halves(v128_t lo, v128_t hi) {
  // The upper 16 bits of each 32-bit lane, i.e. >> 16 for values in [0, 2^31), packed into eight 16-bit lanes.
  return wasm_i8x16_shuffle(lo, hi, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
}

// The constants of the conversion. V8 builds a vector constant from immediates at every use inside a loop (about
// four instructions); read from memory once per call instead, they stay in registers. Not `const`, so that clang
// cannot fold them back into constants.
typedef struct {
  v128_t y_rg, y_bg, cb_rg, cr_bg, y_round, c_round;
} ycc_constants;

#define PAIRS(a, b) {a, b, a, b, a, b, a, b}
static struct {
  int16_t y_rg[8], y_bg[8], cb_rg[8], cr_bg[8];
  int32_t y_round[4], c_round[4];
} __attribute__((aligned(16))) ycc_table = {
  PAIRS(F_0_299, F_0_337),
  PAIRS(F_0_114, F_0_250),
  PAIRS(-F_0_168, -F_0_331),
  PAIRS(-F_0_081, -F_0_418),
  {1 << 15, 1 << 15, 1 << 15, 1 << 15},
  {(128 << 16) + (1 << 15) - 1, (128 << 16) + (1 << 15) - 1, (128 << 16) + (1 << 15) - 1, (128 << 16) + (1 << 15) - 1},
};
static void *volatile ycc_table_address = &ycc_table;

ALWAYS_INLINE ycc_constants load_ycc_constants(void) {
  const int16_t *t = (const int16_t *)ycc_table_address;
  return (ycc_constants){wasm_v128_load(t), wasm_v128_load(t + 8), wasm_v128_load(t + 16), wasm_v128_load(t + 24),
                         wasm_v128_load(t + 32), wasm_v128_load(t + 40)};
}

// Y, Cb and Cr of eight pixels whose (R, G) and (B, G) pairs are given as 16-bit lanes, four pixels per vector.
ALWAYS_INLINE void ycc8(const ycc_constants *k, v128_t rg_lo, v128_t rg_hi, v128_t bg_lo, v128_t bg_hi, v128_t r,
                        v128_t b, v128_t *y, v128_t *cb, v128_t *cr) {
  const v128_t k_y_rg = k->y_rg, k_y_bg = k->y_bg, k_cb_rg = k->cb_rg, k_cr_bg = k->cr_bg;
  const v128_t y_round = k->y_round, c_round = k->c_round;
  v128_t y_lo = wasm_i32x4_add(wasm_i32x4_add(wasm_i32x4_dot_i16x8(rg_lo, k_y_rg), wasm_i32x4_dot_i16x8(bg_lo, k_y_bg)),
                               y_round);
  v128_t y_hi = wasm_i32x4_add(wasm_i32x4_add(wasm_i32x4_dot_i16x8(rg_hi, k_y_rg), wasm_i32x4_dot_i16x8(bg_hi, k_y_bg)),
                               y_round);
  v128_t b_lo = wasm_i32x4_shl(wasm_u32x4_extend_low_u16x8(b), 15);
  v128_t b_hi = wasm_i32x4_shl(wasm_u32x4_extend_high_u16x8(b), 15);
  v128_t cb_lo = wasm_i32x4_add(wasm_i32x4_add(wasm_i32x4_dot_i16x8(rg_lo, k_cb_rg), b_lo), c_round);
  v128_t cb_hi = wasm_i32x4_add(wasm_i32x4_add(wasm_i32x4_dot_i16x8(rg_hi, k_cb_rg), b_hi), c_round);
  v128_t r_lo = wasm_i32x4_shl(wasm_u32x4_extend_low_u16x8(r), 15);
  v128_t r_hi = wasm_i32x4_shl(wasm_u32x4_extend_high_u16x8(r), 15);
  v128_t cr_lo = wasm_i32x4_add(wasm_i32x4_add(wasm_i32x4_dot_i16x8(bg_lo, k_cr_bg), r_lo), c_round);
  v128_t cr_hi = wasm_i32x4_add(wasm_i32x4_add(wasm_i32x4_dot_i16x8(bg_hi, k_cr_bg), r_hi), c_round);
  *y = high_halves(y_lo, y_hi);
  *cb = high_halves(cb_lo, cb_hi);
  *cr = high_halves(cr_lo, cr_hi);
}

// Sixteen pixels: R, G and B as bytes → three rows of sixteen output samples.
ALWAYS_INLINE void ycc16(const ycc_constants *k, v128_t r, v128_t g, v128_t b, JSAMPROW out0, JSAMPROW out1,
                         JSAMPROW out2) {
  // (R, G) and (B, G) byte pairs, zero-extended to 16 bits: 4 pixels per vector.
  v128_t rg0 = wasm_i8x16_shuffle(r, g, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  v128_t rg1 = wasm_i8x16_shuffle(r, g, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  v128_t bg0 = wasm_i8x16_shuffle(b, g, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  v128_t bg1 = wasm_i8x16_shuffle(b, g, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  v128_t y0, cb0, cr0, y1, cb1, cr1;
  ycc8(k, wasm_u16x8_extend_low_u8x16(rg0), wasm_u16x8_extend_high_u8x16(rg0), wasm_u16x8_extend_low_u8x16(bg0),
       wasm_u16x8_extend_high_u8x16(bg0), wasm_u16x8_extend_low_u8x16(r), wasm_u16x8_extend_low_u8x16(b), &y0,
       &cb0, &cr0);
  ycc8(k, wasm_u16x8_extend_low_u8x16(rg1), wasm_u16x8_extend_high_u8x16(rg1), wasm_u16x8_extend_low_u8x16(bg1),
       wasm_u16x8_extend_high_u8x16(bg1), wasm_u16x8_extend_high_u8x16(r), wasm_u16x8_extend_high_u8x16(b), &y1,
       &cb1, &cr1);
  wasm_v128_store(out0, wasm_u8x16_narrow_i16x8(y0, y1));
  wasm_v128_store(out1, wasm_u8x16_narrow_i16x8(cb0, cb1));
  wasm_v128_store(out2, wasm_u8x16_narrow_i16x8(cr0, cr1));
}

// Deinterleaving 16 pixels: each group of 4 pixels (one load) is shuffled to [R0..R3 G0..G3 B0..B3 ····] (a single-
// operand byte shuffle, one pshufb), then a 4×4 transpose of 32-bit lanes (unpacks) gives R, G and B. V8 compiles
// two-operand byte shuffles to two pshufb, two constant loads and an or, which made direct deinterleaving the most
// expensive part of the conversion. `o` is where the first pixel starts in the vector.
#define GROUP(v, size, o, ri, gi, bi)                                                                                \
  wasm_i8x16_shuffle(v, v, (o) + (ri), (o) + (size) + (ri), (o) + 2 * (size) + (ri), (o) + 3 * (size) + (ri),        \
                     (o) + (gi), (o) + (size) + (gi), (o) + 2 * (size) + (gi), (o) + 3 * (size) + (gi), (o) + (bi),   \
                     (o) + (size) + (bi), (o) + 2 * (size) + (bi), (o) + 3 * (size) + (bi), 0, 0, 0, 0)

ALWAYS_INLINE void transpose_groups(v128_t q0, v128_t q1, v128_t q2, v128_t q3, v128_t *r, v128_t *g, v128_t *b) {
  v128_t t0 = wasm_i32x4_shuffle(q0, q1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(q2, q3, 0, 4, 1, 5);
  v128_t t2 = wasm_i32x4_shuffle(q0, q1, 2, 6, 3, 7), t3 = wasm_i32x4_shuffle(q2, q3, 2, 6, 3, 7);
  *r = wasm_i64x2_shuffle(t0, t1, 0, 2);
  *g = wasm_i64x2_shuffle(t0, t1, 1, 3);
  *b = wasm_i64x2_shuffle(t2, t3, 0, 2);
}

// What the C code computes for one pixel, for the last (width mod 16) pixels of a row.
ALWAYS_INLINE void ycc1(int r, int g, int b, JSAMPLE *y, JSAMPLE *cb, JSAMPLE *cr) {
  *y = (JSAMPLE)((F_0_299 * r + (F_0_337 + F_0_250) * g + F_0_114 * b + (1 << 15)) >> 16);
  *cb = (JSAMPLE)((-F_0_168 * r - F_0_331 * g + 32768 * b + (128 << 16) + (1 << 15) - 1) >> 16);
  *cr = (JSAMPLE)((32768 * r - F_0_418 * g - F_0_081 * b + (128 << 16) + (1 << 15) - 1) >> 16);
}

// 16 pixels of `size` bytes at `in`: 48 bytes in four loads at 0, 12, 24 and 32 (the last group 4 bytes into it, so
// nothing past the pixels is read), or 64 bytes in four loads.
#define DEINTERLEAVE16(in, size, ri, gi, bi, r, g, b)                                                              \
  if ((size) == 3) {                                                                                               \
    transpose_groups(GROUP(wasm_v128_load(in), 3, 0, ri, gi, bi), GROUP(wasm_v128_load((in) + 12), 3, 0, ri, gi, bi), \
                     GROUP(wasm_v128_load((in) + 24), 3, 0, ri, gi, bi),                                           \
                     GROUP(wasm_v128_load((in) + 32), 3, 4, ri, gi, bi), r, g, b);                                 \
  } else {                                                                                                         \
    transpose_groups(GROUP(wasm_v128_load(in), 4, 0, ri, gi, bi), GROUP(wasm_v128_load((in) + 16), 4, 0, ri, gi, bi), \
                     GROUP(wasm_v128_load((in) + 32), 4, 0, ri, gi, bi),                                           \
                     GROUP(wasm_v128_load((in) + 48), 4, 0, ri, gi, bi), r, g, b);                                 \
  }

#define DEFINE_YCC(name, size, ri, gi, bi)                                                                          \
  static void name(JDIMENSION width, JSAMPARRAY input_buf, JSAMPIMAGE output_buf, JDIMENSION output_row,           \
                   int num_rows) {                                                                                 \
    const ycc_constants k = load_ycc_constants();                                                                  \
    while (--num_rows >= 0) {                                                                                      \
      const JSAMPLE *in = *input_buf++;                                                                            \
      JSAMPROW out0 = output_buf[0][output_row], out1 = output_buf[1][output_row],                                 \
               out2 = output_buf[2][output_row];                                                                   \
      output_row++;                                                                                                \
      JDIMENSION col = 0;                                                                                          \
      for (; col + 16 <= width; col += 16, in += 16 * (size)) {                                                    \
        v128_t r, g, b;                                                                                            \
        DEINTERLEAVE16(in, size, ri, gi, bi, &r, &g, &b)                                                           \
        ycc16(&k, r, g, b, out0 + col, out1 + col, out2 + col);                                                    \
      }                                                                                                            \
      for (; col < width; col++, in += (size)) ycc1(in[ri], in[gi], in[bi], out0 + col, out1 + col, out2 + col);   \
    }                                                                                                              \
  }

DEFINE_YCC(ycc_rgb, 3, 0, 1, 2)
DEFINE_YCC(ycc_bgr, 3, 2, 1, 0)
DEFINE_YCC(ycc_rgbx, 4, 0, 1, 2)
DEFINE_YCC(ycc_bgrx, 4, 2, 1, 0)
DEFINE_YCC(ycc_xbgr, 4, 3, 2, 1)
DEFINE_YCC(ycc_xrgb, 4, 1, 2, 3)

GLOBAL(int) jsimd_can_rgb_ycc(void) { return BITS_IN_JSAMPLE == 8; }

GLOBAL(void) jsimd_rgb_ycc_convert(j_compress_ptr cinfo, JSAMPARRAY input_buf, JSAMPIMAGE output_buf,
                                   JDIMENSION output_row, int num_rows) {
  void (*convert)(JDIMENSION, JSAMPARRAY, JSAMPIMAGE, JDIMENSION, int);
  switch (cinfo->in_color_space) {
    case JCS_EXT_RGBX:
    case JCS_EXT_RGBA:
      convert = ycc_rgbx;
      break;
    case JCS_EXT_BGR:
      convert = ycc_bgr;
      break;
    case JCS_EXT_BGRX:
    case JCS_EXT_BGRA:
      convert = ycc_bgrx;
      break;
    case JCS_EXT_XBGR:
    case JCS_EXT_ABGR:
      convert = ycc_xbgr;
      break;
    case JCS_EXT_XRGB:
    case JCS_EXT_ARGB:
      convert = ycc_xrgb;
      break;
    default:
      convert = ycc_rgb;
      break;
  }
  convert(cinfo->image_width, input_buf, output_buf, output_row, num_rows);
}

GLOBAL(int) jsimd_can_rgb_gray(void) { return 0; }

GLOBAL(void) jsimd_rgb_gray_convert(j_compress_ptr cinfo, JSAMPARRAY input_buf, JSAMPIMAGE output_buf,
                                    JDIMENSION output_row, int num_rows) {
  (void)cinfo, (void)input_buf, (void)output_buf, (void)output_row, (void)num_rows;
}

// --- 2×2 downsampling (jcsample.c h2v2_downsample) ----------------------------------------------------------------
//
// out = (a + b + c + d + bias) >> 2 with bias 1, 2, 1, 2, … after padding each row by repeating its last pixel up to
// twice the output width (expand_right_edge; the rows are allocated that wide).

GLOBAL(int) jsimd_can_h2v2_downsample(void) { return BITS_IN_JSAMPLE == 8 && DCTSIZE == 8; }

GLOBAL(void) jsimd_h2v2_downsample(j_compress_ptr cinfo, jpeg_component_info *compptr, JSAMPARRAY input_data,
                                   JSAMPARRAY output_data) {
  const JDIMENSION blocks = compptr->width_in_blocks;
  const JDIMENSION padded = blocks * DCTSIZE * 2;
  if (padded > cinfo->image_width) {
    for (int row = 0; row < cinfo->max_v_samp_factor; row++) {
      JSAMPROW p = input_data[row] + cinfo->image_width;
      memset(p, p[-1], padded - cinfo->image_width);
    }
  }
  const v128_t bias = wasm_i16x8_make(1, 2, 1, 2, 1, 2, 1, 2);
  for (int outrow = 0; outrow < compptr->v_samp_factor; outrow++) {
    const JSAMPLE *in0 = input_data[outrow * 2], *in1 = input_data[outrow * 2 + 1];
    JSAMPROW out = output_data[outrow];
    JDIMENSION i = 0;
    for (; i + 2 <= blocks; i += 2) {
      v128_t a = wasm_i16x8_add(wasm_u16x8_extadd_pairwise_u8x16(wasm_v128_load(in0 + i * 16)),
                                wasm_u16x8_extadd_pairwise_u8x16(wasm_v128_load(in1 + i * 16)));
      v128_t b = wasm_i16x8_add(wasm_u16x8_extadd_pairwise_u8x16(wasm_v128_load(in0 + i * 16 + 16)),
                                wasm_u16x8_extadd_pairwise_u8x16(wasm_v128_load(in1 + i * 16 + 16)));
      a = wasm_u16x8_shr(wasm_i16x8_add(a, bias), 2);
      b = wasm_u16x8_shr(wasm_i16x8_add(b, bias), 2);
      wasm_v128_store(out + i * 8, wasm_u8x16_narrow_i16x8(a, b));
    }
    if (i < blocks) {
      v128_t a = wasm_i16x8_add(wasm_u16x8_extadd_pairwise_u8x16(wasm_v128_load(in0 + i * 16)),
                                wasm_u16x8_extadd_pairwise_u8x16(wasm_v128_load(in1 + i * 16)));
      a = wasm_u16x8_shr(wasm_i16x8_add(a, bias), 2);
      wasm_v128_store64_lane(out + i * 8, wasm_u8x16_narrow_i16x8(a, a), 0);
    }
  }
}

GLOBAL(int) jsimd_can_h2v1_downsample(void) { return 0; }

GLOBAL(void) jsimd_h2v1_downsample(j_compress_ptr cinfo, jpeg_component_info *compptr, JSAMPARRAY input_data,
                                   JSAMPARRAY output_data) {
  (void)cinfo, (void)compptr, (void)input_data, (void)output_data;
}

// --- Sample conversion (jcdctmgr.c convsamp): an 8×8 block of samples minus 128, as 16-bit DCT input --------------

GLOBAL(int) jsimd_can_convsamp(void) { return BITS_IN_JSAMPLE == 8 && DCTSIZE == 8 && sizeof(DCTELEM) == 2; }

GLOBAL(void) jsimd_convsamp(JSAMPARRAY sample_data, JDIMENSION start_col, DCTELEM *workspace) {
  const v128_t center = wasm_i16x8_splat(CENTERJSAMPLE);
  for (int row = 0; row < DCTSIZE; row++) {
    wasm_v128_store(workspace + row * DCTSIZE,
                    wasm_i16x8_sub(wasm_u16x8_load8x8(sample_data[row] + start_col), center));
  }
}

GLOBAL(int) jsimd_can_convsamp_float(void) { return 0; }

GLOBAL(void) jsimd_convsamp_float(JSAMPARRAY sample_data, JDIMENSION start_col, FAST_FLOAT *workspace) {
  (void)sample_data, (void)start_col, (void)workspace;
}

// --- Forward DCT, accurate integer method (jfdctint.c) ---------------------------------------------------------------
//
// Both passes of jpeg_fdct_islow on eight rows (then eight columns) at once, one vector per coefficient index. The
// products are regrouped into pairs for i32x4.dot_i16x8_s as simd/x86_64/jfdctint-sse2.asm does; the sums are the same
// integers, so the descaled results are too.

#define CONST_BITS 13
#define PASS1_BITS 2
#define FIX_0_298631336 2446
#define FIX_0_390180644 3196
#define FIX_0_541196100 4433
#define FIX_0_765366865 6270
#define FIX_0_899976223 7373
#define FIX_1_175875602 9633
#define FIX_1_501321110 12299
#define FIX_1_847759065 15137
#define FIX_1_961570560 16069
#define FIX_2_053119869 16819
#define FIX_2_562915447 20995
#define FIX_3_072711026 25172

ALWAYS_INLINE v128_t pair16(int a, int b) { return wasm_i16x8_make(a, b, a, b, a, b, a, b); }

ALWAYS_INLINE v128_t interleave_lo16(v128_t a, v128_t b) {
  return wasm_i16x8_shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11);
}

ALWAYS_INLINE v128_t interleave_hi16(v128_t a, v128_t b) {
  return wasm_i16x8_shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15);
}

// (x + 2^(n−1)) >> n of two 32-bit halves, packed back into 16 bits.
ALWAYS_INLINE v128_t descale(v128_t lo, v128_t hi, int n) {
  const v128_t round = wasm_i32x4_splat(1 << (n - 1));
  return wasm_i16x8_narrow_i32x4(wasm_i32x4_shr(wasm_i32x4_add(lo, round), n),
                                 wasm_i32x4_shr(wasm_i32x4_add(hi, round), n));
}

ALWAYS_INLINE void transpose8x8(v128_t d[8]) {
  v128_t a0 = wasm_i16x8_shuffle(d[0], d[1], 0, 8, 1, 9, 2, 10, 3, 11);
  v128_t a1 = wasm_i16x8_shuffle(d[0], d[1], 4, 12, 5, 13, 6, 14, 7, 15);
  v128_t a2 = wasm_i16x8_shuffle(d[2], d[3], 0, 8, 1, 9, 2, 10, 3, 11);
  v128_t a3 = wasm_i16x8_shuffle(d[2], d[3], 4, 12, 5, 13, 6, 14, 7, 15);
  v128_t a4 = wasm_i16x8_shuffle(d[4], d[5], 0, 8, 1, 9, 2, 10, 3, 11);
  v128_t a5 = wasm_i16x8_shuffle(d[4], d[5], 4, 12, 5, 13, 6, 14, 7, 15);
  v128_t a6 = wasm_i16x8_shuffle(d[6], d[7], 0, 8, 1, 9, 2, 10, 3, 11);
  v128_t a7 = wasm_i16x8_shuffle(d[6], d[7], 4, 12, 5, 13, 6, 14, 7, 15);
  v128_t b0 = wasm_i32x4_shuffle(a0, a2, 0, 4, 1, 5);
  v128_t b1 = wasm_i32x4_shuffle(a0, a2, 2, 6, 3, 7);
  v128_t b2 = wasm_i32x4_shuffle(a1, a3, 0, 4, 1, 5);
  v128_t b3 = wasm_i32x4_shuffle(a1, a3, 2, 6, 3, 7);
  v128_t b4 = wasm_i32x4_shuffle(a4, a6, 0, 4, 1, 5);
  v128_t b5 = wasm_i32x4_shuffle(a4, a6, 2, 6, 3, 7);
  v128_t b6 = wasm_i32x4_shuffle(a5, a7, 0, 4, 1, 5);
  v128_t b7 = wasm_i32x4_shuffle(a5, a7, 2, 6, 3, 7);
  d[0] = wasm_i64x2_shuffle(b0, b4, 0, 2);
  d[1] = wasm_i64x2_shuffle(b0, b4, 1, 3);
  d[2] = wasm_i64x2_shuffle(b1, b5, 0, 2);
  d[3] = wasm_i64x2_shuffle(b1, b5, 1, 3);
  d[4] = wasm_i64x2_shuffle(b2, b6, 0, 2);
  d[5] = wasm_i64x2_shuffle(b2, b6, 1, 3);
  d[6] = wasm_i64x2_shuffle(b3, b7, 0, 2);
  d[7] = wasm_i64x2_shuffle(b3, b7, 1, 3);
}

// One pass of jpeg_fdct_islow over eight lines at once: d[k] holds coefficient k of each line. `shift` is the
// descaling of the multiplied outputs, `first` selects pass 1 (outputs 0 and 4 scaled up by PASS1_BITS) or pass 2
// (scaled down, rounded).
ALWAYS_INLINE void fdct_pass(v128_t d[8], int shift, int first) {
  v128_t tmp0 = wasm_i16x8_add(d[0], d[7]), tmp7 = wasm_i16x8_sub(d[0], d[7]);
  v128_t tmp1 = wasm_i16x8_add(d[1], d[6]), tmp6 = wasm_i16x8_sub(d[1], d[6]);
  v128_t tmp2 = wasm_i16x8_add(d[2], d[5]), tmp5 = wasm_i16x8_sub(d[2], d[5]);
  v128_t tmp3 = wasm_i16x8_add(d[3], d[4]), tmp4 = wasm_i16x8_sub(d[3], d[4]);

  v128_t tmp10 = wasm_i16x8_add(tmp0, tmp3), tmp13 = wasm_i16x8_sub(tmp0, tmp3);
  v128_t tmp11 = wasm_i16x8_add(tmp1, tmp2), tmp12 = wasm_i16x8_sub(tmp1, tmp2);

  if (first) {
    d[0] = wasm_i16x8_shl(wasm_i16x8_add(tmp10, tmp11), PASS1_BITS);
    d[4] = wasm_i16x8_shl(wasm_i16x8_sub(tmp10, tmp11), PASS1_BITS);
  } else {
    const v128_t round = wasm_i16x8_splat(1 << (PASS1_BITS - 1));
    d[0] = wasm_i16x8_shr(wasm_i16x8_add(wasm_i16x8_add(tmp10, tmp11), round), PASS1_BITS);
    d[4] = wasm_i16x8_shr(wasm_i16x8_add(wasm_i16x8_sub(tmp10, tmp11), round), PASS1_BITS);
  }

  // out2 = tmp13·(c1 + c2) + tmp12·c1, out6 = tmp13·c1 + tmp12·(c1 − c3), c1 = 0.541196100, c2 = 0.765366865,
  // c3 = 1.847759065 (z1 = (tmp12 + tmp13)·c1 distributed).
  v128_t t1312_lo = interleave_lo16(tmp13, tmp12), t1312_hi = interleave_hi16(tmp13, tmp12);
  const v128_t k2 = pair16(FIX_0_541196100 + FIX_0_765366865, FIX_0_541196100);
  const v128_t k6 = pair16(FIX_0_541196100, FIX_0_541196100 - FIX_1_847759065);
  d[2] = descale(wasm_i32x4_dot_i16x8(t1312_lo, k2), wasm_i32x4_dot_i16x8(t1312_hi, k2), shift);
  d[6] = descale(wasm_i32x4_dot_i16x8(t1312_lo, k6), wasm_i32x4_dot_i16x8(t1312_hi, k6), shift);

  // Odd part, with z1…z5 distributed the same way:
  //   z3' = z3·(c1175 − c1961) + z4·c1175,   z4' = z3·c1175 + z4·(c1175 − c0390)   (z3 = tmp4 + tmp6, z4 = tmp5 + tmp7)
  //   tmp4' = tmp4·(c0298 − c0899) − tmp7·c0899,   tmp7' = −tmp4·c0899 + tmp7·(c1501 − c0899)
  //   tmp5' = tmp5·(c2053 − c2562) − tmp6·c2562,   tmp6' = −tmp5·c2562 + tmp6·(c3072 − c2562)
  //   out7 = tmp4' + z3', out5 = tmp5' + z4', out3 = tmp6' + z3', out1 = tmp7' + z4'
  v128_t z3 = wasm_i16x8_add(tmp4, tmp6), z4 = wasm_i16x8_add(tmp5, tmp7);
  v128_t z34_lo = interleave_lo16(z3, z4), z34_hi = interleave_hi16(z3, z4);
  const v128_t kz3 = pair16(FIX_1_175875602 - FIX_1_961570560, FIX_1_175875602);
  const v128_t kz4 = pair16(FIX_1_175875602, FIX_1_175875602 - FIX_0_390180644);
  v128_t z3_lo = wasm_i32x4_dot_i16x8(z34_lo, kz3), z3_hi = wasm_i32x4_dot_i16x8(z34_hi, kz3);
  v128_t z4_lo = wasm_i32x4_dot_i16x8(z34_lo, kz4), z4_hi = wasm_i32x4_dot_i16x8(z34_hi, kz4);

  v128_t t47_lo = interleave_lo16(tmp4, tmp7), t47_hi = interleave_hi16(tmp4, tmp7);
  const v128_t k4 = pair16(FIX_0_298631336 - FIX_0_899976223, -FIX_0_899976223);
  const v128_t k7 = pair16(-FIX_0_899976223, FIX_1_501321110 - FIX_0_899976223);
  v128_t t56_lo = interleave_lo16(tmp5, tmp6), t56_hi = interleave_hi16(tmp5, tmp6);
  const v128_t k5 = pair16(FIX_2_053119869 - FIX_2_562915447, -FIX_2_562915447);
  const v128_t k6o = pair16(-FIX_2_562915447, FIX_3_072711026 - FIX_2_562915447);

  d[7] = descale(wasm_i32x4_add(wasm_i32x4_dot_i16x8(t47_lo, k4), z3_lo),
                 wasm_i32x4_add(wasm_i32x4_dot_i16x8(t47_hi, k4), z3_hi), shift);
  d[1] = descale(wasm_i32x4_add(wasm_i32x4_dot_i16x8(t47_lo, k7), z4_lo),
                 wasm_i32x4_add(wasm_i32x4_dot_i16x8(t47_hi, k7), z4_hi), shift);
  d[5] = descale(wasm_i32x4_add(wasm_i32x4_dot_i16x8(t56_lo, k5), z4_lo),
                 wasm_i32x4_add(wasm_i32x4_dot_i16x8(t56_hi, k5), z4_hi), shift);
  d[3] = descale(wasm_i32x4_add(wasm_i32x4_dot_i16x8(t56_lo, k6o), z3_lo),
                 wasm_i32x4_add(wasm_i32x4_dot_i16x8(t56_hi, k6o), z3_hi), shift);
}

GLOBAL(int) jsimd_can_fdct_islow(void) { return DCTSIZE == 8 && sizeof(DCTELEM) == 2; }

GLOBAL(void) jsimd_fdct_islow(DCTELEM *data) {
  v128_t d[8];
  for (int i = 0; i < 8; i++) d[i] = wasm_v128_load(data + i * DCTSIZE);
  // Pass 1 works along rows: one vector per column index, holding that column of every row.
  transpose8x8(d);
  fdct_pass(d, CONST_BITS - PASS1_BITS, 1);
  // Pass 2 works along columns: back to one vector per row.
  transpose8x8(d);
  fdct_pass(d, CONST_BITS + PASS1_BITS, 0);
  for (int i = 0; i < 8; i++) wasm_v128_store(data + i * DCTSIZE, d[i]);
}

GLOBAL(int) jsimd_can_fdct_ifast(void) { return 0; }

GLOBAL(int) jsimd_can_fdct_float(void) { return 0; }

GLOBAL(void) jsimd_fdct_ifast(DCTELEM *data) { (void)data; }

GLOBAL(void) jsimd_fdct_float(FAST_FLOAT *data) { (void)data; }

// --- Quantisation (jcdctmgr.c quantize) ------------------------------------------------------------------------------
//
// |x| + correction, times the reciprocal, keeping the upper 16 bits, then times the scale 2^(16 − shift), keeping the
// upper 16 bits again: the C code's ((|x| + corr) · recip) >> (16 + shift), sign restored (as jquanti-sse2.asm).

ALWAYS_INLINE v128_t mulhi_u16(v128_t a, v128_t b) {
  return high_halves(wasm_u32x4_extmul_low_u16x8(a, b), wasm_u32x4_extmul_high_u16x8(a, b));
}

GLOBAL(int) jsimd_can_quantize(void) { return DCTSIZE == 8 && sizeof(JCOEF) == 2 && sizeof(DCTELEM) == 2; }

GLOBAL(void) jsimd_quantize(JCOEFPTR coef_block, DCTELEM *divisors, DCTELEM *workspace) {
  for (int i = 0; i < DCTSIZE2; i += 8) {
    v128_t x = wasm_v128_load(workspace + i);
    v128_t sign = wasm_i16x8_shr(x, 15);
    v128_t a = wasm_i16x8_add(wasm_i16x8_abs(x), wasm_v128_load(divisors + DCTSIZE2 + i));
    a = mulhi_u16(a, wasm_v128_load(divisors + i));
    a = mulhi_u16(a, wasm_v128_load(divisors + DCTSIZE2 * 2 + i));
    wasm_v128_store(coef_block + i, wasm_i16x8_sub(wasm_v128_xor(a, sign), sign));
  }
}

GLOBAL(int) jsimd_can_quantize_float(void) { return 0; }

GLOBAL(void) jsimd_quantize_float(JCOEFPTR coef_block, FAST_FLOAT *divisors, FAST_FLOAT *workspace) {
  (void)coef_block, (void)divisors, (void)workspace;
}

// --- Huffman coding of one block (jchuff.c encode_one_block) -------------------------------------------------------
//
// The coefficients are put in zigzag order, then SIMD finds every coefficient's bit count, its value bits, and which
// ones are not zero (a 64-bit mask); the bit loop visits only those, so runs of zeros cost nothing. The bit buffer is
// jchuff.c's: 64 bits (simd_bit_buf_type), `free_bits` of them free, flushed with 0xFF stuffing the same way.

// jchuff.c's private working state, whose layout this must repeat (WITH_SIMD, not Arm: 64-bit SIMD bit buffer).
typedef struct {
  union {
    size_t c;
    unsigned long long simd;
  } put_buffer;
  int free_bits;
  int last_dc_val[MAX_COMPS_IN_SCAN];
} savable_state;

typedef struct {
  JOCTET *next_output_byte;
  size_t free_in_buffer;
  savable_state cur;
  j_compress_ptr cinfo;
  int simd;
} working_state;

#define EMIT_BYTE(b)                      \
  {                                       \
    buffer[0] = (JOCTET)(b);              \
    buffer[1] = 0;                        \
    buffer -= -2 + ((JOCTET)(b) < 0xFF);  \
  }

// The rare case of a 0xFF byte among the eight (each is followed by a stuffed 0), kept out of line so that the bit loop
// holds fewer values in registers.
static __attribute__((noinline)) JOCTET *flush_stuffed(JOCTET *buffer, uint64_t put_buffer) {
  for (int shift = 56; shift >= 0; shift -= 8) EMIT_BYTE(put_buffer >> shift)
  return buffer;
}

#define FLUSH()                                                                                          \
  {                                                                                                      \
    if (put_buffer & 0x8080808080808080ULL & ~(put_buffer + 0x0101010101010101ULL)) {                   \
      buffer = flush_stuffed(buffer, put_buffer);                                                        \
    } else {                                                                                             \
      wasm_v128_store64_lane(buffer, wasm_i8x16_swizzle(wasm_i64x2_splat(put_buffer), bswap64), 0);     \
      buffer += 8;                                                                                       \
    }                                                                                                    \
  }

#define PUT_BITS(code, size)                                                    \
  {                                                                             \
    free_bits -= (size);                                                        \
    if (free_bits < 0) {                                                        \
      put_buffer = (put_buffer << ((size) + free_bits)) | ((code) >> -free_bits); \
      FLUSH()                                                                   \
      free_bits += 64;                                                          \
      put_buffer = (code);                                                      \
    } else {                                                                    \
      put_buffer = (put_buffer << (size)) | (code);                             \
    }                                                                           \
  }

// Zigzag position → natural (row-major) index, as jpeg_natural_order (jutils.c) without its 16 padding entries.
static const uint8_t natural_order[DCTSIZE2] = {
  0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
  41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
  30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

GLOBAL(int) jsimd_can_huff_encode_one_block(void) { return DCTSIZE == 8 && sizeof(JCOEF) == 2; }

GLOBAL(JOCTET *) jsimd_huff_encode_one_block(void *state_ptr, JOCTET *buffer, JCOEFPTR block, int last_dc_val,
                                             c_derived_tbl *dctbl, c_derived_tbl *actbl) {
  working_state *state = (working_state *)state_ptr;
  const v128_t bswap64 = wasm_i8x16_make(7, 6, 5, 4, 3, 2, 1, 0, 8, 9, 10, 11, 12, 13, 14, 15);
  uint64_t put_buffer = state->cur.put_buffer.simd;
  int free_bits = state->cur.free_bits;

  JCOEF zz[DCTSIZE2] __attribute__((aligned(16)));
  uint32_t packed[DCTSIZE2] __attribute__((aligned(16)));
  zz[0] = 0;
  for (int k = 1; k < DCTSIZE2; k++) zz[k] = block[natural_order[k]];

  // Per coefficient: n = bit count of |x| (popcount of |x| with every bit below its top bit set) and the n low bits of
  // x (x ≥ 0) or x − 1 (x < 0); per 16 coefficients, a bit mask of those not zero.
  uint64_t nonzero = 0;
  for (int i = 0; i < DCTSIZE2; i += 16) {
    v128_t x0 = wasm_v128_load(zz + i), x1 = wasm_v128_load(zz + i + 8);
    v128_t m0 = wasm_i16x8_abs(x0), m1 = wasm_i16x8_abs(x1);
    m0 = wasm_v128_or(m0, wasm_u16x8_shr(m0, 1));
    m1 = wasm_v128_or(m1, wasm_u16x8_shr(m1, 1));
    m0 = wasm_v128_or(m0, wasm_u16x8_shr(m0, 2));
    m1 = wasm_v128_or(m1, wasm_u16x8_shr(m1, 2));
    m0 = wasm_v128_or(m0, wasm_u16x8_shr(m0, 4));
    m1 = wasm_v128_or(m1, wasm_u16x8_shr(m1, 4));
    m0 = wasm_v128_or(m0, wasm_u16x8_shr(m0, 8));
    m1 = wasm_v128_or(m1, wasm_u16x8_shr(m1, 8));
    v128_t n0 = wasm_u16x8_extadd_pairwise_u8x16(wasm_i8x16_popcnt(m0));
    v128_t n1 = wasm_u16x8_extadd_pairwise_u8x16(wasm_i8x16_popcnt(m1));
    v128_t b0 = wasm_v128_and(wasm_i16x8_add(x0, wasm_i16x8_shr(x0, 15)), m0);
    v128_t b1 = wasm_v128_and(wasm_i16x8_add(x1, wasm_i16x8_shr(x1, 15)), m1);
    wasm_v128_store(packed + i, wasm_i16x8_shuffle(b0, n0, 0, 8, 1, 9, 2, 10, 3, 11));
    wasm_v128_store(packed + i + 4, wasm_i16x8_shuffle(b0, n0, 4, 12, 5, 13, 6, 14, 7, 15));
    wasm_v128_store(packed + i + 8, wasm_i16x8_shuffle(b1, n1, 0, 8, 1, 9, 2, 10, 3, 11));
    wasm_v128_store(packed + i + 12, wasm_i16x8_shuffle(b1, n1, 4, 12, 5, 13, 6, 14, 7, 15));
    v128_t zero = wasm_i8x16_narrow_i16x8(wasm_i16x8_eq(x0, wasm_i16x8_splat(0)),
                                          wasm_i16x8_eq(x1, wasm_i16x8_splat(0)));
    nonzero |= (uint64_t)(~wasm_i8x16_bitmask(zero) & 0xFFFF) << i;
  }

  // DC: the difference from the previous block's DC (jchuff.c's branch-free absolute value, then its bit count).
  int temp = block[0] - last_dc_val;
  int n = temp >> (CHAR_BIT * sizeof(int) - 1);
  temp += n;
  n ^= temp;
  n = n ? 32 - __builtin_clz((unsigned)n) : 0;
  {
    uint64_t code = ((uint64_t)dctbl->ehufco[n] << n) | ((uint64_t)temp & ((1ULL << n) - 1));
    PUT_BITS(code, dctbl->ehufsi[n] + n)
  }

  // AC: each nonzero coefficient after its run of zeros (runs of 16 or more as ZRL codes first), then EOB when the
  // block ends in zeros.
  nonzero &= ~1ULL;
  int last = 0;
  while (nonzero) {
    int k = __builtin_ctzll(nonzero);
    nonzero &= nonzero - 1;
    int run = k - last - 1;
    last = k;
    while (run >= 16) {
      PUT_BITS((uint64_t)actbl->ehufco[0xF0], actbl->ehufsi[0xF0])
      run -= 16;
    }
    uint32_t v = packed[k];
    int nb = v >> 16;
    int s = (run << 4) + nb;
    uint64_t code = ((uint64_t)actbl->ehufco[s] << nb) | (v & 0xFFFF);
    PUT_BITS(code, actbl->ehufsi[s] + nb)
  }
  if (last < DCTSIZE2 - 1) PUT_BITS((uint64_t)actbl->ehufco[0], actbl->ehufsi[0])

  state->cur.put_buffer.simd = put_buffer;
  state->cur.free_bits = free_bits;
  return buffer;
}
