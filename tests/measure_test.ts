import assert from "node:assert/strict";
import { getIssues } from "@placemarkio/check-geojson";
import { analyseContours as analyseAny } from "../imaging/contours.ts";
import { decodeImage } from "../imaging/decode.ts";
import { contoursToCsv, contoursToGeoJson, unitSlug } from "../imaging/export.ts";
import { boxPoints, convexHull, feretDiameters, minAreaRect, polygonArea } from "../imaging/measure.ts";
import type { MeasuredContour as AnyContour, ShapeMeasurements } from "../imaging/measurements.ts";
import { type AnalysisOptions, AnalysisOptionsSchema } from "../imaging/options.ts";
import { loadPipeline } from "../imaging/pipeline.ts";
import type { Raster } from "../imaging/raster.ts";
import { fixture, openCVGray } from "./fixtures.ts";
import { startTestService, waitForTask } from "./harness.ts";

/** A contour measured with `measurements=all`, the measurements under test: every one is there. */
type MeasuredContour = AnyContour & ShapeMeasurements & { mean_intensity: number | null; std_intensity: number | null };

/** analyseContours, its contours typed as `measurements=all` gives them (what `opts` asks for). */
const analyseContours = (...args: Parameters<typeof analyseAny>) =>
  analyseAny(...args) as Omit<ReturnType<typeof analyseAny>, "contours"> & { contours: MeasuredContour[] };

// The measurements under test are those of `measurements=all`.
const opts = (o: Record<string, unknown> = {}): AnalysisOptions =>
  AnalysisOptionsSchema.parse({ measurements: "all", ...o });

/** One contour of measure_reference.json (tests/fixtures/measure_reference.py, native OpenCV 4.6). */
interface NativeMeasurements {
  key: [number, number, number, number, number, number];
  solidity: number;
  extent: number;
  aspect_ratio: number;
  equivalent_diameter: number;
  min_area_rect: [number, number, number, number, number];
  corners: [number, number][];
  enclosing_circle: [number, number, number];
  ellipse?: [number, number, number, number, number] | null;
  ellipse_jittered?: boolean;
  feret: [number, number];
  hu_moments: number[];
  mean_intensity: number | null;
  std_intensity: number | null;
}

const REFERENCE = JSON.parse(
  Deno.readTextFileSync(new URL("./fixtures/measure_reference.json", import.meta.url)),
) as { images: Record<string, NativeMeasurements[]> };

/**
 * Tolerances against native OpenCV, in the measurement's unit. The reference is rounded to 4 decimals and the
 * service's values to 3 or 4; OpenCV computes minAreaRect and minEnclosingCircle in float32 (about 1e-7 relative, so
 * up to ~1e-4 px at these coordinates).
 */
const TOLERANCE = {
  ratio: 1.5e-4, // solidity, extent, aspect_ratio
  length: 2e-3, // px: equivalent diameter, Feret, circle, rectangle and ellipse geometry
  rectArea: 1e-4, // relative
  angle: 0.01, // degrees
  huRelative: 1e-6,
  intensity: 1.5e-3, // gray levels
};

const near = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol;
const keyOf = (c: MeasuredContour) =>
  JSON.stringify([c.point_count, c.area, c.bbox.x, c.bbox.y, c.bbox.width, c.bbox.height]);

/**
 * A rotated rectangle in one canonical form: OpenCV reports an axis-aligned one at 0° or at 90° (sides swapped),
 * depending on where its calipers started, and a line at its direction or the opposite one.
 */
function canonicalRect([x, y, w, h, angle]: number[]): number[] {
  if (h === 0) return [x, y, w, 0, ((angle % 180) + 180) % 180];
  let a = ((angle % 90) + 90) % 90;
  let [cw, ch] = [w, h];
  if (near(a, 90, 1e-3) || near(a, 0, 1e-3)) a = 0;
  if (Math.round((((angle - a) % 180) + 180) % 180) === 90) [cw, ch] = [h, w];
  return [x, y, cw, ch, a];
}

function sortedCorners(corners: number[][]): number[][] {
  return [...corners].sort((p, q) => p[0] - q[0] || p[1] - q[1]);
}

/** Whether every vertex lies in the rectangle (within `tol` px). */
function encloses(c: MeasuredContour, tol: number): boolean {
  const { center, size, angle } = c.min_area_rect;
  const ux = Math.cos((angle * Math.PI) / 180), uy = Math.sin((angle * Math.PI) / 180);
  return c.points.every(([x, y]) => {
    const u = (x - center.x) * ux + (y - center.y) * uy, v = -(x - center.x) * uy + (y - center.y) * ux;
    return Math.abs(u) <= size.width / 2 + tol && Math.abs(v) <= size.height / 2 + tol;
  });
}

for (const name of Object.keys(REFERENCE.images)) {
  Deno.test(`${name}: every contour's shape and intensity measurements equal native OpenCV's`, async (t) => {
    const cv = await loadPipeline();
    const { raster } = decodeImage(await fixture(name));
    const { contours } = analyseContours(cv, raster, opts(), null);
    const ours = new Map(contours.map((c) => [keyOf(c), c]));
    const pairs = REFERENCE.images[name].map((ref) => [ref, ours.get(JSON.stringify(ref.key))] as const);
    await t.step("the same contours (every one, JPEGs included: the decoders agree on these files)", () => {
      assert.equal(contours.length, pairs.length);
      assert.equal(pairs.filter(([, c]) => !c).length, 0);
    });
    const each = (check: (ref: NativeMeasurements, c: MeasuredContour, at: string) => void) => {
      for (const [ref, c] of pairs) check(ref, c!, `${name} contour #${c!.id}`);
    };
    await t.step("solidity, extent, aspect ratio, equivalent diameter", () =>
      each((ref, c, at) => {
        assert.ok(near(c.solidity, ref.solidity, TOLERANCE.ratio), `${at} solidity ${c.solidity} vs ${ref.solidity}`);
        assert.ok(near(c.extent, ref.extent, TOLERANCE.ratio), `${at} extent`);
        assert.ok(near(c.aspect_ratio, ref.aspect_ratio, TOLERANCE.ratio), `${at} aspect_ratio`);
        assert.ok(near(c.equivalent_diameter, ref.equivalent_diameter, TOLERANCE.length), `${at} equivalent_diameter`);
      }));
    await t.step("minimum-area rectangle and its corners", () => {
      let ties = 0;
      each((ref, c, at) => {
        const r = c.min_area_rect;
        const [, , w, h] = ref.min_area_rect;
        const area = r.size.width * r.size.height;
        // Sides rounded to 1e-3 px on both sides.
        const slack = TOLERANCE.rectArea * w * h + (w + h) * 1e-3;
        assert.ok(near(area, w * h, slack), `${at} rect area ${area} vs ${w * h}`);
        const mine = canonicalRect([r.center.x, r.center.y, r.size.width, r.size.height, r.angle]);
        const theirs = canonicalRect(ref.min_area_rect);
        const same = mine.every((v, i) => near(v, theirs[i], i === 4 ? TOLERANCE.angle : TOLERANCE.length));
        if (same) {
          const a = sortedCorners(r.corners), b = sortedCorners(ref.corners);
          a.forEach((p, i) => assert.ok(near(p[0], b[i][0], 2e-2) && near(p[1], b[i][1], 2e-2), `${at} corners`));
          return;
        }
        // Another rectangle of the same area: OpenCV keeps the last of equal ones, this code the first.
        ties++;
        assert.ok(encloses(c, 1e-3), `${at}: ${JSON.stringify(r)} vs ${ref.min_area_rect} does not enclose`);
      });
      assert.ok(ties <= pairs.length / 20, `${ties} rectangles differ from OpenCV's choice among equal ones`);
    });
    await t.step("corners follow cv.boxPoints' order", () =>
      each((_, c, at) => {
        const expected = boxPoints(c.min_area_rect);
        c.min_area_rect.corners.forEach((p, i) => {
          // From the unrounded box: its angle, rounded to 1e-3°, turns a corner by up to ~1e-5 of the size.
          const tol = 1e-3 + (c.min_area_rect.size.width + c.min_area_rect.size.height) * 2e-5;
          assert.ok(near(p[0], expected[i][0], tol) && near(p[1], expected[i][1], tol), at);
        });
      }));
    await t.step("minimum enclosing circle", () =>
      each((ref, c, at) => {
        const [x, y, radius] = ref.enclosing_circle;
        const e = c.enclosing_circle;
        assert.ok(near(e.center.x, x, TOLERANCE.length) && near(e.center.y, y, TOLERANCE.length), `${at} circle`);
        assert.ok(near(e.radius, radius, TOLERANCE.length), `${at} radius ${e.radius} vs ${radius}`);
      }));
    await t.step("fitted ellipse (more than five points, fit not singular) and eccentricity", () => {
      let compared = 0;
      each((ref, c, at) => {
        if (c.point_count < 5) return assert.equal(c.ellipse, null, at);
        // OpenCV fits exactly five points by another method, which shifts them at random when singular.
        if (c.point_count === 5 || ref.ellipse_jittered || !ref.ellipse) return;
        // Near-singular fits are left out (null), as OpenCV's answer there is random.
        if (!c.ellipse) return;
        const e = c.ellipse;
        const [x, y, w, h, angle] = ref.ellipse;
        for (const [a, b] of [[e.center.x, x], [e.center.y, y], [e.size.width, w], [e.size.height, h]]) {
          assert.ok(
            near(a, b, TOLERANCE.length * Math.max(1, b / 100)),
            `${at} ellipse ${JSON.stringify(e)} vs ${ref.ellipse}`,
          );
        }
        const turn = Math.abs(e.angle - angle) % 180;
        if (h - w > 0.01) assert.ok(Math.min(turn, 180 - turn) <= TOLERANCE.angle, `${at} ellipse angle`);
        assert.ok(near(c.eccentricity!, Math.sqrt(1 - (w / h) ** 2), 2e-3), `${at} eccentricity`);
        compared++;
      });
      assert.ok(compared >= pairs.filter(([, c]) => c!.point_count > 5).length * 0.95, `${compared} compared`);
    });
    await t.step("Feret diameters, and their angles measure them", () =>
      each((ref, c, at) => {
        assert.ok(
          near(c.feret.max, ref.feret[0], TOLERANCE.length),
          `${at} feret max ${c.feret.max} vs ${ref.feret[0]}`,
        );
        assert.ok(
          near(c.feret.min, ref.feret[1], TOLERANCE.length),
          `${at} feret min ${c.feret.min} vs ${ref.feret[1]}`,
        );
        const spread = (degrees: number) => {
          const ux = Math.cos((degrees * Math.PI) / 180), uy = Math.sin((degrees * Math.PI) / 180);
          const along = c.points.map(([x, y]) => x * ux + y * uy);
          return Math.max(...along) - Math.min(...along);
        };
        // The angles are rounded to 1e-3°, which moves a projection by up to ~1e-5 of the diameter.
        assert.ok(near(spread(c.feret.min_angle), c.feret.min, 2e-3 + c.feret.max * 1e-4), `${at} min angle`);
        const [a, b] = c.points.length > 1 ? [c.feret.max, spread(c.feret.max_angle)] : [0, 0];
        assert.ok(near(a, b, 2e-3 + a * 1e-4), `${at} max angle`);
      }));
    await t.step("Hu moments", () =>
      each((ref, c, at) => {
        c.hu_moments.forEach((v, i) => {
          const r = ref.hu_moments[i];
          assert.ok(Math.abs(v - r) <= TOLERANCE.huRelative * Math.abs(r) + 1e-15, `${at} hu${i + 1} ${v} vs ${r}`);
        });
      }));
    await t.step("mean and standard deviation of the gray levels inside, holes left out", () =>
      each((ref, c, at) => {
        if (ref.mean_intensity === null) return assert.equal(c.mean_intensity, null, at);
        assert.ok(near(c.mean_intensity!, ref.mean_intensity, TOLERANCE.intensity), `${at} mean ${c.mean_intensity}`);
        assert.ok(near(c.std_intensity!, ref.std_intensity!, TOLERANCE.intensity), `${at} std ${c.std_intensity}`);
      }));
  });
}

/** A 100×80 gray card: a square on the border, a square with a hole holding an island, a disc and a thin bar. */
function card(): Raster {
  const width = 100, height = 80;
  const data = new Uint8Array(width * height);
  const rect = (x: number, y: number, w: number, h: number, v: number) => {
    for (let j = y; j < y + h; j++) data.fill(v, j * width + x, j * width + x + w);
  };
  rect(0, 0, 15, 15, 200); // on the border
  rect(30, 10, 30, 30, 200); // holed square
  rect(38, 18, 14, 14, 0); // its hole
  rect(42, 22, 6, 6, 120); // island in the hole
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) if ((x - 80) ** 2 + (y - 55) ** 2 <= 100) data[y * width + x] = 90;
  }
  rect(10, 60, 40, 3, 250); // thin bar
  return { width, height, channels: 1, data };
}

const plain = { blur: 0, threshold: "binary", threshold_value: 50 };

Deno.test("filters drop contours as min_area does: children move up to the nearest kept ancestor", async (t) => {
  const cv = await loadPipeline();
  const all = analyseContours(cv, card(), opts(plain), null).contours;
  const find = (cs: MeasuredContour[], x: number, y: number) => cs.find((c) => c.bbox.x === x && c.bbox.y === y);
  assert.equal(all.length, 6);
  await t.step("exclude_on_edge drops the square on the border", () => {
    const kept = analyseContours(cv, card(), opts({ ...plain, exclude_on_edge: true }), null).contours;
    assert.equal(kept.length, 5);
    assert.equal(find(kept, 0, 0), undefined);
  });
  await t.step("max_area drops the holed square; its hole moves to the top level, the island stays under it", () => {
    const kept = analyseContours(cv, card(), opts({ ...plain, max_area: 500 }), null).contours;
    assert.equal(find(kept, 30, 10), undefined);
    const hole = kept.find((c) => c.bbox.width === 16 && c.bbox.height === 16)!;
    assert.equal(hole.parent, -1);
    assert.equal(hole.depth, 0);
    const island = find(kept, 42, 22)!;
    assert.equal(island.parent, hole.id);
    assert.equal(island.depth, 1);
  });
  await t.step("circularity_min keeps the round ones, circularity_max the others", () => {
    const round = analyseContours(cv, card(), opts({ ...plain, circularity_min: 0.8 }), null).contours;
    assert.ok(round.length > 0 && round.every((c) => c.circularity >= 0.8));
    assert.ok(round.some((c) => c.bbox.x === 70), "the disc");
    const thin = analyseContours(cv, card(), opts({ ...plain, circularity_max: 0.5 }), null).contours;
    assert.deepEqual(thin.map((c) => [c.bbox.x, c.bbox.y]), [[10, 60]]);
  });
  await t.step("contradictory or incomplete options are refused naming the field", () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ min_area: 10, max_area: 5 }, "min_area"],
      [{ circularity_min: 0.9, circularity_max: 0.2 }, "circularity_min"],
      [{ circularity_min: 1.5 }, "circularity_min"],
      [{ pixel_size: 0.5 }, "pixel_size"],
      [{ unit: "µm" }, "pixel_size"],
      [{ pixel_size: 0, unit: "µm" }, "pixel_size"],
      [{ pixel_size: 1, unit: "a,b" }, "unit"],
      [{ pixel_size: 1, unit: "" }, "unit"],
      [{ pixel_size: 1, unit: "a\u0001" }, "unit"],
    ];
    for (const [o, field] of bad) {
      const r = AnalysisOptionsSchema.safeParse(o);
      assert.equal(r.success, false, JSON.stringify(o));
      assert.equal(String(r.error!.issues[0].path[0]), field, JSON.stringify(o));
    }
  });
});

Deno.test("intensity: a contour's own pixels, holes and islands left out", async () => {
  const cv = await loadPipeline();
  const contours = analyseContours(cv, card(), opts(plain), null).contours;
  const square = contours.find((c) => c.bbox.x === 30)!;
  // Its ring is 200; the hole's contour (and so its interior, the island included) is cut out.
  assert.equal(square.mean_intensity, 200);
  assert.equal(square.std_intensity, 0);
  const island = contours.find((c) => c.bbox.x === 42)!;
  assert.equal(island.mean_intensity, 120);
  const disc = contours.find((c) => c.bbox.x === 70)!;
  assert.equal(disc.mean_intensity, 90);
});

Deno.test("shapes of known geometry", async () => {
  const cv = await loadPipeline();
  const contours = analyseContours(cv, card(), opts(plain), null).contours;
  const square = contours.find((c) => c.bbox.x === 30)!;
  // Vertices at pixel centres: a 30×30 pixel square is a 29×29 polygon.
  assert.deepEqual(square.min_area_rect.size, { width: 29, height: 29 });
  assert.equal(square.solidity, 1);
  assert.equal(square.feret.min, 29);
  assert.equal(square.feret.max, Math.round(29 * Math.SQRT2 * 1000) / 1000);
  assert.equal(square.enclosing_circle.radius, Math.round(29 * Math.SQRT1_2 * 1000) / 1000);
  const bar = contours.find((c) => c.bbox.y === 60)!;
  assert.equal(bar.aspect_ratio, 13.3333);
  assert.equal(bar.feret.min, 2);
  assert.equal(bar.feret.min_angle, 90);
  // Both diagonals of the bar are its diameter.
  const diagonal = Math.round((Math.atan2(2, 39) * 180 / Math.PI) * 1000) / 1000;
  assert.ok([diagonal, 180 - diagonal].includes(bar.feret.max_angle), String(bar.feret.max_angle));
  const disc = contours.find((c) => c.bbox.x === 70)!;
  assert.ok(disc.eccentricity! < 0.1, `disc eccentricity ${disc.eccentricity}`);
  assert.ok(near(disc.ellipse!.center.x, 80, 0.05) && near(disc.ellipse!.center.y, 55, 0.05));
  assert.deepEqual(feretDiameters(convexHull(Int32Array.of(3, 4))), { max: 0, max_angle: 0, min: 0, min_angle: 0 });
});

Deno.test("calibration: lengths and areas also in the unit; CSV with units in its header", async (t) => {
  const cv = await loadPipeline();
  const calibrated = analyseContours(cv, card(), opts({ ...plain, pixel_size: 0.5, unit: "µm" }), null).contours;
  await t.step("a calibrated object per contour, in the unit", () => {
    for (const c of calibrated) {
      const k = c.calibrated!;
      assert.equal(k.unit, "µm");
      assert.ok(near(k.area, c.area * 0.25, 1e-6 * c.area + 1e-9));
      assert.ok(near(k.perimeter, c.perimeter * 0.5, 1e-6 * c.perimeter + 1e-9));
      assert.ok(near(k.feret_max!, c.feret.max * 0.5, 1e-6 * c.feret.max + 1e-9));
      assert.equal(k.ellipse_major === null, c.ellipse === null);
    }
    assert.equal(analyseContours(cv, card(), opts(plain), null).contours[0].calibrated, undefined);
  });
  await t.step("CSV: a header row with units, one row per contour, the JSON's values", () => {
    const csv = contoursToCsv(calibrated, "µm", true);
    assert.ok(csv.endsWith("\r\n"));
    const [header, ...rows] = csv.trimEnd().split("\r\n").map((line) => line.split(","));
    assert.equal(rows.length, calibrated.length);
    for (const col of ["area_px2", "perimeter_px", "feret_max_px", "mean_intensity", "area_um2", "feret_max_um"]) {
      assert.ok(header.includes(col), col);
    }
    for (const row of rows) assert.equal(row.length, header.length);
    const at = (row: string[], col: string) => row[header.indexOf(col)];
    calibrated.forEach((c, i) => {
      assert.equal(Number(at(rows[i], "id")), c.id);
      assert.equal(Number(at(rows[i], "area_px2")), c.area);
      assert.equal(Number(at(rows[i], "area_um2")), c.calibrated!.area);
      assert.equal(Number(at(rows[i], "hu7")), c.hu_moments[6]);
      assert.equal(at(rows[i], "ellipse_major_px"), c.ellipse ? String(c.ellipse.size.height) : "");
    });
    assert.ok(!contoursToCsv(calibrated).includes("_um"), "no calibrated columns without a unit");
    assert.equal(unitSlug("µm"), "um");
    assert.equal(unitSlug("Å"), "A");
    assert.equal(unitSlug("°/s"), "s");
  });
  await t.step("GeoJSON carries the new measurements and stays valid", () => {
    const geo = contoursToGeoJson(calibrated, 100, 80);
    assert.deepEqual(getIssues(JSON.stringify(geo)), []);
    const props = (geo.features as { properties: Record<string, unknown> }[])[0].properties;
    for (const k of ["solidity", "min_area_rect", "feret", "hu_moments", "mean_intensity", "calibrated"]) {
      assert.ok(k in props, k);
    }
  });
});

Deno.test("over HTTP: calibration and filters as upload fields, ?format=csv", async () => {
  const svc = await startTestService({ RENDER: "lazy" });
  try {
    const form = new FormData();
    form.append("file", new File([await fixture("coins.png") as Uint8Array<ArrayBuffer>], "coins.png"));
    const fields = { pixel_size: "2.5", unit: "µm", exclude_on_edge: "true", max_area: "5000", measurements: "all" };
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    const res = await fetch(`${svc.base}/api/v1/images/upload`, { method: "POST", body: form });
    assert.equal(res.status, 202);
    const { task_id } = await res.json();
    const status = await waitForTask(svc.base, task_id);
    assert.equal(status.state, "completed");
    const data = await (await fetch(`${svc.base}/api/v1/images/contours/${task_id}`)).json();
    assert.ok(data.contours.length > 0);
    for (const c of data.contours as MeasuredContour[]) {
      assert.ok(c.area <= 5000);
      assert.ok(c.bbox.x > 0 && c.bbox.y > 0 && c.bbox.x + c.bbox.width < 384 && c.bbox.y + c.bbox.height < 303);
      assert.equal(c.calibrated!.unit, "µm");
    }
    const csvRes = await fetch(`${svc.base}/api/v1/images/contours/${task_id}?format=csv`);
    assert.equal(csvRes.status, 200);
    assert.match(csvRes.headers.get("content-type") ?? "", /^text\/csv; charset=utf-8/);
    const lines = (await csvRes.text()).trimEnd().split("\r\n");
    assert.equal(lines.length, data.contours.length + 1);
    for (const column of ["area_um2", "solidity", "hu7", "mean_intensity", "feret_max_um"]) {
      assert.ok(lines[0].split(",").includes(column), column);
    }
    const links = (await (await fetch(`${svc.base}/api/v1/images/${task_id}`)).json()).links;
    assert.equal(links.csv, `/api/v1/images/contours/${task_id}?format=csv`);

    // By default only the measurements that cost nothing more than the contour itself.
    const plain = new FormData();
    plain.append("file", new File([await fixture("coins.png") as Uint8Array<ArrayBuffer>], "coins.png"));
    const basic = await (await fetch(`${svc.base}/api/v1/images/upload`, { method: "POST", body: plain })).json();
    assert.equal((await waitForTask(svc.base, basic.task_id)).state, "completed");
    const basicData = await (await fetch(`${svc.base}/api/v1/images/contours/${basic.task_id}`)).json();
    const first = basicData.contours[0] as MeasuredContour;
    assert.equal(typeof first.extent, "number");
    assert.equal(typeof first.equivalent_diameter, "number");
    for (const absent of ["solidity", "feret", "hu_moments", "mean_intensity"]) assert.ok(!(absent in first), absent);
    const basicCsv = await (await fetch(`${svc.base}/api/v1/images/contours/${basic.task_id}?format=csv`)).text();
    const header = basicCsv.split("\r\n")[0].split(",");
    assert.ok(header.includes("extent") && !header.includes("solidity"), header.join());
  } finally {
    await svc.close();
  }
});

/** The Feret diameters and the smallest edge-aligned rectangle by brute force: every vertex pair, every hull edge. */
function bruteForce(hull: Int32Array) {
  const n = hull.length / 2;
  let max = 0, min = Infinity, area = Infinity;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      max = Math.max(max, Math.hypot(hull[2 * j] - hull[2 * i], hull[2 * j + 1] - hull[2 * i + 1]));
    }
    const k = (i + 1) % n;
    const ex = hull[2 * k] - hull[2 * i], ey = hull[2 * k + 1] - hull[2 * i + 1], len = Math.hypot(ex, ey);
    let lo = Infinity, hi = -Infinity, width = 0;
    for (let j = 0; j < n; j++) {
      const dx = hull[2 * j] - hull[2 * i], dy = hull[2 * j + 1] - hull[2 * i + 1];
      width = Math.max(width, Math.abs(dx * ey - dy * ex) / len);
      lo = Math.min(lo, (dx * ex + dy * ey) / len);
      hi = Math.max(hi, (dx * ex + dy * ey) / len);
    }
    min = Math.min(min, width);
    area = Math.min(area, width * (hi - lo));
  }
  return { max, min, area };
}

Deno.test("the rotating calipers equal brute force on thousands of odd contours", async () => {
  const cv = await loadPipeline();
  const { raster } = decodeImage(await fixture("camera.png"));
  const gray = openCVGray(cv, raster), binary = new cv.Mat(), hierarchy = new cv.Mat(), found = new cv.MatVector();
  let compared = 0;
  try {
    // Adaptive thresholding gives thousands of small, irregular contours.
    cv.adaptiveThreshold(gray, binary, 255, cv.ADAPTIVE_THRESH_GAUSSIAN_C, cv.THRESH_BINARY, 11, 2);
    cv.findContours(binary, found, hierarchy, cv.RETR_LIST, cv.CHAIN_APPROX_NONE);
    for (let i = 0; i < found.size(); i++) {
      const c = found.get(i);
      const hull = convexHull(c.data32S);
      c.delete();
      if (hull.length < 6) continue;
      const expected = bruteForce(hull);
      const feret = feretDiameters(hull);
      assert.ok(near(feret.max, expected.max, 1e-3) && near(feret.min, expected.min, 1e-3), `#${i}`);
      const { size } = minAreaRect(hull);
      assert.ok(near(size.width * size.height, expected.area, (size.width + size.height) * 1e-3), `#${i} rect`);
      assert.ok(polygonArea(hull) <= expected.area + 1e-9);
      compared++;
    }
  } finally {
    for (const m of [gray, binary, hierarchy, found]) m.delete();
  }
  assert.ok(compared > 1000, `only ${compared} hulls compared`);
});

Deno.test("measurements are the same on every run and survive JSON (no random state, no −0)", async () => {
  const cv = await loadPipeline();
  for (const name of ["hubble_deep_field.jpg", "coins.png"]) {
    const { raster } = decodeImage(await fixture(name));
    const first = analyseContours(cv, raster, opts(), null).contours;
    const again = analyseContours(cv, raster, opts(), null).contours;
    assert.deepEqual(again, first, name);
    assert.deepEqual(JSON.parse(JSON.stringify(first)), first, name);
  }
});
