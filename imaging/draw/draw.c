// Contour outlines drawn as OpenCV's drawContours draws them with LINE_8 and a thickness of 1 or more, pixel for
// pixel: every closed polygon, every segment from vertex j to vertex j + 1 (the last back to the first).
//
// The pixels follow OpenCV's rasterisation rules (imgproc's drawing code, which defines what its users see):
// - thickness 1: an 8-connected Bresenham line from the left end point to the right one;
// - thickness t > 1: the segment widened to a quadrilateral in 16.16 fixed point, its four sides drawn with the
//   fixed-point line walker and its inside filled by a two-edge scanline walk, then a filled disc of radius
//   (t + 1) / 2 at the segment's end point.
// Everything is integer arithmetic except the quadrilateral's half-width (a double, rounded half to even as lrint
// does) and the clipping of sides that leave the image (doubles truncated), both evaluated in the same order.
// No libc: built by ../wasm_build.sh; the caller lays the image, the vertex counts and the vertices out in memory.

typedef unsigned char u8;
typedef unsigned int u32;
typedef int i32;
typedef long long i64;

#define SHIFT 16
#define ONE (1LL << SHIFT)
#define HALF (ONE >> 1)

// The image being drawn on and the colour, set once per call of draw_polylines.
static u8* image;
static i32 width, height, channels;
static u8 colour[4];
static u32 colour32;

static inline void put(i32 x, i32 y) {
  u8* p = image + ((i64)y * width + x) * channels;
  if (channels == 4) {
    *(u32*)p = colour32;
  } else if (channels == 3) {
    p[0] = colour[0];
    p[1] = colour[1];
    p[2] = colour[2];
  } else {
    *p = 1; // a stamp's canvas (below)
  }
}

static inline void put_clipped(i64 x, i64 y) {
  if (x >= 0 && x < width && y >= 0 && y < height) put((i32)x, (i32)y);
}

// Pixels x0..x1 of row y, already inside the image.
static void span(i32 y, i32 x0, i32 x1) {
  u8* p = image + ((i64)y * width + x0) * channels;
  if (channels == 4) {
    u32* q = (u32*)p;
    for (i32 x = x0; x <= x1; x++) *q++ = colour32;
  } else if (channels == 3) {
    for (i32 x = x0; x <= x1; x++, p += 3) {
      p[0] = colour[0];
      p[1] = colour[1];
      p[2] = colour[2];
    }
  } else {
    for (i32 x = x0; x <= x1; x++) *p++ = 1;
  }
}

static void span_clipped(i64 y, i64 x0, i64 x1) {
  if (y < 0 || y >= height || x1 < 0 || x0 >= width) return;
  span((i32)y, x0 < 0 ? 0 : (i32)x0, x1 >= width ? width - 1 : (i32)x1);
}

// Cohen–Sutherland against [0, w) × [0, h): the y-crossings first, each end using the other's updated values, then the
// x-crossings; intersections in doubles, truncated. Returns whether anything of the segment is left.
static int clip(i64 w, i64 h, i64* x1, i64* y1, i64* x2, i64* y2) {
  if (w <= 0 || h <= 0) return 0;
  i64 right = w - 1, bottom = h - 1;
  int c1 = (*x1 < 0) + (*x1 > right) * 2 + (*y1 < 0) * 4 + (*y1 > bottom) * 8;
  int c2 = (*x2 < 0) + (*x2 > right) * 2 + (*y2 < 0) * 4 + (*y2 > bottom) * 8;
  if ((c1 & c2) == 0 && (c1 | c2) != 0) {
    if (c1 & 12) {
      i64 a = c1 < 8 ? 0 : bottom;
      *x1 += (i64)((double)(a - *y1) * (double)(*x2 - *x1) / (double)(*y2 - *y1));
      *y1 = a;
      c1 = (*x1 < 0) + (*x1 > right) * 2;
    }
    if (c2 & 12) {
      i64 a = c2 < 8 ? 0 : bottom;
      *x2 += (i64)((double)(a - *y2) * (double)(*x2 - *x1) / (double)(*y2 - *y1));
      *y2 = a;
      c2 = (*x2 < 0) + (*x2 > right) * 2;
    }
    if ((c1 & c2) == 0 && (c1 | c2) != 0) {
      if (c1) {
        i64 a = c1 == 1 ? 0 : right;
        *y1 += (i64)((double)(a - *x1) * (double)(*y2 - *y1) / (double)(*x2 - *x1));
        *x1 = a;
        c1 = 0;
      }
      if (c2) {
        i64 a = c2 == 1 ? 0 : right;
        *y2 += (i64)((double)(a - *x2) * (double)(*y2 - *y1) / (double)(*x2 - *x1));
        *x2 = a;
        c2 = 0;
      }
    }
  }
  return (c1 | c2) == 0;
}

// A one-pixel 8-connected line between integer points, walked from its left end (thickness 1).
static void thin_line(i32 ax, i32 ay, i32 bx, i32 by) {
  i64 x1 = ax, y1 = ay, x2 = bx, y2 = by;
  if ((u32)ax >= (u32)width || (u32)bx >= (u32)width || (u32)ay >= (u32)height || (u32)by >= (u32)height) {
    if (!clip(width, height, &x1, &y1, &x2, &y2)) return;
  }
  i32 dx = (i32)(x2 - x1), dy = (i32)(y2 - y1);
  i32 x = (i32)x1, y = (i32)y1;
  if (dx < 0) {
    dx = -dx;
    dy = -dy;
    x = (i32)x2;
    y = (i32)y2;
  }
  i32 sy = 1;
  if (dy < 0) {
    dy = -dy;
    sy = -1;
  }
  // Steps along the major axis each pixel, and along the minor one too whenever the error was negative.
  int steep = dy > dx;
  i32 major = steep ? dy : dx, minor = steep ? dx : dy;
  i32 err = major - 2 * minor;
  for (i32 i = 0; i <= major; i++) {
    put(x, y);
    int diagonal = err < 0;
    err += -2 * minor + (diagonal ? 2 * major : 0);
    if (steep) {
      y += sy;
      if (diagonal) x += 1;
    } else {
      x += 1;
      if (diagonal) y += sy;
    }
  }
}

// A line between 16.16 fixed-point points: one pixel per step along the major axis, the minor coordinate advancing by
// a truncated fixed-point slope, the far end point put on its own first.
static void fixed_line(i64 x1, i64 y1, i64 x2, i64 y2) {
  if (!clip((i64)width << SHIFT, (i64)height << SHIFT, &x1, &y1, &x2, &y2)) return;
  i64 dx = x2 - x1, dy = y2 - y1;
  i64 ax = dx < 0 ? -dx : dx, ay = dy < 0 ? -dy : dy;
  const int x_major = ax > ay;
  // Walked in increasing major coordinate: the end points swap when it decreases (and the minor delta changes sign).
  if (x_major ? dx < 0 : dy < 0) {
    i64 t = x1;
    x1 = x2;
    x2 = t;
    t = y1;
    y1 = y2;
    y2 = t;
    dx = -dx;
    dy = -dy;
  }
  const i64 step = x_major ? dy * ONE / (ax | 1) : dx * ONE / (ay | 1);
  i64 count = x_major ? (x2 - x1) >> SHIFT : (y2 - y1) >> SHIFT;
  x1 += HALF;
  y1 += HALF;
  put_clipped((x2 + HALF) >> SHIFT, (y2 + HALF) >> SHIFT);
  if (x_major) {
    for (i64 x = x1 >> SHIFT; count >= 0; count--, x++, y1 += step) put_clipped(x, y1 >> SHIFT);
  } else {
    for (i64 y = y1 >> SHIFT; count >= 0; count--, y++, x1 += step) put_clipped(x1 >> SHIFT, y);
  }
}

// A convex quadrilateral in 16.16 fixed point: its sides, then its rows between the two edges walked down from the
// topmost vertex (one edge forwards through the vertices, the other backwards; four edge steps in all).
static void quad(const i64* vx, const i64* vy) {
  for (int i = 0, prev = 3; i < 4; prev = i++) fixed_line(vx[prev], vy[prev], vx[i], vy[i]);
  i64 xmin = vx[0], xmax = vx[0], ymin = vy[0], ymax = vy[0];
  int top = 0;
  for (int i = 1; i < 4; i++) {
    if (vy[i] < ymin) {
      ymin = vy[i];
      top = i;
    }
    if (vy[i] > ymax) ymax = vy[i];
    if (vx[i] > xmax) xmax = vx[i];
    if (vx[i] < xmin) xmin = vx[i];
  }
  xmin = (xmin + HALF) >> SHIFT;
  xmax = (xmax + HALF) >> SHIFT;
  ymin = (ymin + HALF) >> SHIFT;
  ymax = (ymax + HALF) >> SHIFT;
  if ((i32)xmax < 0 || (i32)ymax < 0 || (i32)xmin >= width || (i32)ymin >= height) return;
  if (ymax > height - 1) ymax = height - 1;

  i32 idx[2] = {top, top}, dir[2] = {1, 3}, end[2];
  i64 x[2] = {-ONE, -ONE}, dx[2] = {0, 0};
  i32 y = (i32)ymin;
  end[0] = end[1] = y;
  int left_steps = 4;
  do {
    for (int e = 0; e < 2; e++) {
      if (y < end[e]) continue;
      i32 from = idx[e], to = (from + dir[e]) & 3;
      while (left_steps-- > 0) {
        i32 ty = (i32)((vy[to] + HALF) >> SHIFT);
        if (ty > y) {
          end[e] = ty;
          dx[e] = ((vx[to] - vx[from]) * 2 + ((i64)ty - y)) / (2 * ((i64)ty - y));
          x[e] = vx[from];
          idx[e] = to;
          break;
        }
        from = to;
        to = (to + dir[e]) & 3;
      }
    }
    if (left_steps < 0) break;
    if (y >= 0) {
      int l = x[0] > x[1] ? 1 : 0;
      i32 x0 = (i32)((x[l] + HALF) >> SHIFT), x1 = (i32)((x[1 - l] + HALF) >> SHIFT);
      if (x1 >= 0 && x0 < width) span(y, x0 < 0 ? 0 : x0, x1 >= width ? width - 1 : x1);
    }
    x[0] += dx[0];
    x[1] += dx[1];
  } while (++y <= (i32)ymax);
}

// A filled disc: the midpoint circle's octants as rows, each clipped to the image.
static void disc(i32 cx, i32 cy, i32 radius) {
  i64 err = 0, dx = radius, dy = 0, plus = 1, minus = ((i64)radius << 1) - 1;
  while (dx >= dy) {
    span_clipped(cy - dy, cx - dx, cx + dx);
    span_clipped(cy + dy, cx - dx, cx + dx);
    span_clipped(cy - dx, cx - dy, cx + dy);
    span_clipped(cy + dx, cx - dy, cx + dy);
    dy++;
    err += plus;
    plus += 2;
    i64 mask = (err <= 0) - 1;
    err -= minus & mask;
    dx += mask;
    minus -= mask & 2;
  }
}

// One segment of a polyline `thickness` pixels wide (more than 1), from (ax, ay) to (bx, by).
static void thick_segment(i32 ax, i32 ay, i32 bx, i32 by, i32 thickness) {
  i64 x0 = (i64)ax << SHIFT, y0 = (i64)ay << SHIFT, x1 = (i64)bx << SHIFT, y1 = (i64)by << SHIFT;
  double dx = (double)(ax - bx), dy = (double)(by - ay);
  double r = dx * dx + dy * dy;
  i64 half = (i64)thickness << (SHIFT - 1);
  if (r > 2.220446049250313e-16) {
    r = ((double)half + (thickness & 1) * (double)ONE * 0.5) / __builtin_sqrt(r);
    i64 ox = (i64)__builtin_rint(dy * r), oy = (i64)__builtin_rint(dx * r);
    i64 vx[4] = {x0 + ox, x0 - ox, x1 - ox, x1 + ox};
    i64 vy[4] = {y0 + oy, y0 - oy, y1 - oy, y1 + oy};
    quad(vx, vy);
  }
  disc(bx, by, (i32)((half + HALF) >> SHIFT));
}

// Stamps. Away from the image's edges nothing is clipped, and every step above is the same for a segment moved by
// whole pixels (fixed-point coordinates move by multiples of ONE, and differences, shifts and floors move with them):
// a thick segment's pixels are then those of the same segment drawn anywhere else, moved. Contours are mostly short
// segments, so the pixels of each short one are worked out once per call, on a small canvas, and then only written.
#define STAMP_REACH 4          // segments of up to this many pixels along x and along y
#define STAMP_MAX_THICKNESS 4  // larger stamps would not fit STAMP_PIXELS
#define STAMP_PIXELS 96
#define STAMP_SIDE (2 * (STAMP_REACH + STAMP_MAX_THICKNESS + 4) + 1)
#define STAMPS ((2 * STAMP_REACH + 1) * (2 * STAMP_REACH + 1))

typedef signed char i8;
static i8 stamp_at[STAMPS][STAMP_PIXELS][2];
static i32 stamp_count[STAMPS]; // -1: not made yet
static i32 stamp_thickness;     // what the stamps were made for (0: none made)
static u8 canvas[STAMP_SIDE * STAMP_SIDE];

// The pixels (relative to the start) of a segment from (0, 0) to (dx, dy), `thickness` wide: drawn on the canvas.
static void make_stamp(i32 k, i32 dx, i32 dy, i32 thickness) {
  u8* saved_image = image;
  i32 saved_width = width, saved_height = height, saved_channels = channels;
  const i32 c = STAMP_SIDE / 2;
  for (i32 i = 0; i < STAMP_SIDE * STAMP_SIDE; i++) canvas[i] = 0;
  image = canvas;
  width = height = STAMP_SIDE;
  channels = 1;
  thick_segment(c, c, c + dx, c + dy, thickness);
  image = saved_image;
  width = saved_width;
  height = saved_height;
  channels = saved_channels;
  i32 n = 0;
  for (i32 y = 0; y < STAMP_SIDE; y++) {
    for (i32 x = 0; x < STAMP_SIDE; x++) {
      if (!canvas[y * STAMP_SIDE + x]) continue;
      stamp_at[k][n][0] = (i8)(x - c);
      stamp_at[k][n][1] = (i8)(y - c);
      n++;
    }
  }
  stamp_count[k] = n;
}

// One segment of a polyline `thickness` pixels wide (more than 1): stamped when it is short and far enough from the
// edges for nothing to be clipped (the quadrilateral reaches thickness / 2 + 1 pixels out, the disc (thickness + 1) / 2).
static void thick_segment_stamped(i32 ax, i32 ay, i32 bx, i32 by, i32 thickness) {
  const i32 dx = bx - ax, dy = by - ay, margin = thickness + 2;
  const i32 x0 = dx < 0 ? bx : ax, x1 = dx < 0 ? ax : bx, y0 = dy < 0 ? by : ay, y1 = dy < 0 ? ay : by;
  if (thickness > STAMP_MAX_THICKNESS || dx < -STAMP_REACH || dx > STAMP_REACH || dy < -STAMP_REACH ||
      dy > STAMP_REACH || x0 < margin || y0 < margin || x1 >= width - margin || y1 >= height - margin) {
    thick_segment(ax, ay, bx, by, thickness);
    return;
  }
  const i32 k = (dy + STAMP_REACH) * (2 * STAMP_REACH + 1) + dx + STAMP_REACH;
  if (stamp_count[k] < 0) make_stamp(k, dx, dy, thickness);
  const i32 n = stamp_count[k];
  const i8(*at)[2] = stamp_at[k];
  u8* base = image + ((i64)ay * width + ax) * channels;
  const i32 row = width * channels;
  if (channels == 4) {
    for (i32 i = 0; i < n; i++) *(u32*)(base + at[i][1] * row + at[i][0] * 4) = colour32;
  } else {
    for (i32 i = 0; i < n; i++) {
      u8* p = base + at[i][1] * row + at[i][0] * 3;
      p[0] = colour[0];
      p[1] = colour[1];
      p[2] = colour[2];
    }
  }
}

typedef u8 v16 __attribute__((vector_size(16)));

// Converts a gray image (n bytes at src) into RGB at dst, which must not overlap it: sixteen pixels per three byte
// shuffles.
__attribute__((export_name("gray_to_rgb"))) void gray_to_rgb(const u8* src, u8* dst, i32 n) {
  i32 i = 0;
  for (; i + 16 <= n; i += 16, dst += 48) {
    v16 g;
    __builtin_memcpy(&g, src + i, 16);
    v16 a = __builtin_shufflevector(g, g, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5);
    v16 b = __builtin_shufflevector(g, g, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10);
    v16 c = __builtin_shufflevector(g, g, 10, 11, 11, 11, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15);
    __builtin_memcpy(dst, &a, 16);
    __builtin_memcpy(dst + 16, &b, 16);
    __builtin_memcpy(dst + 32, &c, 16);
  }
  for (; i < n; i++, dst += 3) dst[0] = dst[1] = dst[2] = src[i];
}

// Draws `polygons` closed polygons (polygon i has counts[i] vertices, all of them x, y interleaved in xy) on an image
// of w × h pixels of `ch` bytes (3 or 4), in the colour r, g, b (alpha 255 in four-channel images).
__attribute__((export_name("draw_polylines"))) void draw_polylines(u8* img, i32 w, i32 h, i32 ch, const i32* counts,
                                                                   i32 polygons, const i32* xy, i32 thickness, i32 r,
                                                                   i32 g, i32 b) {
  image = img;
  width = w;
  height = h;
  channels = ch;
  colour[0] = (u8)r;
  colour[1] = (u8)g;
  colour[2] = (u8)b;
  colour[3] = 255;
  colour32 = (u32)colour[0] | (u32)colour[1] << 8 | (u32)colour[2] << 16 | 0xffu << 24;
  if (thickness != stamp_thickness) {
    for (i32 k = 0; k < STAMPS; k++) stamp_count[k] = -1;
    stamp_thickness = thickness;
  }
  for (i32 c = 0; c < polygons; c++) {
    i32 n = counts[c];
    for (i32 j = 0; j < n; j++) {
      const i32* a = xy + 2 * j;
      const i32* z = xy + 2 * (j + 1 == n ? 0 : j + 1);
      if (thickness <= 1) thin_line(a[0], a[1], z[0], z[1]);
      else thick_segment_stamped(a[0], a[1], z[0], z[1], thickness);
    }
    xy += 2 * n;
  }
}
