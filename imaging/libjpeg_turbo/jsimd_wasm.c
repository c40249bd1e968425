// libjpeg-turbo's SIMD hooks (jsimd.h) in WASM SIMD128, for the compressor and the decompressor: the stages that
// dominate their C code's profiles. Compressor: colour conversion, 2×2 downsampling, sample conversion, the islow DCT,
// quantisation, Huffman coding of a block. Decompressor: the islow inverse DCT, YCbCr → RGB(A), h2v1 and h2v2 fancy
// upsampling (Huffman decoding stays C, as in libjpeg-turbo). Each computes exactly what the C code computes
// (libjpeg-turbo's own SIMD code is held to the same rule), so files and pixels are libjpeg-turbo's.
//
// libjpeg-turbo's Arm Neon intrinsics would be the obvious source, but through SIMDe's Neon-to-WASM headers they run
// slower than the C code: the structure loads, 64-bit vectors and per-lane shifts they use have no WASM counterpart
// and become scalar loops through memory (docs/jpeg-encoder.md). These follow the shape of its x86 SSE2 code instead,
// whose operations WASM SIMD has (pmaddwd is i32x4.dot_i16x8_s, pmulhuw a widening multiply and a shuffle, pmulhrsw
// i16x8.q15mulr_sat_s).
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

// --- YCbCr → RGB (jdcolext.c) ----------------------------------------------------------------------------------------
//
// With cb = Cb − 128 and cr = Cr − 128, the C code's tables give
//   R = Y + ((91881 cr + 2^15) >> 16)
//   G = Y + ((−22554 cb − 46802 cr + 2^15) >> 16)
//   B = Y + ((116130 cb + 2^15) >> 16)
// clamped to 0…255. As in simd/x86_64/jdcolext-sse2.asm, 1.402 and 1.772 are split into whole parts (cr, 2 cb) and
// fractions, and −0.71414 into 0.28586 − 1, so that every product fits 16 bits:
//   R = Y + cr + ((26345 cr + 2^15) >> 16),  B = Y + 2 cb + ((−14942 cb + 2^15) >> 16),
//   G = Y − cr + ((−22554 cb + 18734 cr + 2^15) >> 16).
// The R and B fractions are one i16x8.q15mulr_sat_s (pmulhrsw) each: (13173 cr + 2^14) >> 15 and
// (−7471 cb + 2^14) >> 15 equal the two terms above for every cb, cr in −128…127. G's two products are summed before
// rounding, in 32 bits by i32x4.dot_i16x8_s (pmaddwd). The conversion was checked against the formulas above for all
// 2^24 (Y, Cb, Cr).

#define F_0_402_Q15 13173
#define F_0_228_Q15 7471
#define F_0_344 22554
#define F_0_285 18734

// Eight pixels: Y, cb and cr as 16-bit lanes (cb, cr centred) → R, G, B as 16-bit lanes, not yet clamped.
ALWAYS_INLINE void rgb8(v128_t y, v128_t cb, v128_t cr, v128_t k_g, v128_t *r, v128_t *g, v128_t *b) {
  *r = wasm_i16x8_add(wasm_i16x8_add(y, cr), wasm_i16x8_q15mulr_sat(cr, wasm_i16x8_splat(F_0_402_Q15)));
  *b = wasm_i16x8_add(wasm_i16x8_add(y, wasm_i16x8_add(cb, cb)),
                      wasm_i16x8_q15mulr_sat(cb, wasm_i16x8_splat(-F_0_228_Q15)));
  const v128_t half = wasm_i32x4_splat(1 << 15);
  v128_t lo = wasm_i32x4_shr(wasm_i32x4_add(wasm_i32x4_dot_i16x8(interleave_lo16(cb, cr), k_g), half), 16);
  v128_t hi = wasm_i32x4_shr(wasm_i32x4_add(wasm_i32x4_dot_i16x8(interleave_hi16(cb, cr), k_g), half), 16);
  *g = wasm_i16x8_add(wasm_i16x8_sub(y, cr), wasm_i16x8_narrow_i32x4(lo, hi));
}

// Sixteen pixels → R, G, B bytes.
ALWAYS_INLINE void rgb16(const JSAMPLE *y, const JSAMPLE *cb, const JSAMPLE *cr, v128_t k_g, v128_t *r, v128_t *g,
                         v128_t *b) {
  const v128_t center = wasm_i16x8_splat(CENTERJSAMPLE);
  v128_t vy = wasm_v128_load(y), vcb = wasm_v128_load(cb), vcr = wasm_v128_load(cr);
  v128_t r0, g0, b0, r1, g1, b1;
  rgb8(wasm_u16x8_extend_low_u8x16(vy), wasm_i16x8_sub(wasm_u16x8_extend_low_u8x16(vcb), center),
       wasm_i16x8_sub(wasm_u16x8_extend_low_u8x16(vcr), center), k_g, &r0, &g0, &b0);
  rgb8(wasm_u16x8_extend_high_u8x16(vy), wasm_i16x8_sub(wasm_u16x8_extend_high_u8x16(vcb), center),
       wasm_i16x8_sub(wasm_u16x8_extend_high_u8x16(vcr), center), k_g, &r1, &g1, &b1);
  *r = wasm_u8x16_narrow_i16x8(r0, r1);
  *g = wasm_u8x16_narrow_i16x8(g0, g1);
  *b = wasm_u8x16_narrow_i16x8(b0, b1);
}

// Sixteen RGBA pixels (A = 255) from R, G, B bytes: unpacks only, which V8 compiles to single instructions.
ALWAYS_INLINE void store_rgba16(JSAMPLE *out, v128_t r, v128_t g, v128_t b) {
  const v128_t a = wasm_i8x16_splat((int8_t)0xFF);
  v128_t rg_lo = wasm_i8x16_shuffle(r, g, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  v128_t rg_hi = wasm_i8x16_shuffle(r, g, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  v128_t ba_lo = wasm_i8x16_shuffle(b, a, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  v128_t ba_hi = wasm_i8x16_shuffle(b, a, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  wasm_v128_store(out, interleave_lo16(rg_lo, ba_lo));
  wasm_v128_store(out + 16, interleave_hi16(rg_lo, ba_lo));
  wasm_v128_store(out + 32, interleave_lo16(rg_hi, ba_hi));
  wasm_v128_store(out + 48, interleave_hi16(rg_hi, ba_hi));
}

GLOBAL(int) jsimd_can_ycc_rgb(void) { return BITS_IN_JSAMPLE == 8; }

GLOBAL(int) jsimd_can_ycc_rgb565(void) { return 0; }

GLOBAL(void) jsimd_ycc_rgb_convert(j_decompress_ptr cinfo, JSAMPIMAGE input_buf, JDIMENSION input_row,
                                   JSAMPARRAY output_buf, int num_rows) {
  const JDIMENSION width = cinfo->output_width;
  // Where R, G, B (and 0xFF in the fourth byte, as jdcolext.c writes) go, for whichever RGB layout was asked for.
  int size = 3, ri = 0, gi = 1, bi = 2, xi = -1;
  switch (cinfo->out_color_space) {
    case JCS_EXT_RGBX:
    case JCS_EXT_RGBA:
      size = 4, xi = 3;
      break;
    case JCS_EXT_BGR:
      ri = 2, bi = 0;
      break;
    case JCS_EXT_BGRX:
    case JCS_EXT_BGRA:
      size = 4, ri = 2, bi = 0, xi = 3;
      break;
    case JCS_EXT_XBGR:
    case JCS_EXT_ABGR:
      size = 4, ri = 3, gi = 2, bi = 1, xi = 0;
      break;
    case JCS_EXT_XRGB:
    case JCS_EXT_ARGB:
      size = 4, ri = 1, gi = 2, bi = 3, xi = 0;
      break;
    default:
      break;
  }
  const int rgba = size == 4 && ri == 0 && gi == 1 && bi == 2;
  const v128_t k_g = pair16(-F_0_344, F_0_285);
  while (--num_rows >= 0) {
    const JSAMPLE *y = input_buf[0][input_row], *cb = input_buf[1][input_row], *cr = input_buf[2][input_row];
    input_row++;
    JSAMPROW out = *output_buf++;
    JDIMENSION col = 0;
    if (rgba) {
      for (; col + 16 <= width; col += 16, out += 64) {
        v128_t r, g, b;
        rgb16(y + col, cb + col, cr + col, k_g, &r, &g, &b);
        store_rgba16(out, r, g, b);
      }
    }
    // The rest of the row (or all of it, for other layouts), computed 16 at a time: the input rows are allocated in
    // multiples of 64 samples (jmemmgr.c alloc_sarray), so reading past the last pixel stays within them.
    for (; col < width; col += 16) {
      uint8_t r[16], g[16], b[16];
      v128_t vr, vg, vb;
      rgb16(y + col, cb + col, cr + col, k_g, &vr, &vg, &vb);
      wasm_v128_store(r, vr);
      wasm_v128_store(g, vg);
      wasm_v128_store(b, vb);
      for (int i = 0; i < 16 && col + i < width; i++, out += size) {
        out[ri] = r[i];
        out[gi] = g[i];
        out[bi] = b[i];
        if (xi >= 0) out[xi] = MAXJSAMPLE;
      }
    }
  }
}

GLOBAL(void) jsimd_ycc_rgb565_convert(j_decompress_ptr cinfo, JSAMPIMAGE input_buf, JDIMENSION input_row,
                                      JSAMPARRAY output_buf, int num_rows) {
  (void)cinfo, (void)input_buf, (void)input_row, (void)output_buf, (void)num_rows;
}

// --- Fancy upsampling (jdsample.c h2v1_fancy_upsample, h2v2_fancy_upsample) ------------------------------------------
//
// Each output sample is 3/4 of the input sample it lies in plus 1/4 of its nearer neighbour, with the C code's biases;
// at the two ends of a row the neighbour is the sample itself, which the C code's special cases amount to. As in
// simd/arm/jdsample-neon.c, the first and last outputs are written separately and the vector loop, which starts one
// output in, may run past the row into its padding: jmemmgr.c rounds every sample row up to 64 samples (2 × ALIGN_SIZE)
// for the SIMD upsamplers' sake.

// 32 outputs from the 17 samples at `in` (the C code's middle case): outputs 2i + 1 and 2i + 2 from in[i] and
// in[i + 1], `bias_odd`/`bias_even` added before the shift. `a` and `b` are in[i] and in[i + 1] weighted (as 16-bit
// lanes, low and high halves): a single sample for h2v1, a column sum for h2v2.
ALWAYS_INLINE void store_upsampled32(JSAMPROW out, v128_t a_lo, v128_t a_hi, v128_t b_lo, v128_t b_hi, v128_t bias_odd,
                                     v128_t bias_even, int shift) {
  v128_t sum_lo = wasm_i16x8_add(a_lo, b_lo), sum_hi = wasm_i16x8_add(a_hi, b_hi);
  // 3a + b and 3b + a as (a + b) + 2a and (a + b) + 2b.
  v128_t odd_lo = wasm_u16x8_shr(wasm_i16x8_add(wasm_i16x8_add(sum_lo, wasm_i16x8_shl(a_lo, 1)), bias_odd), shift);
  v128_t odd_hi = wasm_u16x8_shr(wasm_i16x8_add(wasm_i16x8_add(sum_hi, wasm_i16x8_shl(a_hi, 1)), bias_odd), shift);
  v128_t even_lo = wasm_u16x8_shr(wasm_i16x8_add(wasm_i16x8_add(sum_lo, wasm_i16x8_shl(b_lo, 1)), bias_even), shift);
  v128_t even_hi = wasm_u16x8_shr(wasm_i16x8_add(wasm_i16x8_add(sum_hi, wasm_i16x8_shl(b_hi, 1)), bias_even), shift);
  v128_t odd = wasm_u8x16_narrow_i16x8(odd_lo, odd_hi), even = wasm_u8x16_narrow_i16x8(even_lo, even_hi);
  wasm_v128_store(out, wasm_i8x16_shuffle(odd, even, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
  wasm_v128_store(out + 16,
                  wasm_i8x16_shuffle(odd, even, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
}

ALWAYS_INLINE void h2v1_16(const JSAMPLE *in, JSAMPROW out, v128_t two, v128_t one) {
  v128_t s0 = wasm_v128_load(in), s1 = wasm_v128_load(in + 1);
  store_upsampled32(out, wasm_u16x8_extend_low_u8x16(s0), wasm_u16x8_extend_high_u8x16(s0),
                    wasm_u16x8_extend_low_u8x16(s1), wasm_u16x8_extend_high_u8x16(s1), two, one, 2);
}

GLOBAL(int) jsimd_can_h2v1_fancy_upsample(void) { return BITS_IN_JSAMPLE == 8; }

GLOBAL(void) jsimd_h2v1_fancy_upsample(j_decompress_ptr cinfo, jpeg_component_info *compptr, JSAMPARRAY input_data,
                                       JSAMPARRAY *output_data_ptr) {
  JSAMPARRAY output_data = *output_data_ptr;
  const JDIMENSION width = compptr->downsampled_width;
  const v128_t one = wasm_i16x8_splat(1), two = wasm_i16x8_splat(2);
  for (int row = 0; row < cinfo->max_v_samp_factor; row++) {
    const JSAMPLE *in = input_data[row];
    JSAMPROW out = output_data[row];
    out[0] = in[0];
    // Outputs 1–32, then 32 from output 2c − 1 for each further 16 samples c: the last step ends at most 30 outputs
    // past the row, within its padding (the rounding up of the row to 64 samples covers it).
    h2v1_16(in, out + 1, two, one);
    for (JDIMENSION c = 16; c < width; c += 16) h2v1_16(in + c - 1, out + 2 * c - 1, two, one);
    out[2 * width - 1] = in[width - 1];
  }
}

// Column sums 3 × nearer row + farther row, as 16-bit lanes.
ALWAYS_INLINE v128_t colsum_lo(v128_t near, v128_t far, v128_t three) {
  return wasm_i16x8_add(wasm_i16x8_mul(wasm_u16x8_extend_low_u8x16(near), three), wasm_u16x8_extend_low_u8x16(far));
}

ALWAYS_INLINE v128_t colsum_hi(v128_t near, v128_t far, v128_t three) {
  return wasm_i16x8_add(wasm_i16x8_mul(wasm_u16x8_extend_high_u8x16(near), three), wasm_u16x8_extend_high_u8x16(far));
}

ALWAYS_INLINE void h2v2_16(const JSAMPLE *in0, const JSAMPLE *in1, JSAMPROW out, v128_t three, v128_t seven,
                           v128_t eight) {
  v128_t n0 = wasm_v128_load(in0), f0 = wasm_v128_load(in1);
  v128_t n1 = wasm_v128_load(in0 + 1), f1 = wasm_v128_load(in1 + 1);
  store_upsampled32(out, colsum_lo(n0, f0, three), colsum_hi(n0, f0, three), colsum_lo(n1, f1, three),
                    colsum_hi(n1, f1, three), seven, eight, 4);
}

GLOBAL(int) jsimd_can_h2v2_fancy_upsample(void) { return BITS_IN_JSAMPLE == 8; }

GLOBAL(void) jsimd_h2v2_fancy_upsample(j_decompress_ptr cinfo, jpeg_component_info *compptr, JSAMPARRAY input_data,
                                       JSAMPARRAY *output_data_ptr) {
  JSAMPARRAY output_data = *output_data_ptr;
  const JDIMENSION width = compptr->downsampled_width;
  const v128_t three = wasm_i16x8_splat(3), seven = wasm_i16x8_splat(7), eight = wasm_i16x8_splat(8);
  for (int inrow = 0, outrow = 0; outrow < cinfo->max_v_samp_factor; inrow++) {
    for (int v = 0; v < 2; v++, outrow++) {
      // The nearer input row and the farther one: the row above for the upper output row, below for the lower.
      const JSAMPLE *in0 = input_data[inrow], *in1 = input_data[v == 0 ? inrow - 1 : inrow + 1];
      JSAMPROW out = output_data[outrow];
      out[0] = (JSAMPLE)(((in0[0] * 3 + in1[0]) * 4 + 8) >> 4);
      h2v2_16(in0, in1, out + 1, three, seven, eight);
      for (JDIMENSION c = 16; c < width; c += 16) {
        h2v2_16(in0 + c - 1, in1 + c - 1, out + 2 * c - 1, three, seven, eight);
      }
      out[2 * width - 1] = (JSAMPLE)(((in0[width - 1] * 3 + in1[width - 1]) * 4 + 7) >> 4);
    }
  }
}

// Left to the C code: plain replication (what fancy upsampling leaves to it: rows of 1 or 2 samples), merged upsampling
// (off with fancy upsampling), 4:4:0's h1v2 upsampling (jdsample.c hooks it on Arm only) and other ratios.
GLOBAL(int) jsimd_can_h2v2_upsample(void) { return 0; }
GLOBAL(int) jsimd_can_h2v1_upsample(void) { return 0; }
GLOBAL(int) jsimd_can_int_upsample(void) { return 0; }
GLOBAL(int) jsimd_can_h1v2_fancy_upsample(void) { return 0; }
GLOBAL(int) jsimd_can_h2v2_merged_upsample(void) { return 0; }
GLOBAL(int) jsimd_can_h2v1_merged_upsample(void) { return 0; }

GLOBAL(void) jsimd_h2v2_upsample(j_decompress_ptr cinfo, jpeg_component_info *compptr, JSAMPARRAY input_data,
                                 JSAMPARRAY *output_data_ptr) {
  (void)cinfo, (void)compptr, (void)input_data, (void)output_data_ptr;
}

GLOBAL(void) jsimd_h2v1_upsample(j_decompress_ptr cinfo, jpeg_component_info *compptr, JSAMPARRAY input_data,
                                 JSAMPARRAY *output_data_ptr) {
  (void)cinfo, (void)compptr, (void)input_data, (void)output_data_ptr;
}

GLOBAL(void) jsimd_int_upsample(j_decompress_ptr cinfo, jpeg_component_info *compptr, JSAMPARRAY input_data,
                                JSAMPARRAY *output_data_ptr) {
  (void)cinfo, (void)compptr, (void)input_data, (void)output_data_ptr;
}

GLOBAL(void) jsimd_h1v2_fancy_upsample(j_decompress_ptr cinfo, jpeg_component_info *compptr, JSAMPARRAY input_data,
                                       JSAMPARRAY *output_data_ptr) {
  (void)cinfo, (void)compptr, (void)input_data, (void)output_data_ptr;
}

GLOBAL(void) jsimd_h2v2_merged_upsample(j_decompress_ptr cinfo, JSAMPIMAGE input_buf, JDIMENSION in_row_group_ctr,
                                        JSAMPARRAY output_buf) {
  (void)cinfo, (void)input_buf, (void)in_row_group_ctr, (void)output_buf;
}

GLOBAL(void) jsimd_h2v1_merged_upsample(j_decompress_ptr cinfo, JSAMPIMAGE input_buf, JDIMENSION in_row_group_ctr,
                                        JSAMPARRAY output_buf) {
  (void)cinfo, (void)input_buf, (void)in_row_group_ctr, (void)output_buf;
}

// --- Inverse DCT, accurate integer method (jidctint.c) ---------------------------------------------------------------
//
// simd/x86_64/jidctint-sse2.asm (and its AVX2 twin, which native OpenCV runs on x86-64) step for step: dequantisation
// and the sums of pairs of inputs in 16 bits, products in pairs by i32x4.dot_i16x8_s (pmaddwd), each pass's results
// narrowed to 16 bits with saturation, the final samples saturated to −128…127 before 128 is added. On valid data
// this is what the C code computes; on data whose coefficients overflow 16 bits it is what libjpeg-turbo's x86 SIMD
// code computes, so the pixels stay those of native OpenCV even then.

ALWAYS_INLINE v128_t interleave_lo32(v128_t a, v128_t b) { return wasm_i32x4_shuffle(a, b, 0, 4, 1, 5); }
ALWAYS_INLINE v128_t interleave_hi32(v128_t a, v128_t b) { return wasm_i32x4_shuffle(a, b, 2, 6, 3, 7); }

// (a ± b + 2^(n−1)) >> n for both halves, narrowed with saturation (packssdw).
ALWAYS_INLINE void butterfly(v128_t a_lo, v128_t a_hi, v128_t b_lo, v128_t b_hi, int n, v128_t *sum, v128_t *diff) {
  const v128_t round = wasm_i32x4_splat(1 << (n - 1));
  a_lo = wasm_i32x4_add(a_lo, round);
  a_hi = wasm_i32x4_add(a_hi, round);
  *sum = wasm_i16x8_narrow_i32x4(wasm_i32x4_shr(wasm_i32x4_add(a_lo, b_lo), n),
                                 wasm_i32x4_shr(wasm_i32x4_add(a_hi, b_hi), n));
  *diff = wasm_i16x8_narrow_i32x4(wasm_i32x4_shr(wasm_i32x4_sub(a_lo, b_lo), n),
                                  wasm_i32x4_shr(wasm_i32x4_sub(a_hi, b_hi), n));
}

// One pass over eight lines at once: in[k] holds input k of every line; the outputs replace them, descaled by n.
ALWAYS_INLINE void idct_pass(v128_t in[8], int n) {
  // Even part: tmp2 = z2·c1 + z3·(c1 − c3), tmp3 = z2·(c1 + c2) + z3·c1 (z2 = in2, z3 = in6), tmp0/tmp1 =
  // (in0 ± in4)·2^13.
  v128_t z23_lo = interleave_lo16(in[2], in[6]), z23_hi = interleave_hi16(in[2], in[6]);
  const v128_t k3 = pair16(FIX_0_541196100 + FIX_0_765366865, FIX_0_541196100);
  const v128_t k2 = pair16(FIX_0_541196100, FIX_0_541196100 - FIX_1_847759065);
  v128_t tmp3_lo = wasm_i32x4_dot_i16x8(z23_lo, k3), tmp3_hi = wasm_i32x4_dot_i16x8(z23_hi, k3);
  v128_t tmp2_lo = wasm_i32x4_dot_i16x8(z23_lo, k2), tmp2_hi = wasm_i32x4_dot_i16x8(z23_hi, k2);
  v128_t s04 = wasm_i16x8_add(in[0], in[4]), d04 = wasm_i16x8_sub(in[0], in[4]);
  v128_t tmp0_lo = wasm_i32x4_shl(wasm_i32x4_extend_low_i16x8(s04), CONST_BITS);
  v128_t tmp0_hi = wasm_i32x4_shl(wasm_i32x4_extend_high_i16x8(s04), CONST_BITS);
  v128_t tmp1_lo = wasm_i32x4_shl(wasm_i32x4_extend_low_i16x8(d04), CONST_BITS);
  v128_t tmp1_hi = wasm_i32x4_shl(wasm_i32x4_extend_high_i16x8(d04), CONST_BITS);
  v128_t tmp10_lo = wasm_i32x4_add(tmp0_lo, tmp3_lo), tmp10_hi = wasm_i32x4_add(tmp0_hi, tmp3_hi);
  v128_t tmp13_lo = wasm_i32x4_sub(tmp0_lo, tmp3_lo), tmp13_hi = wasm_i32x4_sub(tmp0_hi, tmp3_hi);
  v128_t tmp11_lo = wasm_i32x4_add(tmp1_lo, tmp2_lo), tmp11_hi = wasm_i32x4_add(tmp1_hi, tmp2_hi);
  v128_t tmp12_lo = wasm_i32x4_sub(tmp1_lo, tmp2_lo), tmp12_hi = wasm_i32x4_sub(tmp1_hi, tmp2_hi);

  // Odd part, z1…z5 distributed over pairs:
  //   z3' = z3·(c1175 − c1961) + z4·c1175,  z4' = z3·c1175 + z4·(c1175 − c0390)  (z3 = in3 + in7, z4 = in1 + in5)
  //   tmp0 = in7·(c0298 − c0899) − in1·c0899 + z3',  tmp3 = −in7·c0899 + in1·(c1501 − c0899) + z4'
  //   tmp1 = in5·(c2053 − c2562) − in3·c2562 + z4',  tmp2 = −in5·c2562 + in3·(c3072 − c2562) + z3'
  v128_t z3 = wasm_i16x8_add(in[3], in[7]), z4 = wasm_i16x8_add(in[1], in[5]);
  v128_t z34_lo = interleave_lo16(z3, z4), z34_hi = interleave_hi16(z3, z4);
  const v128_t kz3 = pair16(FIX_1_175875602 - FIX_1_961570560, FIX_1_175875602);
  const v128_t kz4 = pair16(FIX_1_175875602, FIX_1_175875602 - FIX_0_390180644);
  v128_t z3_lo = wasm_i32x4_dot_i16x8(z34_lo, kz3), z3_hi = wasm_i32x4_dot_i16x8(z34_hi, kz3);
  v128_t z4_lo = wasm_i32x4_dot_i16x8(z34_lo, kz4), z4_hi = wasm_i32x4_dot_i16x8(z34_hi, kz4);

  v128_t i71_lo = interleave_lo16(in[7], in[1]), i71_hi = interleave_hi16(in[7], in[1]);
  const v128_t k0 = pair16(FIX_0_298631336 - FIX_0_899976223, -FIX_0_899976223);
  const v128_t k3o = pair16(-FIX_0_899976223, FIX_1_501321110 - FIX_0_899976223);
  v128_t o0_lo = wasm_i32x4_add(wasm_i32x4_dot_i16x8(i71_lo, k0), z3_lo);
  v128_t o0_hi = wasm_i32x4_add(wasm_i32x4_dot_i16x8(i71_hi, k0), z3_hi);
  v128_t o3_lo = wasm_i32x4_add(wasm_i32x4_dot_i16x8(i71_lo, k3o), z4_lo);
  v128_t o3_hi = wasm_i32x4_add(wasm_i32x4_dot_i16x8(i71_hi, k3o), z4_hi);

  v128_t i53_lo = interleave_lo16(in[5], in[3]), i53_hi = interleave_hi16(in[5], in[3]);
  const v128_t k1 = pair16(FIX_2_053119869 - FIX_2_562915447, -FIX_2_562915447);
  const v128_t k2o = pair16(-FIX_2_562915447, FIX_3_072711026 - FIX_2_562915447);
  v128_t o1_lo = wasm_i32x4_add(wasm_i32x4_dot_i16x8(i53_lo, k1), z4_lo);
  v128_t o1_hi = wasm_i32x4_add(wasm_i32x4_dot_i16x8(i53_hi, k1), z4_hi);
  v128_t o2_lo = wasm_i32x4_add(wasm_i32x4_dot_i16x8(i53_lo, k2o), z3_lo);
  v128_t o2_hi = wasm_i32x4_add(wasm_i32x4_dot_i16x8(i53_hi, k2o), z3_hi);

  butterfly(tmp10_lo, tmp10_hi, o3_lo, o3_hi, n, &in[0], &in[7]);
  butterfly(tmp11_lo, tmp11_hi, o2_lo, o2_hi, n, &in[1], &in[6]);
  butterfly(tmp12_lo, tmp12_hi, o1_lo, o1_hi, n, &in[2], &in[5]);
  butterfly(tmp13_lo, tmp13_hi, o0_lo, o0_hi, n, &in[3], &in[4]);
}

GLOBAL(int) jsimd_can_idct_islow(void) {
  return DCTSIZE == 8 && sizeof(JCOEF) == 2 && sizeof(ISLOW_MULT_TYPE) == 2 && BITS_IN_JSAMPLE == 8;
}

GLOBAL(void) jsimd_idct_islow(j_decompress_ptr cinfo, jpeg_component_info *compptr, JCOEFPTR coef_block,
                              JSAMPARRAY output_buf, JDIMENSION output_col) {
  (void)cinfo;
  const ISLOW_MULT_TYPE *quant = (const ISLOW_MULT_TYPE *)compptr->dct_table;
  v128_t d[8];
  // Pass 1, down the columns: d[k] is row k of the block, so each lane is one column. When rows 1–7 are all zero
  // every column is its dequantised DC value times 2^PASS1_BITS (shifted in 16 bits, as the SSE2 code does).
  v128_t ac = wasm_v128_load(coef_block + 8);
  for (int k = 2; k < 8; k++) ac = wasm_v128_or(ac, wasm_v128_load(coef_block + 8 * k));
  if (!wasm_v128_any_true(ac)) {
    v128_t dc = wasm_i16x8_shl(wasm_i16x8_mul(wasm_v128_load(coef_block), wasm_v128_load(quant)), PASS1_BITS);
    // Pass 2 wants one vector per column: column j is lane j everywhere.
    v128_t lo = interleave_lo16(dc, dc), hi = interleave_hi16(dc, dc);
    d[0] = wasm_i32x4_shuffle(lo, lo, 0, 0, 0, 0), d[1] = wasm_i32x4_shuffle(lo, lo, 1, 1, 1, 1);
    d[2] = wasm_i32x4_shuffle(lo, lo, 2, 2, 2, 2), d[3] = wasm_i32x4_shuffle(lo, lo, 3, 3, 3, 3);
    d[4] = wasm_i32x4_shuffle(hi, hi, 0, 0, 0, 0), d[5] = wasm_i32x4_shuffle(hi, hi, 1, 1, 1, 1);
    d[6] = wasm_i32x4_shuffle(hi, hi, 2, 2, 2, 2), d[7] = wasm_i32x4_shuffle(hi, hi, 3, 3, 3, 3);
  } else {
    for (int k = 0; k < 8; k++) {
      d[k] = wasm_i16x8_mul(wasm_v128_load(coef_block + 8 * k), wasm_v128_load(quant + 8 * k));
    }
    idct_pass(d, CONST_BITS - PASS1_BITS);
    // d[k] held output row k of every column; pass 2 wants d[k] = column k of every row.
    transpose8x8(d);
  }
  // Pass 2, along the rows: lane r of d[k] is row r, column k. Out come samples −128…127 (saturated).
  idct_pass(d, CONST_BITS + PASS1_BITS + 3);
  // Bytes, with 128 added, then back to rows: interleaving columns (0, 1), (2, 3), … gives pairs, then quads, then
  // whole rows, two per vector.
  const v128_t center = wasm_i8x16_splat((int8_t)CENTERJSAMPLE);
  v128_t c01 = wasm_i8x16_narrow_i16x8(interleave_lo16(d[0], d[1]), interleave_hi16(d[0], d[1]));
  v128_t c23 = wasm_i8x16_narrow_i16x8(interleave_lo16(d[2], d[3]), interleave_hi16(d[2], d[3]));
  v128_t c45 = wasm_i8x16_narrow_i16x8(interleave_lo16(d[4], d[5]), interleave_hi16(d[4], d[5]));
  v128_t c67 = wasm_i8x16_narrow_i16x8(interleave_lo16(d[6], d[7]), interleave_hi16(d[6], d[7]));
  c01 = wasm_i8x16_add(c01, center), c23 = wasm_i8x16_add(c23, center);
  c45 = wasm_i8x16_add(c45, center), c67 = wasm_i8x16_add(c67, center);
  // c01 = (r0c0 r0c1 r1c0 r1c1 …): 16-bit lanes are (column pair, row).
  v128_t q0 = interleave_lo16(c01, c23), q1 = interleave_hi16(c01, c23);  // rows 0–3 / 4–7, columns 0–3
  v128_t q2 = interleave_lo16(c45, c67), q3 = interleave_hi16(c45, c67);  // rows 0–3 / 4–7, columns 4–7
  v128_t r01 = interleave_lo32(q0, q2), r23 = interleave_hi32(q0, q2);
  v128_t r45 = interleave_lo32(q1, q3), r67 = interleave_hi32(q1, q3);
  wasm_v128_store64_lane(output_buf[0] + output_col, r01, 0);
  wasm_v128_store64_lane(output_buf[1] + output_col, r01, 1);
  wasm_v128_store64_lane(output_buf[2] + output_col, r23, 0);
  wasm_v128_store64_lane(output_buf[3] + output_col, r23, 1);
  wasm_v128_store64_lane(output_buf[4] + output_col, r45, 0);
  wasm_v128_store64_lane(output_buf[5] + output_col, r45, 1);
  wasm_v128_store64_lane(output_buf[6] + output_col, r67, 0);
  wasm_v128_store64_lane(output_buf[7] + output_col, r67, 1);
}

// The scaled, fast and float IDCTs are never chosen by these settings (full size, JDCT_ISLOW).
GLOBAL(int) jsimd_can_idct_2x2(void) { return 0; }
GLOBAL(int) jsimd_can_idct_4x4(void) { return 0; }
GLOBAL(int) jsimd_can_idct_6x6(void) { return 0; }
GLOBAL(int) jsimd_can_idct_12x12(void) { return 0; }
GLOBAL(int) jsimd_can_idct_ifast(void) { return 0; }
GLOBAL(int) jsimd_can_idct_float(void) { return 0; }

#define UNUSED_IDCT(name)                                                                                        \
  GLOBAL(void) name(j_decompress_ptr cinfo, jpeg_component_info *compptr, JCOEFPTR coef_block,                  \
                    JSAMPARRAY output_buf, JDIMENSION output_col) {                                             \
    (void)cinfo, (void)compptr, (void)coef_block, (void)output_buf, (void)output_col;                           \
  }
UNUSED_IDCT(jsimd_idct_2x2)
UNUSED_IDCT(jsimd_idct_4x4)
UNUSED_IDCT(jsimd_idct_6x6)
UNUSED_IDCT(jsimd_idct_12x12)
UNUSED_IDCT(jsimd_idct_ifast)
UNUSED_IDCT(jsimd_idct_float)
