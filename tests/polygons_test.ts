import assert from "node:assert/strict";
import { DEFAULT_OPTIONS } from "../imaging/options.ts";
import { packPolygons, readPolygonsMeta, unpackPolygons } from "../imaging/polygons.ts";

const contours = [
  { points: [[1, 2], [3, 4], [5, 6]] as [number, number][] },
  { points: [[7, 8]] as [number, number][] },
  { points: [] as [number, number][] },
];
const meta = { format: "png" as const, options: { ...DEFAULT_OPTIONS, color: "#ff00aa" } };

Deno.test("packed polygons read back as they were written, the meta alone too", () => {
  const packed = packPolygons(contours, meta);
  assert.deepEqual(readPolygonsMeta(packed), meta);
  const { meta: back, counts, xy } = unpackPolygons(packed);
  assert.deepEqual(back, meta);
  assert.deepEqual([...counts], [3, 1, 0]);
  assert.deepEqual([...xy], [1, 2, 3, 4, 5, 6, 7, 8]);
  // A copy at an odd offset (a view into a larger buffer) reads the same.
  const shifted = new Uint8Array(packed.length + 1).fill(9);
  shifted.set(packed, 1);
  assert.deepEqual([...unpackPolygons(shifted.subarray(1)).xy], [1, 2, 3, 4, 5, 6, 7, 8]);
});

Deno.test("damaged packed polygons are refused, never drawn from", () => {
  const packed = packPolygons(contours, meta);
  assert.throws(() => unpackPolygons(new TextEncoder().encode('{"contours":[]}')), /not packed polygons/);
  for (const cut of [4, 12, packed.length - 4, packed.length - 1]) {
    assert.throws(() => unpackPolygons(packed.subarray(0, cut)), /packed polygons|JSON/, `cut at ${cut}`);
  }
  const longer = new Uint8Array(packed.length + 8);
  longer.set(packed);
  assert.throws(() => unpackPolygons(longer), /wrong length/);
});
