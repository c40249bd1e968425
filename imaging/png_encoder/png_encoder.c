// PNG image data (the zlib stream of IDAT) for 8-bit gray, RGB and RGBA rasters, with WASM SIMD.
//
// The design follows fpng/fpnge rather than zlib's general-purpose search (docs/png-encoder.md):
//   - each row gets the PNG filter (None, Sub, Up, Average, Paeth) whose output has the smallest sum of absolute
//     values, all five computed 16 bytes at a time;
//   - the only repetition looked for is a run of one byte value (a match at distance 1), found with SIMD compares:
//     after filtering, flat areas and straight edges become runs, and photographic texture has little else that a
//     fast LZ77 search would find;
//   - each call's rows form one deflate block with its own Huffman code, built from a sample of the block, or a
//     stored block when that is smaller (noise), which also bounds the output by the input size;
//   - Adler-32 is computed 16 bytes at a time.
// The caller owns all memory: it lays out a work area (png_work_size), the input rows and the output
// (png_out_bound), and calls png_encode_rows over the image in strips of png_rows_per_call rows, one block each.
// Built by build.sh (clang, wasm32, -msimd128); no libc.
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name)))
#define INLINE static inline __attribute__((always_inline))

typedef uint64_t unaligned_u64 __attribute__((aligned(1)));

// Filtered bytes per block. Larger blocks spend less on code tables; smaller ones follow the image's statistics
// more closely and stay in cache between the passes (filter, histogram, emit). 64 KiB blocks were 6% slower and 0.1%
// larger on the samples, 256 KiB ones 3% faster and 0.15% larger.
#define BLOCK_TARGET (1u << 17)
// Zero bytes before each row buffer: the left neighbours of the first pixel (raw[x - bpp], prior[x - bpp]).
#define PAD 16u
// Bytes after every buffer that 16-byte loads and stores may touch past the data.
#define SLACK 48u
// A run of the previous byte is coded as a match from this length on: shorter ones save next to nothing (3 was
// no smaller on the samples), longer thresholds cost 1.6% in size from 6 on.
#define RUN_MIN 4u
#define MAX_STORED 65535u
// Literal and length codes are limited to 14 bits (deflate allows 15) so that four codes fit one flush of the 64-bit
// bit buffer; the limit costs nothing measurable.
#define LIT_MAX_BITS 14
// A block's code is built from SAMPLE_LEN bytes of every SAMPLE_STEP (in blocks over twice that): a quarter of the
// counting, which on every byte is a quarter of the encoder's time, for 0.2% in size.
#define SAMPLE_LEN 4096u
#define SAMPLE_STEP 16384u

enum { F_NONE, F_SUB, F_UP, F_AVG, F_PAETH };

typedef struct {
  uint32_t width, in_c, out_c, stride, bpp, row_cap, rows_per_call;
  uint32_t started, s1, s2, bitcount;
  uint64_t bitbuf;
  uint8_t *prev, *cur, *block;
  // Histograms of one block: literals in four interleaved tables (consecutive bytes hit different counters, so
  // increments of equal bytes do not wait on each other), runs by length.
  uint32_t lit_hist[4][256];
  uint32_t run_hist[259];
  uint32_t freq[288];
  uint8_t lens[288 + 2];
  // Per literal: the bit-reversed code in the low 16 bits and its length above. Per match length: length code,
  // extra bits and the distance code together, and their total length.
  uint32_t lit_code[256];
  uint32_t match_code[259];
  uint8_t match_bits[259];
  uint8_t len_sym[259];
} State;

static const uint16_t LEN_BASE[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t LEN_EXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint8_t CL_ORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

static uint32_t align16(uint32_t v) { return (v + 15u) & ~15u; }

static uint32_t stride_of(uint32_t width, uint32_t out_c) { return width * out_c; }

static uint32_t row_cap_of(uint32_t stride) { return align16(stride) + SLACK; }

EXPORT("png_rows_per_call")
uint32_t png_rows_per_call(uint32_t width, uint32_t out_c) {
  uint32_t row = stride_of(width, out_c) + 1;
  return row >= BLOCK_TARGET ? 1u : BLOCK_TARGET / row;
}

EXPORT("png_work_size")
uint32_t png_work_size(uint32_t width, uint32_t out_c) {
  uint32_t stride = stride_of(width, out_c);
  uint32_t block = png_rows_per_call(width, out_c) * (stride + 1);
  return align16(sizeof(State)) + 2 * (PAD + row_cap_of(stride)) + 16 + align16(block) + SLACK;
}

// A Huffman block is written only when its code (built from a sample) promises to beat a stored block; it is
// written again as stored when it did not. Before that check, it may have reached 15 bits per byte (a match, at
// least RUN_MIN bytes, takes at most 21 bits) after a header of at most 520 bytes. With the zlib header, Adler-32,
// a partial byte and the 8 bytes a 64-bit store may write past the end, this bounds one call's output.
EXPORT("png_out_bound")
uint32_t png_out_bound(uint32_t width, uint32_t out_c, uint32_t rows) {
  uint32_t n = rows * (stride_of(width, out_c) + 1);
  return n + n / 8 * 7 + 7 + 520 + 2 + 4 + 1 + 8 + 16;
}

EXPORT("png_init")
void png_init(State* s, uint32_t width, uint32_t in_c, uint32_t out_c) {
  uint32_t size = png_work_size(width, out_c);
  __builtin_memset(s, 0, size);
  s->width = width;
  s->in_c = in_c;
  s->out_c = out_c;
  s->bpp = out_c;
  s->stride = stride_of(width, out_c);
  s->row_cap = row_cap_of(s->stride);
  s->rows_per_call = png_rows_per_call(width, out_c);
  s->s1 = 1;
  uint8_t* p = (uint8_t*)s + align16(sizeof(State));
  s->prev = p + PAD;
  s->cur = s->prev + s->row_cap + PAD;
  s->block = s->cur + s->row_cap + 16;
  for (uint32_t len = 3, sym = 0; len <= 258; len++) {
    while (sym < 28 && LEN_BASE[sym + 1] <= len) sym++;
    s->len_sym[len] = (uint8_t)sym;
  }
}

// ---- Filters ----

INLINE v128_t avg_floor(v128_t a, v128_t b) {
  // avgr rounds up; the PNG average rounds down, one less when the sum is odd.
  return wasm_i8x16_sub(wasm_u8x16_avgr(a, b), wasm_v128_and(wasm_v128_xor(a, b), wasm_i8x16_splat(1)));
}

// Paeth's predictor in 8-bit lanes: pa = |b - c|, pb = |a - c| and pc = |(b - c) + (a - c)|, which is pa + pb when
// the two differences have the same sign and |pa - pb| otherwise. pa + pb saturates at 255, which leaves every
// comparison with pa or pb (both <= 255) unchanged.
INLINE v128_t paeth(v128_t a, v128_t b, v128_t c) {
  v128_t pa = wasm_i8x16_sub(wasm_u8x16_max(b, c), wasm_u8x16_min(b, c));
  v128_t pb = wasm_i8x16_sub(wasm_u8x16_max(a, c), wasm_u8x16_min(a, c));
  v128_t same = wasm_v128_not(wasm_v128_xor(wasm_u8x16_gt(b, c), wasm_u8x16_gt(a, c)));
  v128_t pc = wasm_v128_bitselect(wasm_u8x16_add_sat(pa, pb),
                                  wasm_i8x16_sub(wasm_u8x16_max(pa, pb), wasm_u8x16_min(pa, pb)), same);
  v128_t use_a = wasm_v128_and(wasm_u8x16_le(pa, pb), wasm_u8x16_le(pa, pc));
  v128_t use_b = wasm_u8x16_le(pb, pc);
  return wasm_v128_bitselect(a, wasm_v128_bitselect(b, c, use_b), use_a);
}

INLINE v128_t filtered(int f, v128_t x, v128_t a, v128_t b, v128_t c) {
  switch (f) {
    case F_SUB: return wasm_i8x16_sub(x, a);
    case F_UP: return wasm_i8x16_sub(x, b);
    case F_AVG: return wasm_i8x16_sub(x, avg_floor(a, b));
    case F_PAETH: return wasm_i8x16_sub(x, paeth(a, b, c));
    default: return x;
  }
}

// |f| as a signed byte (the heuristic libpng's adaptive filtering also uses), summed into 16-bit lanes.
INLINE v128_t cost(v128_t acc, v128_t f) {
  return wasm_i16x8_add(acc, wasm_u16x8_extadd_pairwise_u8x16(wasm_i8x16_abs(f)));
}

static uint32_t hsum(v128_t v) {
  return (uint32_t)wasm_i32x4_extract_lane(v, 0) + (uint32_t)wasm_i32x4_extract_lane(v, 1) +
         (uint32_t)wasm_i32x4_extract_lane(v, 2) + (uint32_t)wasm_i32x4_extract_lane(v, 3);
}

static int choose_filter(const uint8_t* cur, const uint8_t* prev, uint32_t stride, uint32_t bpp) {
  v128_t total[5];
  for (int f = 0; f < 5; f++) total[f] = wasm_i32x4_splat(0);
  const v128_t iota = wasm_i8x16_make(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (uint32_t x = 0; x < stride;) {
    // 16-bit lanes gain at most 256 per vector: widened to 32 bits every 128 vectors.
    uint32_t end = stride - x > 128 * 16 ? x + 128 * 16 : stride;
    v128_t acc[5];
    for (int f = 0; f < 5; f++) acc[f] = wasm_i16x8_splat(0);
    for (; x + 16 <= end; x += 16) {
      v128_t vx = wasm_v128_load(cur + x), a = wasm_v128_load(cur + x - bpp);
      v128_t b = wasm_v128_load(prev + x), c = wasm_v128_load(prev + x - bpp);
      for (int f = 0; f < 5; f++) acc[f] = cost(acc[f], filtered(f, vx, a, b, c));
    }
    if (x < end) {
      // The row's last bytes: lanes past its end count nothing.
      v128_t mask = wasm_u8x16_lt(iota, wasm_i8x16_splat((int8_t)(end - x)));
      v128_t vx = wasm_v128_load(cur + x), a = wasm_v128_load(cur + x - bpp);
      v128_t b = wasm_v128_load(prev + x), c = wasm_v128_load(prev + x - bpp);
      for (int f = 0; f < 5; f++) acc[f] = cost(acc[f], wasm_v128_and(filtered(f, vx, a, b, c), mask));
      x = end;
    }
    for (int f = 0; f < 5; f++) total[f] = wasm_i32x4_add(total[f], wasm_u32x4_extadd_pairwise_u16x8(acc[f]));
  }
  int best = 0;
  uint32_t best_cost = hsum(total[0]);
  for (int f = 1; f < 5; f++) {
    uint32_t c = hsum(total[f]);
    if (c < best_cost) best_cost = c, best = f;
  }
  return best;
}

INLINE void filter_row_with(int f, uint8_t* dst, const uint8_t* cur, const uint8_t* prev, uint32_t stride,
                            uint32_t bpp) {
  for (uint32_t x = 0; x < stride; x += 16) {
    v128_t vx = wasm_v128_load(cur + x), a = wasm_v128_load(cur + x - bpp);
    v128_t b = wasm_v128_load(prev + x), c = wasm_v128_load(prev + x - bpp);
    wasm_v128_store(dst + x, filtered(f, vx, a, b, c));
  }
}

// Written past `stride` up to the next 16 bytes: the next row's bytes overwrite that, the block has slack.
static void filter_row(int f, uint8_t* dst, const uint8_t* cur, const uint8_t* prev, uint32_t stride, uint32_t bpp) {
  switch (f) {
    case F_SUB: filter_row_with(F_SUB, dst, cur, prev, stride, bpp); break;
    case F_UP: filter_row_with(F_UP, dst, cur, prev, stride, bpp); break;
    case F_AVG: filter_row_with(F_AVG, dst, cur, prev, stride, bpp); break;
    case F_PAETH: filter_row_with(F_PAETH, dst, cur, prev, stride, bpp); break;
    default: filter_row_with(F_NONE, dst, cur, prev, stride, bpp); break;
  }
}

// One input row into the row buffer, RGBA to RGB when the alpha is dropped.
static void load_row(State* s, const uint8_t* src) {
  uint8_t* dst = s->cur;
  if (s->in_c == s->out_c) {
    __builtin_memcpy(dst, src, s->stride);
    return;
  }
  const v128_t pick = wasm_i8x16_make(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0, 0, 0, 0);
  uint32_t x = 0;
  // 16 bytes stored per 12 written: the next store overwrites the 4 extra, the row buffer has slack.
  for (; x + 4 <= s->width; x += 4) {
    wasm_v128_store(dst + 3 * x, wasm_i8x16_swizzle(wasm_v128_load(src + 4 * x), pick));
  }
  for (; x < s->width; x++) {
    dst[3 * x] = src[4 * x];
    dst[3 * x + 1] = src[4 * x + 1];
    dst[3 * x + 2] = src[4 * x + 2];
  }
}

// ---- Adler-32 ----

static void adler32(State* s, const uint8_t* p, uint32_t n) {
  uint32_t s1 = s->s1, s2 = s->s2;
  const v128_t w_lo = wasm_i16x8_make(16, 15, 14, 13, 12, 11, 10, 9);
  const v128_t w_hi = wasm_i16x8_make(8, 7, 6, 5, 4, 3, 2, 1);
  while (n > 0) {
    // 5552 bytes (347 vectors) is the most after which the sums still fit 32 bits before the modulo (zlib's NMAX).
    uint32_t chunk = n < 5552 ? n : 5552;
    uint32_t vectors = chunk / 16;
    n -= chunk;
    // Per lane: the byte sum, the byte sums before each vector (each later counts 16 times in s2) and the sum of
    // bytes weighted by their distance from the vector's end.
    v128_t v1 = wasm_i32x4_splat(0), before = wasm_i32x4_splat(0), v2 = wasm_i32x4_splat(0);
    for (uint32_t k = 0; k < vectors; k++, p += 16) {
      v128_t d = wasm_v128_load(p);
      before = wasm_i32x4_add(before, v1);
      v1 = wasm_i32x4_add(v1, wasm_u32x4_extadd_pairwise_u16x8(wasm_u16x8_extadd_pairwise_u8x16(d)));
      v2 = wasm_i32x4_add(v2, wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(d), w_lo),
                                             wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(d), w_hi)));
    }
    uint64_t t2 = (uint64_t)s2 + (uint64_t)s1 * 16 * vectors + 16 * (uint64_t)hsum(before) + hsum(v2);
    s1 += hsum(v1);
    s2 = (uint32_t)(t2 % 65521);
    for (uint32_t k = vectors * 16; k < chunk; k++) {
      s1 += *p++;
      s2 += s1;
    }
    s1 %= 65521;
    s2 %= 65521;
  }
  s->s1 = s1;
  s->s2 = s2;
}

// ---- Huffman codes ----

typedef struct {
  uint32_t key, sym;
} SymFreq;

// Minimum-redundancy code lengths in place (Moffat and Katajainen): `a` holds frequencies in ascending order and
// receives each symbol's length.
static void minimum_redundancy(SymFreq* a, int n) {
  if (n == 1) {
    a[0].key = 1;
    return;
  }
  a[0].key += a[1].key;
  int root = 0, leaf = 2;
  for (int next = 1; next < n - 1; next++) {
    if (leaf >= n || a[root].key < a[leaf].key) {
      a[next].key = a[root].key;
      a[root++].key = (uint32_t)next;
    } else {
      a[next].key = a[leaf++].key;
    }
    if (leaf >= n || (root < next && a[root].key < a[leaf].key)) {
      a[next].key += a[root].key;
      a[root++].key = (uint32_t)next;
    } else {
      a[next].key += a[leaf++].key;
    }
  }
  a[n - 2].key = 0;
  for (int next = n - 3; next >= 0; next--) a[next].key = a[a[next].key].key + 1;
  int avail = 1, used = 0, depth = 0, root2 = n - 2, next = n - 1;
  while (avail > 0) {
    while (root2 >= 0 && (int)a[root2].key == depth) used++, root2--;
    while (avail > used) a[next--].key = (uint32_t)depth, avail--;
    avail = 2 * used;
    depth++;
    used = 0;
  }
}

// Code lengths of at most `max_len` bits for `n` symbols, always a complete code of at least two symbols (zlib's
// inflate rejects incomplete code-length codes, and a lone symbol needs a partner to be a complete code).
static void huffman_lengths(const uint32_t* freq, int n, int max_len, uint8_t* lens) {
  SymFreq a[288];
  int m = 0;
  for (int i = 0; i < n; i++) {
    lens[i] = 0;
    if (freq[i]) a[m].key = freq[i], a[m++].sym = (uint32_t)i;
  }
  for (int i = 0; m < 2; i++) {
    if (!freq[i]) a[m].key = 1, a[m++].sym = (uint32_t)i;
  }
  // Shell sort by frequency (ties by symbol, for a deterministic code).
  static const int gaps[] = {132, 57, 23, 10, 4, 1};
  for (int g = 0; g < 6; g++) {
    int gap = gaps[g];
    for (int i = gap; i < m; i++) {
      SymFreq t = a[i];
      int j = i;
      for (; j >= gap && (a[j - gap].key > t.key || (a[j - gap].key == t.key && a[j - gap].sym > t.sym)); j -= gap) {
        a[j] = a[j - gap];
      }
      a[j] = t;
    }
  }
  minimum_redundancy(a, m);
  // Lengths over max_len are cut to max_len, then codes are moved one level down until the Kraft sum is exact
  // (the method of miniz's tdefl_huffman_enforce_max_code_size).
  uint32_t count[33] = {0};
  for (int i = 0; i < m; i++) count[a[i].key > 32 ? 32 : a[i].key]++;
  for (int i = max_len + 1; i <= 32; i++) count[max_len] += count[i], count[i] = 0;
  uint32_t total = 0;
  for (int i = max_len; i > 0; i--) total += count[i] << (max_len - i);
  while (total != (1u << max_len)) {
    count[max_len]--;
    for (int i = max_len - 1; i > 0; i--) {
      if (count[i]) {
        count[i]--;
        count[i + 1] += 2;
        break;
      }
    }
    total--;
  }
  // The least frequent symbols (first in `a`) take the longest codes.
  int j = 0;
  for (int len = max_len; len >= 1; len--) {
    for (uint32_t k = count[len]; k > 0; k--) lens[a[j++].sym] = (uint8_t)len;
  }
}

static uint32_t reverse_bits(uint32_t code, uint32_t len) {
  uint32_t r = 0;
  for (uint32_t i = 0; i < len; i++) r = (r << 1) | ((code >> i) & 1);
  return r;
}

// Canonical codes (RFC 1951, 3.2.2), bit-reversed for LSB-first output.
static void canonical_codes(const uint8_t* lens, int n, uint32_t* codes) {
  uint32_t count[16] = {0}, next[16];
  for (int i = 0; i < n; i++) count[lens[i]]++;
  count[0] = 0;
  uint32_t code = 0;
  for (int len = 1; len < 16; len++) {
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  for (int i = 0; i < n; i++) codes[i] = lens[i] ? reverse_bits(next[lens[i]]++, lens[i]) : 0;
}

// ---- Bit output ----

typedef struct {
  uint8_t* out;
  uint64_t bits;
  uint32_t count;
} Bits;

// Callers keep count + n <= 64: at most 7 bits remain after each flush.
#define PUT(w, value, n) ((w).bits |= (uint64_t)(value) << (w).count, (w).count += (n))
#define FLUSH(w)                         \
  do {                                   \
    *(unaligned_u64*)(w).out = (w).bits; \
    (w).out += (w).count >> 3;           \
    (w).bits >>= (w).count & ~7u;        \
    (w).count &= 7;                      \
  } while (0)

// ---- Tokens: literals and runs ----

// Bit k: p[k] equals p[k - 1].
INLINE uint32_t repeats(const uint8_t* p) {
  return wasm_i8x16_bitmask(wasm_i8x16_eq(wasm_v128_load(p), wasm_v128_load(p - 1)));
}

// Length of the run of d[i - 1] from d[i], up to d[n].
INLINE uint32_t run_length(const uint8_t* d, uint32_t i, uint32_t n) {
  v128_t v = wasm_i8x16_splat((int8_t)d[i - 1]);
  uint32_t len = 0;
  for (;;) {
    uint32_t same = wasm_i8x16_bitmask(wasm_i8x16_eq(wasm_v128_load(d + i + len), v));
    if (same != 0xFFFF) {
      len += __builtin_ctz(~same);
      break;
    }
    len += 16;
    if (i + len >= n) break;
  }
  return i + len > n ? n - i : len;
}

// Splits a run into matches of 3..258 bytes; a remainder of 1 or 2 is avoided by shortening the last long one.
#define FOR_EACH_MATCH(len, body)                                            \
  for (uint32_t left_ = (len); left_ > 0;) {                                 \
    uint32_t m_ = left_ <= 258 ? left_ : left_ - 258 < 3 ? left_ - 3 : 258; \
    body;                                                                    \
    left_ -= m_;                                                             \
  }

INLINE void count_literals(State* s, const uint8_t* p, uint32_t n) {
  for (uint32_t k = 0; k < n; k++) s->lit_hist[k & 3][p[k]]++;
}

INLINE void put_literals(State* s, Bits* w, const uint8_t* p, uint32_t n) {
  uint32_t k = 0;
  // Four codes of at most 14 bits after at most 7 pending bits fit the 64-bit buffer.
  for (; k + 4 <= n; k += 4) {
    uint32_t c0 = s->lit_code[p[k]], c1 = s->lit_code[p[k + 1]];
    uint32_t c2 = s->lit_code[p[k + 2]], c3 = s->lit_code[p[k + 3]];
    PUT(*w, c0 & 0xFFFF, c0 >> 16);
    PUT(*w, c1 & 0xFFFF, c1 >> 16);
    PUT(*w, c2 & 0xFFFF, c2 >> 16);
    PUT(*w, c3 & 0xFFFF, c3 >> 16);
    FLUSH(*w);
  }
  for (; k < n; k++) {
    uint32_t c = s->lit_code[p[k]];
    PUT(*w, c & 0xFFFF, c >> 16);
  }
  FLUSH(*w);
}

// Walks d[start..n) as literals and runs: counting them (emit = 0) or writing their codes (emit = 1). The byte
// before d is the stream's previous byte, so a run may start at d[0] (not at the stream's first byte: start 1).
INLINE void tokens(State* s, Bits* w, const uint8_t* d, uint32_t start, uint32_t n, int emit) {
  uint32_t i = start;
  while (i < n) {
    uint32_t left = n - i;
    uint32_t e = repeats(d + i) | (repeats(d + i + 16) << 16);
    if (left < 32) e &= (1u << left) - 1;
    // Bit k: a run of at least RUN_MIN repeats starts at i + k.
    uint32_t m = e;
    for (uint32_t r = 1; r < RUN_MIN; r++) m &= e >> r;
    m &= 0xFFFF;
    uint32_t lits = m ? (uint32_t)__builtin_ctz(m) : left < 16 ? left : 16;
    if (lits == 16) {
      if (emit) put_literals(s, w, d + i, 16);
      else count_literals(s, d + i, 16);
    } else if (lits) {
      if (emit) put_literals(s, w, d + i, lits);
      else count_literals(s, d + i, lits);
    }
    i += lits;
    if (!m) continue;
    uint32_t len = run_length(d, i, n);
    i += len;
    if (emit) {
      FOR_EACH_MATCH(len, {
        PUT(*w, s->match_code[m_], s->match_bits[m_]);
        FLUSH(*w);
      });
    } else {
      FOR_EACH_MATCH(len, s->run_hist[m_]++);
    }
  }
}

// ---- Blocks ----

// Writes d[0..n) as stored blocks of at most 65535 bytes.
static void put_stored(Bits* w, const uint8_t* d, uint32_t n, int final) {
  for (uint32_t at = 0; at < n;) {
    uint32_t len = n - at < MAX_STORED ? n - at : MAX_STORED;
    PUT(*w, final && at + len == n ? 1 : 0, 3);
    w->count = (w->count + 7) & ~7u;
    FLUSH(*w);
    w->out[0] = (uint8_t)len;
    w->out[1] = (uint8_t)(len >> 8);
    w->out[2] = (uint8_t)~len;
    w->out[3] = (uint8_t)(~len >> 8);
    __builtin_memcpy(w->out + 4, d + at, len);
    w->out += 4 + len;
    at += len;
  }
}

static uint64_t stored_bits(uint32_t n) { return 8 * ((uint64_t)n + 5 * (n / MAX_STORED + 1)); }

// Codes d[0..n) as one deflate block: Huffman-coded, or stored when that is not smaller.
static void put_block(State* s, Bits* w, const uint8_t* d, uint32_t n, int final) {
  uint32_t start = 0;
  __builtin_memset(s->lit_hist, 0, sizeof s->lit_hist);
  __builtin_memset(s->run_hist, 0, sizeof s->run_hist);
  if (!s->started) {
    // The stream's first byte has no previous byte to repeat.
    s->lit_hist[0][d[0]]++;
    start = 1;
  }
  s->started = 1;
  // The code is built from a sample, SAMPLE_LEN bytes of every SAMPLE_STEP, unless the block is small. Every symbol
  // then gets a code (unseen ones a long one), and the exact size is known only once written.
  const int complete = n - start <= 2 * SAMPLE_STEP;
  uint32_t sampled = 0;
  for (uint32_t at = start; at < n; at += SAMPLE_STEP) {
    uint32_t end = complete || n - at < SAMPLE_LEN ? n : at + SAMPLE_LEN;
    tokens(s, w, d, at, end, 0);
    sampled += end - at;
  }

  uint32_t* freq = s->freq;
  for (int i = 0; i < 288; i++) freq[i] = complete ? 0 : 1;
  // Sampled counts outweigh the unseen symbols' 1 as they would in the whole block.
  uint32_t scale = complete ? 1 : SAMPLE_STEP / SAMPLE_LEN;
  for (int i = 0; i < 256; i++) {
    freq[i] += scale * (s->lit_hist[0][i] + s->lit_hist[1][i] + s->lit_hist[2][i] + s->lit_hist[3][i]);
  }
  freq[256] = 1;
  for (uint32_t len = 3; len <= 258; len++) freq[257 + s->len_sym[len]] += scale * s->run_hist[len];
  uint8_t* lens = s->lens;
  huffman_lengths(freq, 286, LIT_MAX_BITS, lens);
  uint32_t codes[286];
  canonical_codes(lens, 286, codes);
  int n_lit = 286;
  while (n_lit > 257 && lens[n_lit - 1] == 0) n_lit--;

  // Code lengths of both alphabets as one sequence, run-length coded with symbols 16 (repeat the previous length
  // 3-6 times), 17 (3-10 zeros) and 18 (11-138 zeros). The distance code is two 1-bit codes: only distance 1 (code
  // 0) is used, and a complete code needs no decoder leniency.
  uint8_t all[288];
  for (int i = 0; i < n_lit; i++) all[i] = lens[i];
  all[n_lit] = 1;
  all[n_lit + 1] = 1;
  int n_all = n_lit + 2;
  uint8_t cl_sym[288], cl_extra[288];
  int n_cl = 0;
  for (int i = 0; i < n_all;) {
    uint8_t v = all[i];
    int run = 1;
    while (i + run < n_all && all[i + run] == v) run++;
    i += run;
    if (v == 0) {
      while (run >= 11) {
        int r = run < 138 ? run : 138;
        cl_sym[n_cl] = 18, cl_extra[n_cl++] = (uint8_t)(r - 11);
        run -= r;
      }
      if (run >= 3) cl_sym[n_cl] = 17, cl_extra[n_cl++] = (uint8_t)(run - 3), run = 0;
    } else {
      cl_sym[n_cl] = v, cl_extra[n_cl++] = 0;
      run--;
      while (run >= 3) {
        int r = run < 6 ? run : 6;
        cl_sym[n_cl] = 16, cl_extra[n_cl++] = (uint8_t)(r - 3);
        run -= r;
      }
    }
    while (run-- > 0) cl_sym[n_cl] = v, cl_extra[n_cl++] = 0;
  }
  uint32_t cl_freq[19] = {0};
  for (int i = 0; i < n_cl; i++) cl_freq[cl_sym[i]]++;
  uint8_t cl_lens[19];
  uint32_t cl_codes[19];
  huffman_lengths(cl_freq, 19, 7, cl_lens);
  canonical_codes(cl_lens, 19, cl_codes);
  int n_order = 19;
  while (n_order > 4 && cl_lens[CL_ORDER[n_order - 1]] == 0) n_order--;
  static const uint8_t CL_EXTRA_BITS[19] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7};

  // The Huffman block's size in bits: exact when the whole block was counted, else the sample's scaled to the block.
  uint64_t header = 3 + 14 + 3 * (uint64_t)n_order;
  for (int i = 0; i < n_cl; i++) header += cl_lens[cl_sym[i]] + CL_EXTRA_BITS[cl_sym[i]];
  uint64_t body = 0;
  for (int i = 0; i < 256; i++) {
    body += (uint64_t)(s->lit_hist[0][i] + s->lit_hist[1][i] + s->lit_hist[2][i] + s->lit_hist[3][i]) * lens[i];
  }
  for (uint32_t len = 3; len <= 258; len++) {
    uint32_t sym = s->len_sym[len];
    body += (uint64_t)s->run_hist[len] * (lens[257 + sym] + LEN_EXTRA[sym] + 1);
  }
  if (!complete) body = body * (n - start) / sampled;
  uint64_t stored = stored_bits(n);
  if (header + body >= stored) {
    put_stored(w, d, n, final);
    return;
  }

  for (int i = 0; i < 256; i++) s->lit_code[i] = codes[i] | (uint32_t)lens[i] << 16;
  for (uint32_t len = 3; len <= 258; len++) {
    uint32_t sym = s->len_sym[len], nl = lens[257 + sym];
    s->match_code[len] = codes[257 + sym] | (len - LEN_BASE[sym]) << nl;  // then distance code 0: a zero bit
    s->match_bits[len] = (uint8_t)(nl + LEN_EXTRA[sym] + 1);
  }

  const Bits before = *w;
  PUT(*w, final | 2 << 1, 3);
  PUT(*w, n_lit - 257, 5);
  PUT(*w, 2 - 1, 5);
  PUT(*w, n_order - 4, 4);
  FLUSH(*w);
  for (int i = 0; i < n_order; i++) {
    PUT(*w, cl_lens[CL_ORDER[i]], 3);
    FLUSH(*w);
  }
  for (int i = 0; i < n_cl; i++) {
    PUT(*w, cl_codes[cl_sym[i]], cl_lens[cl_sym[i]]);
    PUT(*w, cl_extra[i], CL_EXTRA_BITS[cl_sym[i]]);
    FLUSH(*w);
  }
  if (start) put_literals(s, w, d, 1);
  tokens(s, w, d, start, n, 1);
  PUT(*w, codes[256], lens[256]);
  FLUSH(*w);
  // A sample that misjudged the block: written again, stored.
  if (8 * (uint64_t)(w->out - before.out) + w->count - before.count > stored) {
    *w = before;
    put_stored(w, d, n, final);
  }
}

// Filters and codes `rows` rows (at `src`, in_c bytes per pixel) as the next block of the stream; `last` ends the
// stream. Returns the number of bytes written at `out`; up to 7 bits stay in the state for the next call.
EXPORT("png_encode_rows")
uint32_t png_encode_rows(State* s, const uint8_t* src, uint32_t rows, uint32_t last, uint8_t* out) {
  Bits w = {out, s->bitbuf, s->bitcount};
  if (!s->started) {
    // zlib header: deflate with a 32 KiB window, "fastest" level, no dictionary; 0x7801 is a multiple of 31.
    PUT(w, 0x78 | 0x01 << 8, 16);
    FLUSH(w);
  }
  const uint32_t stride = s->stride, bpp = s->bpp, src_stride = s->width * s->in_c;
  uint8_t* block = s->block;
  uint32_t n = 0;
  for (uint32_t y = 0; y < rows; y++, src += src_stride) {
    load_row(s, src);
    int f = choose_filter(s->cur, s->prev, stride, bpp);
    block[n] = (uint8_t)f;
    filter_row(f, block + n + 1, s->cur, s->prev, stride, bpp);
    n += stride + 1;
    uint8_t* t = s->prev;
    s->prev = s->cur;
    s->cur = t;
  }
  adler32(s, block, n);
  put_block(s, &w, block, n, last != 0);
  // The next block may start with a run of this block's last byte.
  block[-1] = block[n - 1];
  if (last) {
    w.count = (w.count + 7) & ~7u;
    FLUSH(w);
    uint32_t a = s->s2 << 16 | s->s1;
    PUT(w, (a >> 24) | (a >> 8 & 0xFF00) | (a << 8 & 0xFF0000) | (a << 24), 32);
  }
  FLUSH(w);
  s->bitbuf = w.bits;
  s->bitcount = w.count;
  return (uint32_t)(w.out - out);
}
