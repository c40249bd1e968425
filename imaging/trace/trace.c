// Contour tracing (Suzuki and Abe's border following) in WASM: cv::findContours for 8-bit binary images with
// RETR_EXTERNAL, RETR_LIST, RETR_CCOMP or RETR_TREE and CHAIN_APPROX_NONE or CHAIN_APPROX_SIMPLE, giving the same
// contours, vertices, start points, order and hierarchy as OpenCV 4.12 (what OpenCV.js on npm runs).
//
// Ported from OpenCV 4.12's modules/imgproc/src/contours_new.cpp (ContourScanner_, icvFetchContourEx,
// icvTraceContour) and contours_common.cpp/.hpp (contourTreeToResults, the tree and its iterator), which are
// Copyright the OpenCV authors and licensed under the Apache License, Version 2.0
// (https://www.apache.org/licenses/LICENSE-2.0). What changed, none of it visible in the results:
//   - the scanner's resumable findNext() is one loop over the image, and the per-contour std::vector / arena storage is
//     one append-only stream of records (a node followed by its vertices) that the kernel grows itself;
//   - the tree links are offsets into that stream rather than indices into a vector of nodes;
//   - the tree's pre-order walk uses parent links instead of a stack, and writes the results (vertex counts,
//     hierarchy, vertices) straight into three arrays that follow the stream;
//   - the raster scan finds the pixels where it stops (OpenCV's findNextX, SIMD there too) 64 at a time with 128-bit
//     WASM SIMD, as a bit mask of the pixels unlike their left neighbour, and only calls the contour code on those;
//   - the padding and thresholding (copyMakeBorder, threshold) is one SIMD pass;
//   - the CV_32SC1 (RETR_FLOODFILL), chain code and TC89 paths are left out.
// tests/trace_test.ts compares every mode with OpenCV.js, on the samples and on hundreds of generated images.
// Built by build.sh (clang, wasm32, -msimd128); no libc: the caller lays out the memory up to `records` (see trace),
// the kernel grows it past that as the contours need.
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name)))

typedef signed char schar;

// Bytes after the padded image that the scan's vector loads may read (the caller leaves them).
#define SLACK 64

enum { RETR_EXTERNAL = 0, RETR_LIST = 1, RETR_CCOMP = 2, RETR_TREE = 3 };
enum { CHAIN_APPROX_NONE = 1, CHAIN_APPROX_SIMPLE = 2 };

// The marks tracing leaves in the 0/1 image (contours_new.cpp's MASK8_*): a border pixel takes its contour's number
// (2..127), with the sign bit when the pixel's right neighbour is background (it then closes a run for the scan).
#define MASK8_RIGHT ((schar)0x80)
#define MASK8_NEW 2
#define MASK8_FLAGS ((schar)0xFE)
#define MASK8_BLACK 1
#define MASK8_LVAL 0x7F

// A contour's record in the stream, in int32 slots; its vertices (x, y pairs) follow. Links are stream offsets of
// other records (the root's is 0), -1 for none.
enum {
  R_PARENT,
  R_FIRST_CHILD,
  R_PREV,
  R_NEXT,
  R_CTABLE_NEXT, // the next earlier contour with the same mark (OpenCV's ctable chains)
  R_BX,          // bounding rectangle in padded coordinates, as OpenCV keeps it (x, y, width, height)
  R_BY,
  R_BW,
  R_BH,
  R_OX, // start pixel in padded coordinates
  R_OY,
  R_HOLE,
  R_COUNT, // vertices
  R_OUT,   // index in the results (-1 for the root)
  R_SIZE,
};

// Chain code directions (contours_common.hpp's chainCodeDeltas), counter-clockwise from "right", y down.
static const int DX[8] = {1, 1, 0, -1, -1, -1, 0, 1};
static const int DY[8] = {0, -1, -1, -1, 0, 1, 1, 1};

// Pointer offsets of the eight directions, twice over, so a search may run up to 15 without masking.
static int deltas[16];
// The most recent contour with each mark; OpenCV's ctable.
static int ctable[128];
// The stream: base, write position and end of memory (grown by grow()).
static int32_t* stream;
static int32_t* wp;
static int32_t* wend;
// Where the results are, for trace_result(): counts, hierarchy, vertices (byte addresses), vertex total.
static int32_t result[4];

// The end of memory as a pointer (the last 16 bytes of a full 4 GiB memory left out, so it fits in 32 bits).
static int32_t* memory_end(uint64_t pages) {
  return (int32_t*)(uintptr_t)(pages >= 65536 ? 0xFFFFFFF0u : (uint32_t)(pages << 16));
}

// Makes memory reach `need`, by half as much again as there is if it can, so a long stream grows in a few steps.
// Traps (a RuntimeError for the caller) when memory cannot grow that far.
__attribute__((noinline)) static void grow(const int32_t* need) {
  const uint64_t have = __builtin_wasm_memory_size(0);
  const uint64_t pages = ((uint64_t)(uintptr_t)need + 65535) >> 16;
  uint64_t want = have + (have >> 1);
  if (want < pages) want = pages;
  if (pages > 65536 || need < wp ||
      (__builtin_wasm_memory_grow(0, want - have) < 0 && __builtin_wasm_memory_grow(0, pages - have) < 0)) {
    __builtin_trap();
  }
  wend = memory_end(__builtin_wasm_memory_size(0));
}

static inline void reserve(int slots) {
  if (wend - wp < slots) grow(wp + slots);
}

// The 0/1 image with a one-pixel border of zeros, as findContours makes it (copyMakeBorder, then threshold to 1).
// (Making it a few rows at a time, just ahead of the scan and the tracing, to keep them in cache, was no faster.)
static void pad(const uint8_t* src, int w, int h, schar* img) {
  const int step = w + 2;
  const v128_t one = wasm_i8x16_splat(1);
  for (int x = 0; x < step; x++) img[x] = 0;
  for (int y = 0; y < h; y++) {
    const uint8_t* s = src + y * w;
    schar* d = img + (y + 1) * step + 1;
    d[-1] = 0;
    int x = 0;
    for (; x + 64 <= w; x += 64) {
      const v128_t a = wasm_v128_load(s + x), b = wasm_v128_load(s + x + 16);
      const v128_t c = wasm_v128_load(s + x + 32), e = wasm_v128_load(s + x + 48);
      wasm_v128_store(d + x, wasm_u8x16_min(a, one));
      wasm_v128_store(d + x + 16, wasm_u8x16_min(b, one));
      wasm_v128_store(d + x + 32, wasm_u8x16_min(c, one));
      wasm_v128_store(d + x + 48, wasm_u8x16_min(e, one));
    }
    for (; x + 16 <= w; x += 16) wasm_v128_store(d + x, wasm_u8x16_min(wasm_v128_load(s + x), one));
    // The last bytes as one vector ending at the row's end, overlapping what is done (when the row is that long).
    if (x < w && w >= 16) wasm_v128_store(d + w - 16, wasm_u8x16_min(wasm_v128_load(s + w - 16), one));
    else
      for (; x < w; x++) d[x] = s[x] != 0;
    d[w] = 0;
  }
  // The last row, and the slack the scan's vector loads may read.
  for (int x = 0; x < step + SLACK; x++) img[(h + 1) * step + x] = 0;
}

// Where the 64 pixels from p on differ from their left neighbour, as bits. This is OpenCV's findNextX (which looks for
// the first pixel unlike the last one it stopped at) for a whole block at once: between two stops the row does not
// change, so "unlike the pixel on the left" finds the same stops. Loads may read up to 63 bytes past the row's last
// pixel, into its right border, the next rows or the slack; the caller drops those bits.
static inline uint64_t changes(const schar* p) {
  const v128_t a = wasm_v128_xor(wasm_v128_load(p), wasm_v128_load(p - 1));
  const v128_t b = wasm_v128_xor(wasm_v128_load(p + 16), wasm_v128_load(p + 15));
  const v128_t c = wasm_v128_xor(wasm_v128_load(p + 32), wasm_v128_load(p + 31));
  const v128_t d = wasm_v128_xor(wasm_v128_load(p + 48), wasm_v128_load(p + 47));
  if (!wasm_v128_any_true(wasm_v128_or(wasm_v128_or(a, b), wasm_v128_or(c, d)))) return 0;
  const v128_t zero = wasm_i64x2_splat(0);
  return (uint64_t)wasm_i8x16_bitmask(wasm_i8x16_ne(a, zero)) |
         (uint64_t)wasm_i8x16_bitmask(wasm_i8x16_ne(b, zero)) << 16 |
         (uint64_t)wasm_i8x16_bitmask(wasm_i8x16_ne(c, zero)) << 32 |
         (uint64_t)wasm_i8x16_bitmask(wasm_i8x16_ne(d, zero)) << 48;
}

// icvTraceContour: whether following the border that starts at i0 passes `stop` in a way that makes it the contour
// met there during the raster scan.
static int trace_reaches(const schar* i0, const schar* stop, int is_hole) {
  const schar *i1, *i3, *i4 = 0;
  const int s_end = is_hole ? 0 : 4;
  int s = s_end;
  do {
    s = (s - 1) & 7;
    i1 = i0 + deltas[s];
  } while (*i1 == 0 && s != s_end);
  i3 = i0;
  if (s == s_end) return i3 == stop;
  for (;;) {
    while (s < 15) {
      ++s;
      i4 = i3 + deltas[s];
      if (*i4 != 0) break;
    }
    if (i3 == stop) {
      if (!(*i3 & MASK8_RIGHT)) return 1;
      // Whether this is the last contour met there during the raster scan.
      int t = s;
      for (;;) {
        t = (t - 1) & 7;
        if (i3[deltas[t]] != 0) break;
        if (t == 0) return 1;
      }
    }
    if (i4 == i0 && i3 == i1) break;
    i3 = i4;
    s = (s + 4) & 7;
  }
  return 0;
}

// icvFetchContourEx: follows the border from i0 (start pixel ox, oy in padded coordinates), marks it with `mark` and
// appends its vertices after the record at rec (every pixel for CHAIN_APPROX_NONE, the turns for SIMPLE); fills in the
// bounding rectangle and the count. (A branch-free step, the turn found from a bit mask of the eight neighbours, was
// no faster: each step then waits for the loads of the one before.)
static void fetch(schar* i0, int ox, int oy, int is_hole, schar mark, int direct, int rec) {
  schar *i1, *i3;
  // Vertices in image coordinates: OpenCV traces the padded image with an offset of (-1, -1).
  int px = ox - 1, py = oy - 1;
  int rx = px, ry = py, rx1 = px, ry1 = py;
  int32_t* const first = wp;
  int s_end = is_hole ? 0 : 4;
  int s = s_end;
  do {
    s = (s - 1) & 7;
    i1 = i0 + deltas[s];
  } while (*i1 == 0 && s != s_end);

  if (s == s_end) {
    // A single pixel.
    *i0 = (schar)(mark | MASK8_RIGHT);
    reserve(2);
    wp[0] = px;
    wp[1] = py;
    wp += 2;
  } else {
    i3 = i0;
    int prev_s = s ^ 4;
    const schar right = (schar)(mark | MASK8_RIGHT);
    for (;;) {
      s_end = s;
      schar* i4;
      // Counter-clockwise from the direction after s_end; it ends within eight, at the pixel the border came from if
      // not before.
      do {
        ++s;
        i4 = i3 + deltas[s];
      } while (*i4 == 0 && s < 15);
      s &= 7;
      if ((unsigned)(s - 1) < (unsigned)s_end) *i3 = right;
      else if (*i3 == MASK8_BLACK) *i3 = mark;
      if (s != prev_s || direct) {
        if (wend - wp < 2) grow(wp + 2);
        wp[0] = px;
        wp[1] = py;
        wp += 2;
      }
      if (s != prev_s) {
        if (px < rx) rx = px;
        else if (px > rx1) rx1 = px;
        if (py < ry) ry = py;
        else if (py > ry1) ry1 = py;
      }
      prev_s = s;
      px += DX[s];
      py += DY[s];
      if (i4 == i0 && i3 == i1) break;
      i3 = i4;
      s = (s + 4) & 7;
    }
  }
  int32_t* r = stream + rec;
  r[R_BX] = rx + 1;
  r[R_BY] = ry + 1;
  r[R_BW] = rx1 - rx + 1;
  r[R_BH] = ry1 - ry + 1;
  r[R_COUNT] = (int32_t)((wp - first) >> 1);
}

// findFirstBoundingContour: among earlier contours with mark lval whose rectangle reaches (last_x, y) (OpenCV's test,
// which has no lower bound), the first whose border passes there, or the last such contour.
static int bounding_contour(const schar* img, int step, int last_x, int y, int lval) {
  const schar* end = img + y * step + last_x;
  int res = -1;
  for (int cur = ctable[lval]; cur != -1; cur = stream[cur + R_CTABLE_NEXT]) {
    const int32_t* c = stream + cur;
    if (last_x - c[R_BX] < c[R_BW] && y - c[R_BY] < c[R_BH]) {
      if (res != -1) {
        const int32_t* r = stream + res;
        if (trace_reaches(img + r[R_OY] * step + r[R_OX], end, r[R_HOLE])) break;
      }
      res = cur;
    }
  }
  return res;
}

static inline int out_index(int ref) {
  return ref < 0 ? -1 : stream[ref + R_OUT];
}

// The next record of the tree's pre-order walk (contourTreeToResults's order: a node, then its children from
// first_child on), or -1 at the end.
static inline int next_in_order(int node) {
  const int child = stream[node + R_FIRST_CHILD];
  if (child != -1) return child;
  while (stream[node + R_NEXT] == -1) {
    node = stream[node + R_PARENT];
    if (node <= 0) return -1;
  }
  return stream[node + R_NEXT];
}

// The scan's state, for start_contour.
static schar* image;
static int image_step;
static int scan_mode;
static int scan_simple;
static int scan_direct;
static schar nbd;
static int contours;
static int vertices;

// contourScan and makeContour for a pixel x of row y (padded coordinates) that differs from its left neighbour:
// whether a border starts there (an outer border at 0 → 1, a hole border at 1 or a positive mark → 0) that the mode
// keeps; if so traces it into a new record, hung in the tree where OpenCV puts it. *last_x is OpenCV's lnbd.x, the
// last marked pixel met on the row.
__attribute__((noinline)) static int start_contour(int x, int y, schar prev, schar p, int* last_x) {
  schar* const row = image + y * image_step;
  int is_hole = 0;
  if (!(prev == 0 && p == 1)) {
    if (prev & MASK8_FLAGS) *last_x = x - 1;
    is_hole = 1;
  }
  if (scan_mode == RETR_EXTERNAL && (is_hole || row[*last_x] > 0)) return 0;

  int parent = 0;
  if (!(scan_simple || (!is_hole && scan_mode == RETR_CCOMP) || *last_x <= 0)) {
    parent = bounding_contour(image, image_step, *last_x, y, row[*last_x] & MASK8_LVAL);
    // OpenCV reads node -1 here; it cannot happen, as the contour that marked row[last_x] qualifies.
    if (parent < 0) parent = 0;
    // A hole inside a hole (or an outer border beside an outer border) shares that one's parent.
    if (stream[parent + R_HOLE] == is_hole) {
      const int up = stream[parent + R_PARENT];
      parent = up != -1 ? up : 0;
    }
  }
  *last_x = x - is_hole;

  schar mark = MASK8_NEW;
  if (!scan_simple) {
    mark = nbd;
    nbd = (schar)((nbd + 1) & MASK8_LVAL);
    if (nbd == 0) nbd = MASK8_BLACK | MASK8_NEW;
  }
  reserve(R_SIZE);
  const int rec = (int)(wp - stream);
  int32_t* r = wp;
  const int sx = x - is_hole;
  r[R_OX] = sx;
  r[R_OY] = y;
  r[R_HOLE] = is_hole;
  wp += R_SIZE;
  fetch(row + sx, sx, y, is_hole, mark, scan_direct, rec);
  // fetch may have grown memory, but never moves it: r is still valid.
  if (!scan_simple) {
    r[R_CTABLE_NEXT] = ctable[mark];
    ctable[mark] = rec;
  } else {
    r[R_CTABLE_NEXT] = -1;
  }
  // tree.addChild: the newest child comes first.
  int32_t* pr = stream + parent;
  r[R_PREV] = -1;
  r[R_NEXT] = pr[R_FIRST_CHILD];
  r[R_FIRST_CHILD] = -1;
  if (pr[R_FIRST_CHILD] != -1) stream[pr[R_FIRST_CHILD] + R_PREV] = rec;
  pr[R_FIRST_CHILD] = rec;
  r[R_PARENT] = parent;
  contours++;
  vertices += r[R_COUNT];
  return 1;
}

// Traces the contours of the w x h image at src (nonzero is foreground), which it leaves as it was. `img` takes the
// padded image: (w + 2) * (h + 2) + SLACK bytes. `records` (4-aligned) starts the working records, which grow memory
// as they need; the results follow them (see trace_result). `mode` is OpenCV's RETR_* and `method` its CHAIN_APPROX_*
// (NONE or SIMPLE). Returns the number of contours.
EXPORT("trace")
int trace(const uint8_t* src, int w, int h, schar* img, int32_t* records, int mode, int method) {
  const int step = w + 2;
  for (int i = 0; i < 16; i++) deltas[i] = DX[i & 7] + DY[i & 7] * step;
  for (int i = 0; i < 128; i++) ctable[i] = -1;
  pad(src, w, h, img);
  image = img;
  image_step = step;
  scan_mode = mode;
  scan_simple = mode == RETR_EXTERNAL || mode == RETR_LIST;
  scan_direct = method == CHAIN_APPROX_NONE;
  nbd = 2;
  contours = 0;
  vertices = 0;
  stream = wp = records;
  wend = memory_end(__builtin_wasm_memory_size(0));
  reserve(R_SIZE);
  // The root: the frame, a hole, parent of every outermost contour.
  for (int i = 0; i < R_SIZE; i++) wp[i] = -1;
  wp[R_BX] = wp[R_BY] = 0;
  wp[R_BW] = step;
  wp[R_BH] = h + 2;
  wp[R_HOLE] = 1;
  wp[R_COUNT] = 0;
  wp += R_SIZE;

  // OpenCV's findNext, over pixels 1..w of rows 1..h: it stops at each pixel unlike the one before.
  const int width = w + 1, height = h + 1;
  for (int y = 1; y < height; y++) {
    const schar* row = img + y * step;
    int last_x = 0;
    for (int x0 = 1; x0 < width;) {
      uint64_t m = changes(row + x0);
      if (width - x0 < 64) m &= ((uint64_t)1 << (width - x0)) - 1;
      int next = x0 + 64;
      while (m) {
        const int x = x0 + (int)__builtin_ctzll(m);
        m &= m - 1;
        const schar prev = row[x - 1], p = row[x];
        if ((prev == 0 && p == 1) || (p == 0 && prev >= 1)) {
          if (start_contour(x, y, prev, p, &last_x)) {
            // Tracing may have marked pixels further along the row: look again from the next one.
            next = x + 1;
            break;
          }
        } else if (p & MASK8_FLAGS) {
          last_x = x;
        }
      }
      x0 = next;
    }
  }

  // Results: counts, hierarchy (next, previous, first child, parent), vertices, in the tree's pre-order.
  int32_t* counts = wp;
  int32_t* hierarchy = counts + contours;
  int32_t* xy = hierarchy + 4 * contours;
  reserve(5 * contours + 2 * vertices);
  int i = 0;
  for (int node = stream[R_FIRST_CHILD]; node != -1; node = next_in_order(node)) stream[node + R_OUT] = i++;
  int32_t* v = xy;
  for (int node = stream[R_FIRST_CHILD]; node != -1; node = next_in_order(node)) {
    const int32_t* r = stream + node;
    const int out = r[R_OUT];
    const int n = r[R_COUNT];
    counts[out] = n;
    int32_t* hv = hierarchy + 4 * out;
    hv[0] = out_index(r[R_NEXT]);
    hv[1] = out_index(r[R_PREV]);
    hv[2] = out_index(r[R_FIRST_CHILD]);
    hv[3] = out_index(r[R_PARENT]);
    const int32_t* from = r + R_SIZE;
    for (int k = 0; k < 2 * n; k++) v[k] = from[k];
    v += 2 * n;
  }
  result[0] = (int32_t)(uintptr_t)counts;
  result[1] = (int32_t)(uintptr_t)hierarchy;
  result[2] = (int32_t)(uintptr_t)xy;
  result[3] = vertices;
  return contours;
}

// Where trace() left its results: byte addresses of the counts, the hierarchy and the vertices, then the vertex total.
EXPORT("trace_result")
const int32_t* trace_result(void) {
  return result;
}
