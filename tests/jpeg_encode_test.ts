import assert from "node:assert/strict";
import { decodeImage } from "../imaging/decode.ts";
import { encodeJpeg } from "../imaging/encode.ts";
import { encodeJpegWasm, jpegEncoderMemoryBytes, loadJpegEncoder } from "../imaging/jpeg_encode.ts";
import { decodeJpegWasm, loadJpegWasm } from "../imaging/jpeg_wasm.ts";
import type { Raster } from "../imaging/raster.ts";
import { assertSameBytes, fixture, SAMPLES, seededRandom } from "./fixtures.ts";
import { testTempDir } from "./harness.ts";
import { hasClang, hasCv2, PYTHON } from "./native_tools.ts";

const WASM = new URL("../imaging/libjpeg_turbo/libjpeg_turbo.wasm", import.meta.url);

/** What a JPEG's markers say: its frame type, size and components, and which tables it carries. */
interface Frame {
  sof: number;
  precision: number;
  width: number;
  height: number;
  /** Per component: id and sampling factors as one byte (H << 4 | V), as in the SOF segment. */
  components: { id: number; sampling: number }[];
  markers: number[];
}

/** Walks the segments up to the first scan (and checks that the file ends with EOI). */
function readFrame(jpeg: Uint8Array): Frame {
  assert.deepEqual([jpeg[0], jpeg[1]], [0xff, 0xd8], "SOI");
  assert.deepEqual([jpeg.at(-2), jpeg.at(-1)], [0xff, 0xd9], "EOI");
  const view = new DataView(jpeg.buffer, jpeg.byteOffset, jpeg.byteLength);
  const markers: number[] = [];
  let frame: Omit<Frame, "markers"> | undefined;
  for (let at = 2; at < jpeg.length;) {
    assert.equal(jpeg[at], 0xff, `a marker at ${at}`);
    const marker = jpeg[at + 1];
    markers.push(marker);
    const length = view.getUint16(at + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      const n = jpeg[at + 9];
      frame = {
        sof: marker,
        precision: jpeg[at + 4],
        height: view.getUint16(at + 5),
        width: view.getUint16(at + 7),
        components: Array.from(
          { length: n },
          (_, i) => ({ id: jpeg[at + 10 + i * 3], sampling: jpeg[at + 11 + i * 3] }),
        ),
      };
    }
    if (marker === 0xda) break;
    at += 2 + length;
  }
  assert.ok(frame, "a frame header");
  return { ...frame, markers };
}

/** Asserts a baseline (SOF0, Huffman-coded) frame of the raster's size: 4:2:0 YCbCr for colour, one component for gray. */
function assertBaseline(jpeg: Uint8Array, raster: Raster): void {
  const frame = readFrame(jpeg);
  assert.equal(frame.sof, 0xc0, `SOF0 (baseline), not SOF${frame.sof - 0xc0}`);
  assert.equal(frame.precision, 8);
  assert.deepEqual([frame.width, frame.height], [raster.width, raster.height]);
  assert.ok(frame.markers.includes(0xc4), "Huffman tables (DHT)");
  assert.ok(!frame.markers.includes(0xcc), "no arithmetic-coding conditioning (DAC)");
  assert.ok(frame.markers.includes(0xdb), "quantisation tables (DQT)");
  const sampling = frame.components.map((c) => c.sampling);
  assert.deepEqual(sampling, raster.channels === 1 ? [0x11] : [0x22, 0x11, 0x11]);
}

/** RGB (or gray) samples of a raster, alpha dropped. */
function colour(raster: Raster, p: number, k: number): number {
  return raster.data[p * raster.channels + (raster.channels === 1 ? 0 : k)];
}

/**
 * PSNR in dB of a decoded JPEG (RGBA) against the raster: over the luma (BT.601 weights, which is what JPEG keeps at
 * full resolution) and over R, G and B.
 */
function psnr(raster: Raster, rgba: Uint8Array): { luma: number; rgb: number } {
  let luma = 0, rgb = 0;
  const n = raster.width * raster.height;
  for (let p = 0; p < n; p++) {
    let y = 0;
    for (let k = 0; k < 3; k++) {
      const d = colour(raster, p, k) - rgba[p * 4 + k];
      rgb += d * d;
      y += [0.299, 0.587, 0.114][k] * d;
    }
    luma += y * y;
  }
  const db = (se: number, count: number) => se === 0 ? Infinity : 10 * Math.log10((255 * 255 * count) / se);
  return { luma: db(luma, n), rgb: db(rgb, 3 * n) };
}

/** Whether every pixel has R = G = B (no chroma for 4:2:0 to lose). */
function grayContent(raster: Raster): boolean {
  for (let p = 0; p < raster.width * raster.height; p++) {
    if (colour(raster, p, 0) !== colour(raster, p, 1) || colour(raster, p, 1) !== colour(raster, p, 2)) return false;
  }
  return true;
}

/** The raster's pixels as RGB (gray repeated, alpha dropped). */
function toRgb(raster: Raster): Raster {
  const n = raster.width * raster.height;
  const data = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) for (let k = 0; k < 3; k++) data[p * 3 + k] = colour(raster, p, k);
  return { width: raster.width, height: raster.height, channels: 3, data };
}

/** A smooth colour gradient with a little noise (photograph-like: what quality 95 keeps within a few levels). */
function gradient(width: number, height: number, channels: 1 | 3 | 4, seed: number): Raster {
  const random = seededRandom(seed);
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < channels; k++) {
        const v = 40 + ((x * (3 + k) + y * (5 - k)) % 160) + Math.floor(random() * 8);
        data[(y * width + x) * channels + k] = k === 3 ? Math.floor(random() * 256) : v;
      }
    }
  }
  return { width, height, channels, data };
}

async function decodedSamples(): Promise<[string, Raster][]> {
  return await Promise.all(
    SAMPLES.map(async (name) => [name, decodeImage(await fixture(name)).raster] as [string, Raster]),
  );
}

Deno.test("JPEG encoder: baseline files that decode to the samples at quality 95", async (t) => {
  await Promise.all([loadJpegWasm(), loadJpegEncoder()]);
  const samples = await decodedSamples();

  await t.step("each sample as decoded (gray, RGB, RGBA) and as RGB: SOF0, 4:2:0 for colour, luma PSNR ≥ 38 dB", () => {
    for (const [name, decoded] of samples) {
      for (const raster of [decoded, toRgb(decoded)]) {
        const label = `${name} (${raster.channels} channels)`;
        const jpeg = encodeJpeg(raster);
        assertBaseline(jpeg, raster);
        const back = decodeJpegWasm(jpeg);
        assert.ok(back, `${label} decodes`);
        assert.deepEqual([back.width, back.height], [raster.width, raster.height], label);
        const { luma, rgb } = psnr(raster, back.rgba);
        assert.ok(luma >= 38, `${label}: luma PSNR ${luma.toFixed(2)} dB`);
        // Colour photographs lose more in R, G, B through 4:2:0 chroma: 34.7 dB (rocket.jpg) and 35.8 dB (hubble),
        // the same as cv2.imencode's files, which these are byte for byte (see below).
        assert.ok(rgb >= (grayContent(raster) ? 38 : 34), `${label}: RGB PSNR ${rgb.toFixed(2)} dB`);
      }
    }
  });

  await t.step("gray input gives a one-component JPEG", () => {
    const raster = gradient(40, 30, 1, 1);
    const frame = readFrame(encodeJpeg(raster));
    assert.equal(frame.components.length, 1);
    const back = decodeJpegWasm(encodeJpeg(raster))!;
    assert.ok(psnr(raster, back.rgba).rgb >= 38);
  });

  await t.step("odd sizes (1×1, 17×9, 3×1000, 1000×3) in gray, RGB and RGBA", () => {
    for (const [width, height] of [[1, 1], [17, 9], [3, 1000], [1000, 3], [2, 2], [15, 17]]) {
      for (const channels of [1, 3, 4] as const) {
        const raster = gradient(width, height, channels, width * 7 + height + channels);
        const label = `${width}×${height}×${channels}`;
        const jpeg = encodeJpeg(raster);
        assertBaseline(jpeg, raster);
        const back = decodeJpegWasm(jpeg);
        assert.ok(back, `${label} decodes`);
        assert.deepEqual([back.width, back.height], [width, height], label);
        const { luma } = psnr(raster, back.rgba);
        assert.ok(luma >= 38, `${label}: luma PSNR ${luma.toFixed(2)} dB`);
      }
    }
  });

  await t.step("RGBA: the alpha channel is ignored (the same file as the RGB pixels)", () => {
    const rgba = gradient(123, 45, 4, 9);
    assertSameBytes(encodeJpeg(rgba), encodeJpeg(toRgb(rgba)), "RGBA vs RGB");
    const opaque = { ...rgba, data: rgba.data.map((v, i) => i % 4 === 3 ? 255 : v) };
    assertSameBytes(encodeJpeg(rgba), encodeJpeg(opaque), "random alpha vs opaque");
  });

  await t.step("quality: the default is 95, lower qualities give smaller files, invalid ones are refused", () => {
    const raster = toRgb(samples.find(([name]) => name === "rocket.jpg")![1]);
    assertSameBytes(encodeJpeg(raster), encodeJpeg(raster, 95), "default quality");
    assert.ok(encodeJpeg(raster, 50).length < encodeJpeg(raster, 95).length);
    assert.ok(encodeJpeg(raster, 1).length > 0 && encodeJpeg(raster, 100).length > 0);
    for (const quality of [0, 101, 94.5, NaN, -5, Infinity]) {
      assert.throws(() => encodeJpeg(raster, quality), RangeError, `quality ${quality}`);
    }
  });

  await t.step("bad rasters are refused before reaching libjpeg", () => {
    const ok = gradient(4, 4, 3, 1);
    assert.throws(() => encodeJpegWasm({ ...ok, width: 0 }), RangeError);
    assert.throws(() => encodeJpegWasm({ ...ok, height: 70000 }), RangeError);
    assert.throws(() => encodeJpegWasm({ ...ok, width: 5 }), RangeError, "data too short");
    assert.throws(() => encodeJpegWasm({ ...ok, channels: 2 as 3 }), RangeError);
  });

  await t.step("the module imports nothing, and a libjpeg error traps with libjpeg's message (encoder.c)", () => {
    const module = new WebAssembly.Module(Deno.readFileSync(WASM));
    assert.deepEqual(WebAssembly.Module.imports(module), [], "no WASI or other imports");
    const e = new WebAssembly.Instance(module, {}).exports as unknown as {
      memory: WebAssembly.Memory;
      input_buffer(size: number): number;
      encode(width: number, height: number, channels: number, quality: number): number;
      error_code(): number;
      message(code: number): number;
    };
    assert.ok(e.input_buffer(48) > 0);
    // What jpeg_encode.ts never passes: libjpeg refuses it in jpeg_start_compress, through error_exit.
    assert.throws(() => e.encode(0, 4, 3, 95), WebAssembly.RuntimeError);
    const at = e.message(e.error_code());
    const bytes = new Uint8Array(e.memory.buffer, at, 200);
    assert.match(new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0))), /^Empty JPEG image/);
  });

  await t.step("300 encodes do not grow the WASM memory", () => {
    const raster = toRgb(samples.find(([name]) => name === "camera.png")![1]);
    const first = encodeJpeg(raster);
    const after = jpegEncoderMemoryBytes();
    for (let i = 0; i < 300; i++) encodeJpeg(raster);
    assert.equal(jpegEncoderMemoryBytes(), after, "memory after 1 and after 301 encodes");
    assertSameBytes(encodeJpeg(raster), first, "the same file every time");
    // Input (786 KiB), output and libjpeg's buffers: a few MiB, not 300 images' worth.
    assert.ok(after < 8 * 2 ** 20, `${after} bytes`);
  });

  const cv2 = hasCv2();
  await t.step({
    name: "native OpenCV (python3 cv2) reads the files, and its imencode at quality 95 writes the same bytes",
    ignore: !cv2,
    fn: async () => {
      const dir = testTempDir();
      try {
        const files: Record<string, { width: number; height: number; channels: number }> = {};
        for (const [name, decoded] of samples) {
          for (const raster of [decoded, toRgb(decoded)]) {
            const base = `${dir}/${name}.${raster.channels}`;
            // cv2 takes RGBA as 4-channel BGRA: what it encodes is the same pixels as RGB.
            const input = raster.channels === 4 ? toRgb(raster) : raster;
            await Deno.writeFile(`${base}.raw`, input.data);
            await Deno.writeFile(`${base}.jpg`, encodeJpeg(raster));
            files[base] = { width: raster.width, height: raster.height, channels: input.channels };
          }
        }
        const script = `
import json, sys
import cv2, numpy as np
out = {}
for base, m in json.load(sys.stdin).items():
    ours = np.fromfile(base + ".jpg", np.uint8)
    img = cv2.imdecode(ours, cv2.IMREAD_UNCHANGED)
    raw = np.fromfile(base + ".raw", np.uint8).reshape(m["height"], m["width"], m["channels"])
    pixels = raw[:, :, 0] if m["channels"] == 1 else raw[:, :, ::-1]
    ok, native = cv2.imencode(".jpg", np.ascontiguousarray(pixels), [cv2.IMWRITE_JPEG_QUALITY, 95])
    out[base] = {"shape": list(img.shape), "same": bool(ok and native.tobytes() == ours.tobytes())}
json.dump(out, sys.stdout)`;
        const child = new Deno.Command(PYTHON, { args: ["-c", script], stdin: "piped", stdout: "piped" }).spawn();
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(JSON.stringify(files)));
        await writer.close();
        const { success, stdout } = await child.output();
        assert.ok(success, "the python script ran");
        const seen = JSON.parse(new TextDecoder().decode(stdout));
        for (const [base, m] of Object.entries(files)) {
          const shape = m.channels === 1 ? [m.height, m.width] : [m.height, m.width, 3];
          assert.deepEqual(seen[base].shape, shape, `${base}: cv2.imdecode's shape`);
          assert.ok(seen[base].same, `${base}: cv2.imencode at quality 95 writes the same bytes`);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
  if (!cv2) console.log(`(native OpenCV not checked: ${PYTHON} has no cv2; apt-get install python3-opencv)`);
});

const source = Deno.env.get("JPEG_TURBO_SRC");

Deno.test({
  name: "the committed libjpeg_turbo.wasm is what build:libjpeg-turbo makes (needs clang, lld, wasi-libc, and " +
    "JPEG_TURBO_SRC: libjpeg-turbo's Debian source, unpacked)",
  ignore: !hasClang() || !source,
  async fn() {
    const dir = testTempDir();
    try {
      const out = `${dir}/libjpeg_turbo.wasm`;
      const build = await new Deno.Command("deno", {
        args: ["task", "--quiet", "build:libjpeg-turbo", out, source!],
        cwd: new URL("..", import.meta.url),
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(build.success, new TextDecoder().decode(build.stderr));
      assertSameBytes(
        await Deno.readFile(out),
        await Deno.readFile(WASM),
        "run `deno task build:libjpeg-turbo` and commit",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
