import type { MeasuredContour } from "./contours.ts";

type Ring = [number, number][];

/** Contours grouped into polygons: each outer contour (even depth) with its direct children as holes. */
function polygons(contours: MeasuredContour[]): { outer: MeasuredContour; holes: MeasuredContour[] }[] {
  const holes = new Map<number, MeasuredContour[]>();
  for (const c of contours) {
    if (c.depth % 2 === 1 && c.parent >= 0) holes.set(c.parent, [...(holes.get(c.parent) ?? []), c]);
  }
  return contours.filter((c) => c.depth % 2 === 0).map((outer) => ({ outer, holes: holes.get(outer.id) ?? [] }));
}

const pathData = (points: Ring) => points.length ? `M${points.map(([x, y]) => `${x} ${y}`).join("L")}Z` : "";

/** Renders contours as SVG paths over the image's size; holes cut out with fill-rule="evenodd". */
export function contoursToSvg(contours: MeasuredContour[], width: number, height: number, color = "#00ff00"): string {
  const paths = polygons(contours).map(({ outer, holes }) => {
    const d = [outer, ...holes].map((c) => pathData(c.points)).join("");
    const ids = [outer.id, ...holes.map((h) => h.id)].join(" ");
    return `  <path data-id="${outer.id}" data-rings="${ids}" data-area="${outer.area}" d="${d}"/>`;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<g fill="${color}" fill-opacity="0.35" stroke="${color}" stroke-width="1" fill-rule="evenodd">`,
    ...paths,
    `</g>`,
    `</svg>`,
    "",
  ].join("\n");
}

// Twice the signed area: positive when counter-clockwise in a y-up frame.
function signedArea2(ring: Ring): number {
  let s = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) s += ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
  return s;
}

function closedRing(points: Ring, counterClockwise: boolean): Ring | undefined {
  const distinct = points.filter((p, i) => i === 0 || p[0] !== points[i - 1][0] || p[1] !== points[i - 1][1]);
  if (distinct.length < 3) return undefined;
  const ring = signedArea2(distinct) > 0 === counterClockwise ? [...distinct] : [...distinct].reverse();
  ring.push(ring[0]);
  return ring;
}

/** GeoJSON FeatureCollection of Polygons (outer ring plus holes from the hierarchy), in pixel coordinates. */
export function contoursToGeoJson(contours: MeasuredContour[], width: number, height: number): Record<string, unknown> {
  let skipped = 0;
  const features = [];
  for (const { outer, holes } of polygons(contours)) {
    // RFC 7946 winding: exterior counter-clockwise, holes clockwise.
    const shell = closedRing(outer.points, true);
    if (!shell) {
      skipped++;
      continue;
    }
    const rings = [shell];
    for (const h of holes) {
      const ring = closedRing(h.points, false);
      if (ring) rings.push(ring);
      else skipped++;
    }
    const { points: _points, ...measurements } = outer;
    features.push({
      type: "Feature",
      id: outer.id,
      geometry: { type: "Polygon", coordinates: rings },
      properties: { ...measurements, holes: holes.map((h) => h.id) },
    });
  }
  return {
    type: "FeatureCollection",
    features,
    // Foreign members (RFC 7946 §6.1): the frame, and contours too small to be a polygon (one or two points).
    image: { width, height, crs: "pixel coordinates, origin top-left, y down" },
    skipped_degenerate: skipped,
  };
}
