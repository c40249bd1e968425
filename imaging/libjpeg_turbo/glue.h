// What encoder.c and decoder.c share: the parts of libjpeg's error manager that would print (pulling stdio into the
// module) made silent, and scratch buffers kept from one image to the next. Included once by each; needs jpeglib.h.
#ifndef LIBJPEG_TURBO_GLUE_H
#define LIBJPEG_TURBO_GLUE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static void output_message(j_common_ptr c) { (void)c; }

static void format_message(j_common_ptr c, char *buffer) {
  (void)c;
  buffer[0] = 0;
}

static void reset_error_mgr(j_common_ptr c) {
  c->err->num_warnings = 0;
  c->err->msg_code = 0;
}

// Makes *buffer at least `wanted` bytes, reallocating only when it is too small (its content is not kept); 0 when
// out of memory.
static int reserve(uint8_t **buffer, size_t *size, size_t wanted) {
  if (*size >= wanted) return 1;
  free(*buffer);
  *buffer = malloc(wanted);
  *size = *buffer ? wanted : 0;
  return *buffer != NULL;
}

#endif
