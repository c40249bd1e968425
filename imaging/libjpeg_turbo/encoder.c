// The glue between imaging/jpeg_encode.ts and libjpeg-turbo's compressor, built into libjpeg_turbo.wasm by build.sh.
//
// WASM without exception handling has no setjmp/longjmp, so a libjpeg error cannot unwind back here: error_exit
// records the message code and traps, and the loader throws away the trapped instance (its heap may hold half a
// compressor). The caller validates what it can first, so in practice only running out of memory gets there.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "jpeglib.h"
#include "jerror.h"
#include "glue.h"
#include "jversion.h"

// libjpeg's own message table (what jerror.c would build), so errors reach the caller as text without printf.
#define JMESSAGE(code, string) string,
static const char *const messages[] = {
#include "jerror.h"
  NULL
};

// jcinit.c links the progressive Huffman encoder in; baseline output never reaches it, so it is left out.
void jinit_phuff_encoder(j_compress_ptr c) { ERREXIT(c, JERR_NOT_COMPILED); }

static int error_code;
static struct jpeg_compress_struct cinfo;
static struct jpeg_error_mgr errors;
static struct jpeg_destination_mgr destination;
static int ready;

// Scratch buffers kept from one image to the next: after the first few images no call allocates them again.
static uint8_t *input;
static size_t input_size;
static uint8_t *output;
static size_t output_size;

static void error_exit(j_common_ptr c) {
  error_code = c->err->msg_code;
  __builtin_trap();
}

// Warnings and trace messages would otherwise be printed to stderr (and pull stdio into the module).
static void emit_message(j_common_ptr c, int level) {
  (void)c;
  (void)level;
}

static void init_destination(j_compress_ptr c) {
  c->dest->next_output_byte = output;
  c->dest->free_in_buffer = output_size;
}

// Called when the buffer is full: libjpeg then expects the whole buffer to have been taken, so it doubles in place.
static boolean empty_output_buffer(j_compress_ptr c) {
  uint8_t *grown = realloc(output, output_size * 2);
  if (!grown) ERREXIT1(c, JERR_OUT_OF_MEMORY, 10);
  output = grown;
  c->dest->next_output_byte = output + output_size;
  c->dest->free_in_buffer = output_size;
  output_size *= 2;
  return TRUE;
}

static void term_destination(j_compress_ptr c) { (void)c; }

/** A buffer of at least `size` bytes for the next image's pixels (0 when out of memory). */
__attribute__((export_name("input_buffer"))) uint8_t *input_buffer(size_t size) {
  return reserve(&input, &input_size, size) ? input : NULL;
}

/**
 * Encodes the `width` × `height` pixels in the input buffer (`channels` 1: gray, 3: RGB, 4: RGBX, X ignored) as a
 * baseline JPEG of `quality` 1–100 with standard Huffman tables, 4:2:0 for colour, like OpenCV's imencode defaults.
 * Returns its length (then at output()), or -1 with error_code() set.
 */
__attribute__((export_name("encode"))) int encode(int width, int height, int channels, int quality) {
  if (!ready) {
    cinfo.err = &errors;
    errors.error_exit = error_exit;
    errors.emit_message = emit_message;
    errors.output_message = output_message;
    errors.format_message = format_message;
    errors.reset_error_mgr = reset_error_mgr;
    errors.jpeg_message_table = messages;
    errors.last_jpeg_message = (int)(sizeof(messages) / sizeof(messages[0])) - 2;
    jpeg_create_compress(&cinfo);
    destination.init_destination = init_destination;
    destination.empty_output_buffer = empty_output_buffer;
    destination.term_destination = term_destination;
    cinfo.dest = &destination;
    ready = 1;
  }
  error_code = 0;
  if (channels != 1 && channels != 3 && channels != 4) {
    error_code = JERR_BAD_IN_COLORSPACE;
    return -1;
  }
  // A quarter of the raw size covers quality 95 on photographs; noisier images grow it (and it stays grown).
  size_t first = (size_t)width * (size_t)height * (size_t)channels / 4 + 4096;
  if (!reserve(&output, &output_size, first)) {
    error_code = JERR_OUT_OF_MEMORY;
    return -1;
  }
  cinfo.image_width = (JDIMENSION)width;
  cinfo.image_height = (JDIMENSION)height;
  cinfo.input_components = channels;
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_EXT_RGBX;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  const size_t stride = (size_t)width * (size_t)channels;
  JSAMPROW rows[64];
  while (cinfo.next_scanline < cinfo.image_height) {
    JDIMENSION n = 0;
    for (; n < 64 && cinfo.next_scanline + n < cinfo.image_height; n++) {
      rows[n] = input + (size_t)(cinfo.next_scanline + n) * stride;
    }
    jpeg_write_scanlines(&cinfo, rows, n);
  }
  jpeg_finish_compress(&cinfo);
  return (int)(output_size - destination.free_in_buffer);
}

__attribute__((export_name("output"))) uint8_t *output_buffer(void) { return output; }

__attribute__((export_name("error_code"))) int last_error_code(void) { return error_code; }

/** libjpeg's text for a message code, printf placeholders and all (empty for unknown codes). */
__attribute__((export_name("message"))) const char *message(int code) {
  int count = (int)(sizeof(messages) / sizeof(messages[0])) - 1;
  return code >= 0 && code < count && messages[code] ? messages[code] : "";
}
