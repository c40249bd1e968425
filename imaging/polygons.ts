import type { MeasuredContour } from "./measurements.ts";
import type { ImageFormat } from "./format.ts";
import type { AnalysisOptions } from "./options.ts";

/** What drawing a result later needs besides its polygons: the upload's format and the drawing options. */
export interface PolygonsMeta {
  format: ImageFormat;
  options: AnalysisOptions;
}

/** A result's polygons as flat integers: `counts[i]` vertices of polygon i, all vertices in `xy` as x, y pairs. */
export interface Polygons {
  meta: PolygonsMeta;
  counts: Int32Array;
  xy: Int32Array;
}

/**
 * Vertices from which a result that is not drawn at analysis time keeps its polygons packed beside its document. Parsing
 * a document costs about 0.3 µs and 90 bytes of heap per vertex (0.5 s for the 1.5 million of a noisy 9-megapixel
 * image); creating a file costs about 0.3 ms (docs/performance.md): below this a document parses in a few milliseconds.
 */
export const PACK_MIN_POINTS = 100_000;

// "BIPP": the layout is this project's own, read only by the version that wrote it or a later one.
const MAGIC = 0x50504942;
const HEADER = 8;

/**
 * Packs the polygons of a lazily drawn result for the drawing on request: read back as typed arrays, they cost a few
 * bytes per vertex, where parsing the result document for them costs ~90 bytes of heap per vertex and ~0.5 s for the
 * 1.5 million vertices of a noisy 9-megapixel image.
 */
export function packPolygons(contours: readonly Pick<MeasuredContour, "points">[], meta: PolygonsMeta): Uint8Array {
  const metaBytes = new TextEncoder().encode(JSON.stringify(meta));
  const metaEnd = HEADER + align4(metaBytes.length);
  const vertices = contours.reduce((n, c) => n + c.points.length, 0);
  const out = new Uint8Array(metaEnd + 4 + contours.length * 4 + vertices * 8);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, metaBytes.length, true);
  out.set(metaBytes, HEADER);
  view.setUint32(metaEnd, contours.length, true);
  const counts = new Int32Array(out.buffer, metaEnd + 4, contours.length);
  const xy = new Int32Array(out.buffer, metaEnd + 4 + contours.length * 4, vertices * 2);
  let at = 0;
  contours.forEach((c, i) => {
    counts[i] = c.points.length;
    for (const [x, y] of c.points) {
      xy[at++] = x;
      xy[at++] = y;
    }
  });
  return out;
}

/** The meta part alone (what the API needs to find the files), without touching the vertices. */
export function readPolygonsMeta(bytes: Uint8Array): PolygonsMeta {
  const { meta } = layout(bytes);
  return meta;
}

/** Reads packed polygons; the arrays are views into `bytes` (copied when `bytes` is not 4-byte aligned). */
export function unpackPolygons(bytes: Uint8Array): Polygons {
  const { meta, metaEnd } = layout(bytes);
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const view = new DataView(aligned.buffer, aligned.byteOffset, aligned.byteLength);
  const n = view.getUint32(metaEnd, true);
  const countsAt = metaEnd + 4;
  if (countsAt + n * 4 > aligned.length) throw new Error("packed polygons are truncated");
  const counts = new Int32Array(aligned.buffer, aligned.byteOffset + countsAt, n);
  const vertices = counts.reduce((s, c) => s + c, 0);
  const xyAt = countsAt + n * 4;
  if (xyAt + vertices * 8 !== aligned.length) throw new Error("packed polygons have the wrong length");
  return { meta, counts, xy: new Int32Array(aligned.buffer, aligned.byteOffset + xyAt, vertices * 2) };
}

function layout(bytes: Uint8Array): { meta: PolygonsMeta; metaEnd: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < HEADER || view.getUint32(0, true) !== MAGIC) throw new Error("not packed polygons");
  const metaLength = view.getUint32(4, true);
  const metaEnd = HEADER + align4(metaLength);
  if (metaEnd + 4 > bytes.length) throw new Error("packed polygons are truncated");
  const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER, HEADER + metaLength))) as PolygonsMeta;
  return { meta, metaEnd };
}

const align4 = (n: number) => (n + 3) & ~3;
