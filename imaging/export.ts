import type { MeasuredContour } from "./measurements.ts";

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

type Column = [header: string, value: (c: MeasuredContour) => number | boolean | null | undefined];

const PIXEL_COLUMNS: Column[] = [
  ["id", (c) => c.id],
  ["parent", (c) => c.parent],
  ["depth", (c) => c.depth],
  ["area_px2", (c) => c.area],
  ["perimeter_px", (c) => c.perimeter],
  ["bbox_x_px", (c) => c.bbox.x],
  ["bbox_y_px", (c) => c.bbox.y],
  ["bbox_width_px", (c) => c.bbox.width],
  ["bbox_height_px", (c) => c.bbox.height],
  ["centroid_x_px", (c) => c.centroid.x],
  ["centroid_y_px", (c) => c.centroid.y],
  ["convex", (c) => c.convex],
  ["circularity", (c) => c.circularity],
  ["extent", (c) => c.extent],
  ["aspect_ratio", (c) => c.aspect_ratio],
  ["equivalent_diameter_px", (c) => c.equivalent_diameter],
  ["point_count", (c) => c.point_count],
];

/** The columns of `measurements=all`. */
const ALL_COLUMNS: Column[] = [
  ["solidity", (c) => c.solidity],
  ["min_rect_center_x_px", (c) => c.min_area_rect?.center.x],
  ["min_rect_center_y_px", (c) => c.min_area_rect?.center.y],
  ["min_rect_width_px", (c) => c.min_area_rect?.size.width],
  ["min_rect_height_px", (c) => c.min_area_rect?.size.height],
  ["min_rect_angle_deg", (c) => c.min_area_rect?.angle],
  ["circle_center_x_px", (c) => c.enclosing_circle?.center.x],
  ["circle_center_y_px", (c) => c.enclosing_circle?.center.y],
  ["circle_radius_px", (c) => c.enclosing_circle?.radius],
  ["ellipse_center_x_px", (c) => c.ellipse?.center.x],
  ["ellipse_center_y_px", (c) => c.ellipse?.center.y],
  ["ellipse_minor_px", (c) => c.ellipse?.size.width],
  ["ellipse_major_px", (c) => c.ellipse?.size.height],
  ["ellipse_angle_deg", (c) => c.ellipse?.angle],
  ["eccentricity", (c) => c.eccentricity],
  ["feret_max_px", (c) => c.feret?.max],
  ["feret_max_angle_deg", (c) => c.feret?.max_angle],
  ["feret_min_px", (c) => c.feret?.min],
  ["feret_min_angle_deg", (c) => c.feret?.min_angle],
  ...[0, 1, 2, 3, 4, 5, 6].map((i): Column => [`hu${i + 1}`, (c) => c.hu_moments?.[i]]),
  ["mean_intensity", (c) => c.mean_intensity],
  ["std_intensity", (c) => c.std_intensity],
];

/** The calibrated columns, named with the unit's ASCII form (`µm` → `um`). */
function calibratedColumns(unit: string, all: boolean): Column[] {
  const u = unitSlug(unit);
  const basic: Column[] = [
    [`area_${u}2`, (c) => c.calibrated?.area],
    [`perimeter_${u}`, (c) => c.calibrated?.perimeter],
    [`equivalent_diameter_${u}`, (c) => c.calibrated?.equivalent_diameter],
    [`bbox_width_${u}`, (c) => c.calibrated?.bbox_width],
    [`bbox_height_${u}`, (c) => c.calibrated?.bbox_height],
  ];
  if (!all) return basic;
  return [
    ...basic,
    [`feret_max_${u}`, (c) => c.calibrated?.feret_max],
    [`feret_min_${u}`, (c) => c.calibrated?.feret_min],
    [`min_rect_width_${u}`, (c) => c.calibrated?.min_rect_width],
    [`min_rect_height_${u}`, (c) => c.calibrated?.min_rect_height],
    [`circle_radius_${u}`, (c) => c.calibrated?.enclosing_radius],
    [`ellipse_major_${u}`, (c) => c.calibrated?.ellipse_major],
    [`ellipse_minor_${u}`, (c) => c.calibrated?.ellipse_minor],
  ];
}

/** A unit as it can stand in a column name: ASCII letters and digits (`µm` → `um`, `Å` → `A`). */
export function unitSlug(unit: string): string {
  const ascii = unit.replace(/[µμ]/g, "u").normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
    .replace(/[^A-Za-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  return ascii || "unit";
}

/**
 * One CSV row per contour (RFC 4180: a header row, CRLF line ends), units in the column names: pixels always, the
 * calibrated unit as well when `unit` is given. An empty cell is a measurement the contour does not have (an ellipse
 * under five vertices, an intensity with no pixel of its own).
 */
export function contoursToCsv(contours: MeasuredContour[], unit?: string, all = false): string {
  const columns = [
    ...PIXEL_COLUMNS,
    ...(all ? ALL_COLUMNS : []),
    ...(unit === undefined ? [] : calibratedColumns(unit, all)),
  ];
  const lines = [columns.map(([header]) => header).join(",")];
  for (const c of contours) lines.push(columns.map(([, value]) => String(value(c) ?? "")).join(","));
  return lines.join("\r\n") + "\r\n";
}
