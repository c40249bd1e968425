// The libjpeg-turbo (WASM) path of decodeJpeg, as pool members run it: exact against libjpeg, and the fallback to our
// decoder for what it leaves out. (jpeg_test.ts covers the fallback decoder alone: each test file is its own isolate.)
import assert from "node:assert/strict";
import { decodeJpeg } from "../imaging/jpeg.ts";
import { decodeJpegWasm, loadJpegWasm } from "../imaging/jpeg_wasm.ts";
import type { Raster } from "../imaging/raster.ts";
import { cells, cornerImage, encodeJpeg, exifPayload, FIXTURES, readPpm, withApp1, ycc } from "./jpeg_writer.ts";

/** The RGB samples of an RGBA raster. */
function rgb(r: Raster): Uint8Array {
  assert.equal(r.channels, 4);
  const out = new Uint8Array(r.width * r.height * 3);
  for (let i = 0, j = 0; i < out.length; i += 3, j += 4) out.set(r.data.subarray(j, j + 3), i);
  return out;
}

Deno.test("JPEG through libjpeg-turbo (WASM)", async (t) => {
  await loadJpegWasm();

  for (const sampling of ["420", "422"]) {
    await t.step(`${sampling} chroma: equal to libjpeg-turbo 2.1.5 (djpeg) bit for bit`, async () => {
      const bytes = await Deno.readFile(new URL(`jpeg/crop_${sampling}.jpg`, FIXTURES));
      const ref = readPpm(await Deno.readFile(new URL(`jpeg/crop_${sampling}.libjpeg.ppm`, FIXTURES)));
      const { raster, info } = decodeJpeg(bytes);
      assert.deepEqual([raster.width, raster.height], [ref.width, ref.height]);
      assert.deepEqual(rgb(raster), ref.data);
      assert.deepEqual(info, {});
    });
  }

  await t.step("440 chroma takes our decoder: the WASM build replicates it, libjpeg-turbo 2.1 smooths it", async () => {
    const bytes = await Deno.readFile(new URL("jpeg/crop_440.jpg", FIXTURES));
    const ref = readPpm(await Deno.readFile(new URL("jpeg/crop_440.libjpeg.ppm", FIXTURES)));
    const wasm = decodeJpegWasm(bytes)!;
    const wasmOff = wasm.rgba.some((v, i) => i % 4 !== 3 && v !== ref.data[Math.floor(i / 4) * 3 + (i % 4)]);
    assert.ok(wasmOff, "if the WASM build now smooths 4:4:0 too, it can take these files");
    const { raster } = decodeJpeg(bytes);
    assert.equal(raster.channels, 3);
    assert.ok(raster.data.every((v, i) => Math.abs(v - ref.data[i]) <= 3));
  });

  await t.step("a gray file decodes to RGBA with R = G = B and opaque alpha", () => {
    const { width, height, planes } = cornerImage();
    const { raster } = decodeJpeg(encodeJpeg({ width, height, planes: [planes[0]] }));
    assert.equal(raster.channels, 4);
    for (let i = 0; i < raster.data.length; i += 4) {
      assert.ok(
        raster.data[i] === raster.data[i + 1] && raster.data[i] === raster.data[i + 2] && raster.data[i + 3] === 255,
      );
    }
  });

  await t.step("EXIF orientation is applied (6: rotated a quarter turn clockwise)", async () => {
    const bytes = await Deno.readFile(new URL("rocket.jpg", FIXTURES));
    const upright = decodeJpeg(bytes).raster;
    const { raster, info } = decodeJpeg(withApp1(bytes, exifPayload(6, true)));
    assert.equal(info.orientation, 6);
    assert.deepEqual([raster.width, raster.height], [upright.height, upright.width]);
    // Output (x, y) shows input (y, h - 1 - x).
    for (const [x, y] of [[0, 0], [10, 300], [426, 639]]) {
      const o = (y * raster.width + x) * 4, i = ((upright.height - 1 - x) * upright.width + y) * 4;
      assert.deepEqual([...raster.data.subarray(o, o + 4)], [...upright.data.subarray(i, i + 4)]);
    }
  });

  await t.step("progressive 4:2:0 with restart markers (beyond jpeg-js) decodes", () => {
    const img = ycc(cornerImage());
    const spec = { ...img, sampling: [[2, 2], [1, 1], [1, 1]] as [number, number][], quant: 4 };
    const baseline = decodeJpeg(encodeJpeg(spec)).raster;
    const progressive = decodeJpeg(encodeJpeg({ ...spec, progressive: true, restartInterval: 2 })).raster;
    assert.deepEqual(progressive, baseline);
  });

  await t.step("what it leaves out falls back to our decoder", async () => {
    // CMYK: libjpeg cannot give RGBA for it.
    const cmyk = encodeJpeg({ ...cells(2, 1, 8, () => [200, 100, 50, 180]), adobeTransform: 0 });
    assert.equal(decodeJpegWasm(cmyk), null);
    const fromCmyk = decodeJpeg(cmyk);
    assert.equal(fromCmyk.raster.channels, 3);
    assert.deepEqual(fromCmyk.info.notes, ["CMYK converted to RGB"]);
    // Truncated (end marker missing): libjpeg would warn and fill with grey; ours decodes the complete scan, noted.
    const bytes = await Deno.readFile(new URL("rocket.jpg", FIXTURES));
    const cut = decodeJpeg(bytes.subarray(0, bytes.length - 2));
    assert.deepEqual(cut.info.notes, ["JPEG file is truncated (end marker missing)"]);
    // Damaged entropy data: libjpeg's warning makes the WASM path decline rather than return grey blocks.
    const damaged = bytes.slice();
    damaged.fill(0xff, Math.floor(bytes.length / 2), Math.floor(bytes.length / 2) + 64);
    assert.equal(decodeJpegWasm(damaged), null);
  });
});
