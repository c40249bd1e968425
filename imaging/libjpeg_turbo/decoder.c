// The glue between imaging/jpeg_wasm.ts and libjpeg-turbo's decompressor, built into libjpeg_turbo.wasm by build.sh.
//
// A decode is a sequence of calls: decode_input (room for the file), decode_begin (header, colour space, start), then
// decode_rows until it returns 0, each call leaving a band of RGBA rows at decode_band() for the caller to copy out,
// then decode_finish. Only a band, not the whole image, lives in WASM memory: the caller copies each band into its own
// array while it is still in cache, and the module's memory stays at the size of the file plus libjpeg's buffers,
// whatever the size of the image.
//
// As in encoder.c, a libjpeg error traps (no setjmp/longjmp in WASM without exception handling) and the caller drops
// the instance. Warnings (damaged data, which libjpeg decodes anyway, filling in grey) are counted, and the caller
// refuses the image.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <wasm_simd128.h>

#include "jpeglib.h"
#include "jerror.h"
#include "glue.h"

// jdmaster.c links colour quantisation in; nothing here asks for it (quantize_colors stays FALSE).
void jinit_1pass_quantizer(j_decompress_ptr c) { ERREXIT(c, JERR_NOT_COMPILED); }
void jinit_2pass_quantizer(j_decompress_ptr c) { ERREXIT(c, JERR_NOT_COMPILED); }

static struct jpeg_decompress_struct dinfo;
static struct jpeg_error_mgr errors;
static int ready;

// Kept from one image to the next: after the first few images nothing is allocated for them again.
static uint8_t *input;
static size_t input_size;
static uint8_t *band;
static size_t band_size;
static uint8_t *gray;
static size_t gray_size;
static JDIMENSION band_rows;

// A quarter of this machine's L2 cache (and of most others'): the band is copied out while it is still there.
#define BAND_BYTES (256 * 1024)

static void error_exit(j_common_ptr c) {
  (void)c;
  __builtin_trap();
}

// Counts warnings (level −1) as jpeg_std_error's emit_message does, without printing them.
static void emit_message(j_common_ptr c, int level) {
  if (level < 0) c->err->num_warnings++;
}

/** A buffer of at least `size` bytes for the next file (0 when out of memory). */
__attribute__((export_name("decode_input"))) uint8_t *decode_input(size_t size) {
  return reserve(&input, &input_size, size) ? input : NULL;
}

/**
 * Reads the header of the `size`-byte file in the input buffer and starts decompressing it to RGBA. Returns 0 when
 * started (its size at decode_width and decode_height), 1 when the file is refused (a colour space libjpeg cannot
 * convert), -1 when there is no memory for the band.
 */
__attribute__((export_name("decode_begin"))) int decode_begin(size_t size) {
  if (!ready) {
    dinfo.err = &errors;
    errors.error_exit = error_exit;
    errors.emit_message = emit_message;
    errors.output_message = output_message;
    errors.format_message = format_message;
    errors.reset_error_mgr = reset_error_mgr;
    jpeg_create_decompress(&dinfo);
    ready = 1;
  }
  // The previous image may have been left part-way (after a warning, or an exception in the caller between calls).
  jpeg_abort_decompress(&dinfo);
  errors.num_warnings = 0;
  jpeg_mem_src(&dinfo, input, (unsigned long)size);
  jpeg_read_header(&dinfo, TRUE);
  switch (dinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      // Widened to RGBA in decode_rows, with SIMD: libjpeg's own gray → RGBA conversion is a loop over bytes.
      dinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_YCbCr:
    case JCS_RGB:
      dinfo.out_color_space = JCS_EXT_RGBA;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      // As OpenCV asks: libjpeg's CMYK (YCCK converted by libjpeg), made RGBA in place in decode_rows.
      dinfo.out_color_space = JCS_CMYK;
      break;
    default:
      return 1;
  }
  jpeg_start_decompress(&dinfo);
  const size_t stride = (size_t)dinfo.output_width * 4;
  band_rows = (JDIMENSION)(BAND_BYTES / stride);
  if (band_rows < 1) band_rows = 1;
  if (band_rows > dinfo.output_height) band_rows = dinfo.output_height;
  // gray_to_rgba works 16 pixels at a time and may run up to 60 bytes past a band's last row (15 past a gray row).
  if (!reserve(&band, &band_size, stride * band_rows + 64)) return -1;
  if (dinfo.out_color_space == JCS_GRAYSCALE &&
      !reserve(&gray, &gray_size, (size_t)dinfo.output_width * band_rows + 64)) {
    return -1;
  }
  return 0;
}

__attribute__((export_name("decode_width"))) int decode_width(void) { return (int)dinfo.output_width; }

__attribute__((export_name("decode_height"))) int decode_height(void) { return (int)dinfo.output_height; }

__attribute__((export_name("decode_band"))) uint8_t *decode_band(void) { return band; }

/** Gray samples as opaque RGBA, 16 pixels per step (past the end of the row: see decode_begin). */
static void gray_to_rgba(const uint8_t *in, uint8_t *out, JDIMENSION width) {
  const v128_t alpha = wasm_i32x4_splat((int32_t)0xFF000000);
  for (JDIMENSION x = 0; x < width; x += 16, in += 16, out += 64) {
    v128_t g = wasm_v128_load(in);
    v128_t gg_lo = wasm_i8x16_shuffle(g, g, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    v128_t gg_hi = wasm_i8x16_shuffle(g, g, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    wasm_v128_store(out, wasm_v128_or(wasm_i16x8_shuffle(gg_lo, gg_lo, 0, 8, 1, 9, 2, 10, 3, 11), alpha));
    wasm_v128_store(out + 16, wasm_v128_or(wasm_i16x8_shuffle(gg_lo, gg_lo, 4, 12, 5, 13, 6, 14, 7, 15), alpha));
    wasm_v128_store(out + 32, wasm_v128_or(wasm_i16x8_shuffle(gg_hi, gg_hi, 0, 8, 1, 9, 2, 10, 3, 11), alpha));
    wasm_v128_store(out + 48, wasm_v128_or(wasm_i16x8_shuffle(gg_hi, gg_hi, 4, 12, 5, 13, 6, 14, 7, 15), alpha));
  }
}

/**
 * OpenCV's CMYK → RGB (icvCvt_CMYK2BGR_8u_C4C3R in imgcodecs/src/utils.cpp), in place, with opaque alpha. The samples
 * are as libjpeg returns them, so Adobe's inverted CMYK gives R ≈ C·K/255.
 */
static void cmyk_to_rgba(uint8_t *p, JDIMENSION width) {
  for (JDIMENSION x = 0; x < width; x++, p += 4) {
    const int k = p[3];
    p[0] = (uint8_t)(k - (((255 - p[0]) * k) >> 8));
    p[1] = (uint8_t)(k - (((255 - p[1]) * k) >> 8));
    p[2] = (uint8_t)(k - (((255 - p[2]) * k) >> 8));
    p[3] = 255;
  }
}

/**
 * Decodes the next band of rows into decode_band() (4 bytes per pixel, rows back to back). Returns the number of rows
 * (0 once the image is complete), or -1 as soon as libjpeg has warned about the data: the caller stops there.
 */
__attribute__((export_name("decode_rows"))) int decode_rows(void) {
  const JDIMENSION width = dinfo.output_width;
  const size_t stride = (size_t)width * 4;
  const int is_gray = dinfo.out_color_space == JCS_GRAYSCALE;
  JDIMENSION n = 0;
  while (n < band_rows && dinfo.output_scanline < dinfo.output_height) {
    // libjpeg returns at most one iMCU row (8 or 16 rows) per call.
    JSAMPROW rows[16];
    JDIMENSION want = band_rows - n < 16 ? band_rows - n : 16;
    for (JDIMENSION i = 0; i < want; i++) {
      rows[i] = is_gray ? gray + (size_t)(n + i) * width : band + (size_t)(n + i) * stride;
    }
    n += jpeg_read_scanlines(&dinfo, rows, want);
    if (errors.num_warnings) return -1;
  }
  if (is_gray) {
    for (JDIMENSION i = 0; i < n; i++) gray_to_rgba(gray + (size_t)i * width, band + (size_t)i * stride, width);
  } else if (dinfo.out_color_space == JCS_CMYK) {
    for (JDIMENSION i = 0; i < n; i++) cmyk_to_rgba(band + (size_t)i * stride, width);
  }
  return (int)n;
}

/** Reads the rest of the file up to its end marker. Returns the number of warnings (0: the image is good). */
__attribute__((export_name("decode_finish"))) int decode_finish(void) {
  jpeg_finish_decompress(&dinfo);
  return (int)errors.num_warnings;
}
