// The libjpeg-turbo (WASM) path of decodeJpeg, as pool members run it: exact against libjpeg, and the fallback to our
// decoder for what it leaves out. (jpeg_test.ts covers the fallback decoder alone: each test file is its own isolate.)
import assert from "node:assert/strict";
import { decodeImage } from "../imaging/decode.ts";
import { encodeJpegWasm } from "../imaging/jpeg_encode.ts";
import { decodeJpeg } from "../imaging/jpeg.ts";
import { decodeJpegWasm, jpegDecoderMemoryBytes, loadJpegWasm } from "../imaging/jpeg_wasm.ts";
import type { Raster } from "../imaging/raster.ts";
import { assertSameBytes, CODEC_SAMPLES, codecSample, fixture, rgbSha256 } from "./fixtures.ts";
import { ImageError } from "../imaging/image_error.ts";
import { testTempDir } from "./harness.ts";
import {
  cells,
  cornerImage,
  encodeJpeg,
  type EncodeOptions,
  exifPayload,
  FIXTURES,
  readPpm,
  withApp1,
  withoutSegments,
  ycc,
} from "./jpeg_writer.ts";
import { hasCv2, PYTHON } from "./native_tools.ts";

/** The RGB samples of an RGBA raster. */
function rgb(r: Raster): Uint8Array {
  assert.equal(r.channels, 4);
  const out = new Uint8Array(r.width * r.height * 3);
  for (let i = 0, j = 0; i < out.length; i += 3, j += 4) out.set(r.data.subarray(j, j + 3), i);
  return out;
}

/** decodeJpegWasm's result as a raster (asserting that there is one). */
function wasmRaster(bytes: Uint8Array, label: string): Raster {
  const decoded = decodeJpegWasm(bytes);
  assert.ok(decoded, `${label}: decoded`);
  assert.equal(decoded.rgba.length, decoded.width * decoded.height * 4, label);
  return { width: decoded.width, height: decoded.height, channels: 4, data: decoded.rgba };
}

/** A region of a raster as three planes (R, G, B, for jpeg_writer's encodeJpeg). */
function planesOf(r: Raster, x0: number, y0: number, width: number, height: number) {
  const planes = [0, 1, 2].map(() => new Uint8Array(width * height));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < 3; k++) planes[k][y * width + x] = r.data[((y0 + y) * r.width + x0 + x) * r.channels + k];
    }
  }
  return { width, height, planes };
}

/** A smooth colour gradient (what a photograph blown up looks like to the encoder). */
function gradient(width: number, height: number, channels: 1 | 3): Raster {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < channels; k++) {
        data[(y * width + x) * channels + k] = (x * (k + 1) + y * (3 - k)) % 256;
      }
    }
  }
  return { width, height, channels, data };
}

/**
 * Every DQT entry of a file replaced by a large value: the entropy-coded data stays valid (libjpeg does not warn), and
 * the dequantised coefficients of a quality-100 file overflow 16 bits, where libjpeg-turbo's C IDCT and its x86 SIMD
 * IDCT (what native OpenCV runs) part ways.
 */
function withLargeQuantTables(jpeg: Uint8Array): Uint8Array {
  const out = jpeg.slice();
  for (let at = 2; out[at + 1] !== 0xda;) {
    const length = (out[at + 2] << 8) | out[at + 3];
    if (out[at + 1] === 0xdb) {
      for (let p = at + 4; p < at + 2 + length; p += 65) {
        assert.equal(out[p] >> 4, 0, "8-bit tables");
        for (let k = 0; k < 64; k++) out[p + 1 + k] = 100 + ((k * 37 + p) % 156);
      }
    }
    at += 2 + length;
  }
  return out;
}

/** JPEG sampling layouts as [h, v] per component. */
const LAYOUTS: Record<string, [number, number][]> = {
  "4:4:4": [[1, 1], [1, 1], [1, 1]],
  "4:2:2": [[2, 1], [1, 1], [1, 1]],
  "4:2:0": [[2, 2], [1, 1], [1, 1]],
  "4:4:0": [[1, 2], [1, 1], [1, 1]],
  "4:1:1": [[4, 1], [1, 1], [1, 1]],
  "4:1:0": [[4, 2], [1, 1], [1, 1]],
  "2×2, 2×1, 2×1": [[2, 2], [2, 1], [2, 1]],
};

Deno.test("JPEG through libjpeg-turbo (WASM)", async (t) => {
  await loadJpegWasm();
  const rocket = await fixture("rocket.jpg");
  const rocketRaster = decodeImage(rocket).raster;
  /** Files whose pixels the native step below compares with cv2.imdecode's (name → JPEG). */
  const cases = new Map<string, Uint8Array>();
  cases.set("rocket.jpg", rocket);
  cases.set("hubble_deep_field.jpg", await fixture("hubble_deep_field.jpg"));

  for (const sampling of ["420", "422", "440"]) {
    await t.step(`${sampling} chroma: equal to libjpeg-turbo 2.1.5 (djpeg) bit for bit`, async () => {
      const bytes = await Deno.readFile(new URL(`jpeg/crop_${sampling}.jpg`, FIXTURES));
      const ref = readPpm(await Deno.readFile(new URL(`jpeg/crop_${sampling}.libjpeg.ppm`, FIXTURES)));
      cases.set(`crop_${sampling}.jpg`, bytes);
      const direct = wasmRaster(bytes, sampling);
      assert.deepEqual([direct.width, direct.height], [ref.width, ref.height]);
      assertSameBytes(rgb(direct), ref.data, "decodeJpegWasm");
      const { raster, info } = decodeJpeg(bytes);
      assertSameBytes(rgb(raster), ref.data, "decodeJpeg");
      assert.deepEqual(info, {});
    });
  }

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

  await t.step("EXIF orientation is applied (6: rotated a quarter turn clockwise)", () => {
    const upright = decodeJpeg(rocket).raster;
    const { raster, info } = decodeJpeg(withApp1(rocket, exifPayload(6, true)));
    assert.equal(info.orientation, 6);
    assert.deepEqual([raster.width, raster.height], [upright.height, upright.width]);
    // Output (x, y) shows input (y, h - 1 - x).
    for (const [x, y] of [[0, 0], [10, 300], [426, 639]]) {
      const o = (y * raster.width + x) * 4, i = ((upright.height - 1 - x) * upright.width + y) * 4;
      assert.deepEqual([...raster.data.subarray(o, o + 4)], [...upright.data.subarray(i, i + 4)]);
    }
    // decodeJpegWasm itself leaves the pixels as stored.
    assertSameBytes(wasmRaster(withApp1(rocket, exifPayload(6, true)), "EXIF 6").data, upright.data, "as stored");
  });

  await t.step("progressive 4:2:0 with restart markers (beyond jpeg-js) decodes", () => {
    const img = ycc(cornerImage());
    const spec = { ...img, sampling: [[2, 2], [1, 1], [1, 1]] as [number, number][], quant: 4 };
    const baseline = decodeJpeg(encodeJpeg(spec)).raster;
    const progressive = decodeJpeg(encodeJpeg({ ...spec, progressive: true, restartInterval: 2 })).raster;
    assert.deepEqual(progressive, baseline);
  });

  await t.step("every sampling layout, gray and RGB: progressive with restart markers equals baseline", () => {
    // A 61×37 crop: odd sizes, chroma rows longer than one 16-sample SIMD step, partial MCUs at both edges.
    const crop = planesOf(rocketRaster, 200, 150, 61, 37);
    const img = ycc(crop);
    const specs: [string, EncodeOptions][] = [
      ...Object.entries(LAYOUTS).map((
        [name, sampling],
      ): [string, EncodeOptions] => [name, { ...img, sampling, quant: 3 }]),
      ["gray", { width: img.width, height: img.height, planes: [img.planes[0]], quant: 2 }],
      ["RGB (Adobe transform 0)", { ...crop, adobeTransform: 0, quant: 2 }],
    ];
    for (const [name, spec] of specs) {
      const baseline = encodeJpeg(spec), progressive = encodeJpeg({ ...spec, progressive: true, restartInterval: 2 });
      cases.set(`${name} baseline`, baseline);
      cases.set(`${name} progressive, restart markers`, progressive);
      const a = wasmRaster(baseline, name), b = wasmRaster(progressive, `${name} progressive`);
      assert.deepEqual([a.width, a.height], [61, 37], name);
      assertSameBytes(b.data, a.data, `${name}: progressive vs baseline`);
      if (name === "gray") assert.ok(a.data.every((v, i) => i % 4 === 3 ? v === 255 : v === a.data[i - (i % 4)]));
    }
  });

  await t.step("odd sizes (1×1 to 1000×3), gray and colour", () => {
    for (const [width, height] of [[1, 1], [2, 2], [17, 9], [15, 17], [33, 31], [3, 1000], [1000, 3]]) {
      for (const channels of [1, 3] as const) {
        const jpeg = encodeJpegWasm(gradient(width, height, channels), 90);
        const label = `${width}×${height}×${channels}`;
        cases.set(label, jpeg);
        const r = wasmRaster(jpeg, label);
        assert.deepEqual([r.width, r.height], [width, height], label);
      }
    }
  });

  await t.step("CMYK is converted to RGB as OpenCV converts libjpeg's CMYK", () => {
    const stored = [200, 100, 50, 180];
    const cmyk = encodeJpeg({ ...cells(2, 1, 8, () => stored), adobeTransform: 0 });
    const k = stored[3];
    const expected = stored.slice(0, 3).map((c) => k - (((255 - c) * k) >> 8));
    const fromCmyk = decodeJpeg(cmyk);
    assert.equal(fromCmyk.raster.channels, 4);
    assert.deepEqual([...fromCmyk.raster.data.subarray(0, 4)], [...expected, 255]);
    assert.deepEqual(fromCmyk.info.notes, ["CMYK converted to RGB"]);
  });

  await t.step("what it leaves out falls back to our decoder", () => {
    // Truncated (end marker missing): libjpeg would warn and fill with grey; ours decodes the complete scan, noted.
    const cut = decodeJpeg(rocket.subarray(0, rocket.length - 2));
    assert.deepEqual(cut.info.notes, ["JPEG file is truncated (end marker missing)"]);
    // Damaged entropy data: libjpeg's warning makes the WASM path decline rather than return grey blocks.
    const damaged = rocket.slice();
    damaged.fill(0xff, Math.floor(rocket.length / 2), Math.floor(rocket.length / 2) + 64);
    assert.equal(decodeJpegWasm(damaged), null);
  });

  await t.step("truncated files, baseline and progressive, are declined wherever they end", () => {
    const progressive = cases.get("4:2:0 progressive, restart markers")!;
    for (const [name, file] of [["rocket.jpg", rocket], ["progressive 4:2:0", progressive]] as const) {
      for (const fraction of [0.1, 0.35, 0.6, 0.9, 0.999]) {
        const cut = file.subarray(0, Math.floor(file.length * fraction));
        assert.equal(decodeJpegWasm(cut), null, `${name} cut at ${fraction}`);
      }
      assert.equal(decodeJpegWasm(file.subarray(0, file.length - 2)), null, `${name} without its end marker`);
      assert.ok(decodeJpegWasm(file), `${name} whole`);
    }
  });

  await t.step("a libjpeg error (trap) costs only that image: the next one decodes", () => {
    const before = wasmRaster(rocket, "before");
    // An unknown marker right after SOI: libjpeg's error_exit, which traps.
    assert.equal(decodeJpegWasm(Uint8Array.of(0xff, 0xd8, 0xff, 0x01, 0, 4, 0, 0)), null);
    assert.equal(decodeJpegWasm(rocket.subarray(0, 300)), null);
    assertSameBytes(wasmRaster(rocket, "after").data, before.data, "the same pixels after the error");
  });

  await t.step("a file lacking its quantization tables is corrupt, not decoded with the previous image's", () => {
    const noDqt = withoutSegments(rocket, 0xdb);
    for (const before of [rocket, cases.get("hubble_deep_field.jpg")!]) {
      // libjpeg keeps the tables of the image it decoded last, so on its own it would take this file.
      assert.ok(decodeJpegWasm(before));
      assert.ok(decodeJpegWasm(noDqt), "libjpeg-turbo reuses the previous image's tables");
      assert.throws(() => decodeJpeg(noDqt), (err: unknown) => {
        assert.ok(err instanceof ImageError && err.code === "corrupt_image", String(err));
        assert.match(err.message, /quantization table 0 before it is defined/);
        return true;
      });
    }
  });

  await t.step("200 decodes do not grow the WASM memory, and a 12-megapixel image needs no more of it", () => {
    const first = wasmRaster(rocket, "first");
    const after = jpegDecoderMemoryBytes();
    for (let i = 0; i < 200; i++) assert.ok(decodeJpegWasm(rocket));
    assert.equal(jpegDecoderMemoryBytes(), after, "memory after 1 and after 201 decodes");
    assertSameBytes(wasmRaster(rocket, "last").data, first.data, "the same pixels every time");
    // The file, libjpeg's buffers and one band of rows (0.5 MiB): the image is copied out band by band.
    assert.ok(after <= 2 * 2 ** 20, `${after} bytes`);
    const large = encodeJpegWasm(gradient(4000, 3000, 3), 90);
    const r = wasmRaster(large, "4000×3000");
    assert.deepEqual([r.width, r.height], [4000, 3000]);
    // 48 MB of RGBA, through 2 MiB of WASM memory.
    assert.ok(jpegDecoderMemoryBytes() <= 4 * 2 ** 20, `${jpegDecoderMemoryBytes()} bytes after 4000×3000`);
  });

  await t.step("coefficients that overflow 16 bits decode (as native OpenCV's x86 SIMD code does them)", () => {
    const file = withLargeQuantTables(encodeJpegWasm(rocketRaster, 100));
    cases.set("quality 100, large quantisation tables", file);
    wasmRaster(file, "large quantisation tables");
  });

  const cv2 = hasCv2();
  await t.step({
    name: "every file above, and cv2's own progressive and restart-marker files: equal to cv2.imdecode bit for bit",
    ignore: !cv2,
    fn: async () => {
      const dir = testTempDir();
      try {
        const names = [...cases.keys()];
        const decode = names.map((name, i) => ({ name, path: `${dir}/${i}.jpg` }));
        for (const [i, name] of names.entries()) await Deno.writeFile(`${dir}/${i}.jpg`, cases.get(name)!);
        // cv2 writes progressive files with successive approximation of the AC coefficients (jpeg_simple_progression),
        // which jpeg_writer.ts does not.
        const raw = `${dir}/rocket.raw`;
        await Deno.writeFile(raw, rgb(rocketRaster));
        const encode = [
          ["PROGRESSIVE"],
          ["PROGRESSIVE", "RST_INTERVAL"],
          ["RST_INTERVAL"],
        ].flatMap((params, i) =>
          [3, 1].map((channels) => ({
            name: `cv2 ${params.join(" + ")} ${channels === 1 ? "gray" : "colour"}`,
            path: `${dir}/cv2_${i}_${channels}.jpg`,
            params,
            channels,
          }))
        );
        const script = `
import json, sys
import cv2, numpy as np
jobs = json.load(sys.stdin)
raw = np.fromfile(jobs["raw"], np.uint8).reshape(jobs["height"], jobs["width"], 3)
for job in jobs["encode"]:
    img = np.ascontiguousarray(raw[:, :, ::-1])
    if job["channels"] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    flags = []
    for name in job["params"]:
        flags += [getattr(cv2, "IMWRITE_JPEG_" + name), 3 if name == "RST_INTERVAL" else 1]
    ok, jpeg = cv2.imencode(".jpg", img, flags)
    jpeg.tofile(job["path"])
for job in jobs["decode"] + jobs["encode"]:
    img = cv2.imdecode(np.fromfile(job["path"], np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    cv2.cvtColor(img, cv2.COLOR_BGR2RGBA).tofile(job["path"] + ".rgba")`;
        const child = new Deno.Command(PYTHON, { args: ["-c", script], stdin: "piped", stdout: "null" }).spawn();
        const writer = child.stdin.getWriter();
        const jobs = { raw, width: rocketRaster.width, height: rocketRaster.height, decode, encode };
        await writer.write(new TextEncoder().encode(JSON.stringify(jobs)));
        await writer.close();
        assert.ok((await child.status).success, "the python script ran");
        for (const { name, path } of [...decode, ...encode]) {
          const native = await Deno.readFile(`${path}.rgba`);
          const ours = wasmRaster(await Deno.readFile(path), name);
          assertSameBytes(ours.data, native, `${name}: decodeJpegWasm vs cv2.imdecode`);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
  if (!cv2) console.log(`(native OpenCV not compared: ${PYTHON} has no cv2; apt-get install python3-opencv)`);
});

Deno.test("arithmetic coding, CMYK and YCCK files decode to native OpenCV's pixels", async (t) => {
  await loadJpegWasm();
  for (const name of CODEC_SAMPLES.filter((n) => n.endsWith(".jpg"))) {
    await t.step(name, async () => {
      const { bytes, native } = codecSample(name);
      const { raster } = decodeImage(bytes);
      assert.deepEqual([raster.width, raster.height], [native.width, native.height]);
      assert.equal(await rgbSha256(raster), native.rgb_sha256, `${name}: pixels differ from cv2.imread's`);
    });
  }
});

Deno.test("arithmetic coding: truncated and damaged files", async (t) => {
  await loadJpegWasm();
  const sequential = codecSample("rocket_arith.jpg").bytes;
  const progressive = codecSample("rocket_arith_progressive.jpg").bytes;
  /** Decodes; anything but a raster of the right size or an ImageError is a bug. */
  const outcome = (bytes: Uint8Array, label: string) => {
    try {
      const { raster, info } = decodeJpeg(bytes);
      assert.deepEqual([raster.width, raster.height], [240, 128], label);
      return info.notes ?? [];
    } catch (err) {
      if (!(err instanceof ImageError)) assert.fail(`${label}: threw ${err instanceof Error ? err.stack : err}`);
      return err;
    }
  };

  await t.step("a sequential file cut inside its scan is corrupt, not zero-filled", () => {
    for (let len = 400; len < sequential.length - 2; len += 97) {
      const result = outcome(sequential.subarray(0, len), `cut at ${len}`);
      assert.ok(result instanceof ImageError && result.code === "corrupt_image", `cut at ${len}: ${result}`);
    }
  });

  await t.step("a progressive file cut inside a later scan decodes its whole scans, with a note", () => {
    const scans: number[] = [];
    for (let i = 0; i + 1 < progressive.length; i++) {
      if (progressive[i] === 0xff && progressive[i + 1] === 0xda) scans.push(i);
    }
    assert.ok(scans.length > 2);
    const notes = outcome(progressive.subarray(0, scans[2] + 30), "cut in the third scan");
    assert.deepEqual(notes, ["JPEG file is truncated: decoded 2 of 3 scans"]);
  });

  await t.step("every cut and random damage ends in a picture or an ImageError", () => {
    let state = 99;
    const rand = () => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (const [name, file] of [["sequential", sequential], ["progressive", progressive]] as const) {
      for (let len = 0; len < file.length; len += 13) outcome(file.subarray(0, len), `${name} cut at ${len}`);
      for (let round = 0; round < 100; round++) {
        const damaged = file.slice();
        for (let f = 0; f < 1 + (round % 5); f++) damaged[2 + Math.floor(rand() * (file.length - 2))] = rand() * 256;
        outcome(damaged, `${name} damaged, round ${round}`);
      }
    }
  });
});
