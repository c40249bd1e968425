import assert from "node:assert/strict";
import jpeg from "jpeg-js";
import { decodeJpeg, readJpegSize } from "../imaging/jpeg.ts";
import type { Raster } from "../imaging/raster.ts";
import {
  assertClose,
  BLUE,
  cells,
  cornerImage,
  encodeJpeg,
  exifPayload,
  expectImageError,
  findMarker,
  FIXTURES,
  GREEN,
  GREY,
  pixel,
  readPpm,
  RED,
  Rgb,
  seg,
  toYcc,
  withApp1,
  withoutSegments,
  ycc,
  YELLOW,
} from "./jpeg_writer.ts";

// ---------------------------------------------------------------------------------------------------------------

Deno.test("real samples", async (t) => {
  for (const [name, width, height] of [["rocket.jpg", 640, 427], ["hubble_deep_field.jpg", 1000, 872]] as const) {
    await t.step(`${name} decodes at ${width}x${height}`, async () => {
      const bytes = await Deno.readFile(new URL(name, FIXTURES));
      assert.deepEqual(readJpegSize(bytes), { width, height });
      const { raster, info } = decodeJpeg(bytes);
      assert.deepEqual([raster.width, raster.height, raster.channels], [width, height, 3]);
      assert.equal(raster.data.length, width * height * 3);
      // hubble carries EXIF orientation 1 and an Adobe marker (YCbCr): neither may alter the picture.
      assert.deepEqual(info, {});
    });
  }

  await t.step("a byte view into a larger buffer decodes the same as the file alone", async () => {
    const bytes = await Deno.readFile(new URL("rocket.jpg", FIXTURES));
    const padded = new Uint8Array(bytes.length + 20);
    padded.set(bytes, 7);
    assert.deepEqual(decodeJpeg(padded.subarray(7, 7 + bytes.length)).raster.data, decodeJpeg(bytes).raster.data);
  });

  // References decoded by libjpeg-turbo 2.1.5 (djpeg, defaults: islow IDCT, fancy upsampling), the library behind
  // OpenCV's imread. 45×29 crops of rocket.jpg so that odd edges are covered; they cannot be made without libjpeg.
  for (const sampling of ["420", "422", "440"]) {
    await t.step(`${sampling} chroma: within 3 levels of libjpeg, mostly equal`, async () => {
      const bytes = await Deno.readFile(new URL(`jpeg/crop_${sampling}.jpg`, FIXTURES));
      const ref = readPpm(await Deno.readFile(new URL(`jpeg/crop_${sampling}.libjpeg.ppm`, FIXTURES)));
      const { raster } = decodeJpeg(bytes);
      assert.deepEqual([raster.width, raster.height, raster.channels], [ref.width, ref.height, 3]);
      let maxDiff = 0, differing = 0;
      for (let i = 0; i < ref.data.length; i++) {
        const d = Math.abs(raster.data[i] - ref.data[i]);
        maxDiff = Math.max(maxDiff, d);
        if (d > 1) differing++;
      }
      // What is left is jpeg-js's IDCT rounding; plain jpeg-js (replicated chroma, truncating conversion) is off by
      // up to 51 here on most samples.
      assert.ok(maxDiff <= 3, `max difference ${maxDiff}`);
      assert.ok(differing / ref.data.length < 0.05, `${differing} samples differ by more than 1`);
    });
  }
});

Deno.test("generated variants", async (t) => {
  const palette: Rgb[] = [RED, GREEN, BLUE, YELLOW, GREY, [0, 0, 0], [255, 255, 255], [90, 160, 200]];
  const colourful = cells(4, 2, 8, (c, r) => palette[r * 4 + c]);

  await t.step("baseline colour from jpeg-js's encoder", () => {
    const rgba = new Uint8Array(colourful.width * colourful.height * 4);
    for (let i = 0; i < colourful.width * colourful.height; i++) {
      rgba.set([colourful.planes[0][i], colourful.planes[1][i], colourful.planes[2][i], 255], i * 4);
    }
    const bytes = new Uint8Array(
      jpeg.encode({ width: colourful.width, height: colourful.height, data: rgba }, 100).data,
    );
    const { raster } = decodeJpeg(bytes);
    assert.deepEqual([raster.width, raster.height, raster.channels], [32, 16, 3]);
    palette.forEach((rgb, i) => assertClose(pixel(raster, (i % 4) * 8 + 4, Math.floor(i / 4) * 8 + 4), rgb, 2, `${i}`));
  });

  await t.step("baseline colour, 4:4:4 and 4:2:0", () => {
    for (const sampling of [undefined, [[2, 2], [1, 1], [1, 1]] as [number, number][]]) {
      const img = cells(4, 2, 16, (c, r) => palette[r * 4 + c]);
      const { raster } = decodeJpeg(encodeJpeg({ ...ycc(img), sampling }));
      assert.deepEqual([raster.width, raster.height, raster.channels], [64, 32, 3]);
      palette.forEach((rgb, i) => {
        const x = (i % 4) * 16, y = Math.floor(i / 4) * 16;
        // Cell interiors; at cell borders 4:2:0 chroma is interpolated, as libjpeg does.
        for (const [dx, dy] of [[2, 2], [8, 8], [13, 13]]) assertClose(pixel(raster, x + dx, y + dy), rgb, 2, `${i}`);
      });
    }
  });

  await t.step("grayscale stays one channel", () => {
    const img = cells(3, 2, 8, (c, r) => [[0, 60, 255, 17, 128, 200][r * 3 + c]]);
    const bytes = encodeJpeg(img);
    const { raster, info } = decodeJpeg(bytes);
    assert.deepEqual([raster.width, raster.height, raster.channels], [24, 16, 1]);
    assert.equal(raster.data.length, 24 * 16);
    assert.deepEqual(raster.data, img.planes[0]);
    assert.deepEqual(info, {});
    assert.deepEqual(readJpegSize(bytes), { width: 24, height: 16 });
  });

  await t.step("RGB-coded JPEG (Adobe transform 0, or component ids R G B) is not treated as YCbCr", () => {
    const adobe = encodeJpeg({ ...colourful, adobeTransform: 0, jfif: false });
    const ids = encodeJpeg({ ...colourful, ids: [0x52, 0x47, 0x42], jfif: false });
    for (const bytes of [adobe, ids]) {
      const { raster } = decodeJpeg(bytes);
      palette.forEach((rgb, i) => assertClose(pixel(raster, (i % 4) * 8 + 4, Math.floor(i / 4) * 8 + 4), rgb, 1));
    }
  });

  await t.step("YCbCr with an Adobe marker (transform 1) is converted once", () => {
    const { raster } = decodeJpeg(encodeJpeg({ ...ycc(colourful), adobeTransform: 1, jfif: false }));
    palette.forEach((rgb, i) => assertClose(pixel(raster, (i % 4) * 8 + 4, Math.floor(i / 4) * 8 + 4), rgb, 2));
  });

  await t.step("restart markers (baseline, interleaved 4:2:0 and gray, intervals that do and do not divide)", () => {
    const img = ycc(cells(5, 3, 16, (c, r) => palette[(c + 2 * r) % palette.length]));
    const sampling: [number, number][] = [[2, 2], [1, 1], [1, 1]];
    const plain = decodeJpeg(encodeJpeg({ ...img, sampling })).raster;
    for (const restartInterval of [1, 2, 4, 7]) {
      const bytes = encodeJpeg({ ...img, sampling, restartInterval });
      assert.ok(bytes.some((b, i) => b === 0xff && bytes[i + 1] === 0xd0), "RST0 written");
      assert.deepEqual(decodeJpeg(bytes).raster, plain, `interval ${restartInterval}`);
    }
    const gray = { ...img, planes: [img.planes[0]] };
    const grayPlain = decodeJpeg(encodeJpeg(gray)).raster;
    for (const restartInterval of [1, 3, 16]) {
      assert.deepEqual(decodeJpeg(encodeJpeg({ ...gray, restartInterval })).raster, grayPlain);
    }
  });

  await t.step("progressive (successive-approximation DC, spectral-selection AC) equals baseline", () => {
    // Textured content, so that AC coefficients are really exercised.
    const width = 37, height = 21;
    const planes = [0, 1, 2].map((k) =>
      Uint8Array.from({ length: width * height }, (_, i) => {
        const x = i % width, y = Math.floor(i / width);
        return Math.round(128 + 100 * Math.sin((x + 3 * k) / 3) * Math.cos((y - k) / 4));
      })
    );
    for (
      const [sampling, restartInterval] of [[undefined, 0], [[[2, 2], [1, 1], [1, 1]], 0], [undefined, 3]] as const
    ) {
      const spec = { width, height, planes, quant: 2, sampling: sampling as [number, number][] | undefined };
      const baseline = decodeJpeg(encodeJpeg({ ...spec, restartInterval })).raster;
      const progressive = decodeJpeg(encodeJpeg({ ...spec, restartInterval, progressive: true })).raster;
      assert.deepEqual(progressive, baseline);
    }
    const grayBaseline = decodeJpeg(encodeJpeg({ width, height, planes: [planes[0]], quant: 2 })).raster;
    const grayProgressive = decodeJpeg(encodeJpeg({ width, height, planes: [planes[0]], quant: 2, progressive: true }));
    assert.equal(grayProgressive.raster.channels, 1);
    assert.deepEqual(grayProgressive.raster, grayBaseline);
  });

  await t.step("MJPEG-style frame without Huffman tables gets the standard ones", () => {
    const bytes = encodeJpeg(ycc(colourful));
    const stripped = withoutSegments(bytes, 0xc4);
    assert.ok(stripped.length < bytes.length);
    const { raster, info } = decodeJpeg(stripped);
    assert.deepEqual(raster, decodeJpeg(bytes).raster);
    assert.deepEqual(info.notes, ["JPEG lacks Huffman tables: standard tables used"]);
  });
});

Deno.test("CMYK and YCCK", async (t) => {
  // Ink amounts 0–255; Adobe files store them inverted (255 = no ink).
  const inks: [number, number, number, number][] = [
    [0, 0, 0, 0],
    [255, 0, 0, 0],
    [0, 255, 0, 0],
    [0, 0, 255, 0],
    [0, 0, 0, 255],
    [40, 120, 200, 60],
    [200, 30, 90, 128],
    [10, 250, 130, 20],
  ];
  const stored = inks.map((cmyk) => cmyk.map((v) => 255 - v));
  // OpenCV (icvCvt_CMYK2BGR_8u_C4C3R) on libjpeg's CMYK output: R = K - (255 - C)·K/256 ≈ C·K/255.
  const expected = stored.map(([c, m, y, k]) => [c, m, y].map((v) => Math.round((v * k) / 255)));
  const img = cells(4, 2, 8, (c, r) => stored[r * 4 + c]);

  const check = (bytes: Uint8Array) => {
    const { raster, info } = decodeJpeg(bytes);
    assert.deepEqual([raster.width, raster.height, raster.channels], [32, 16, 3]);
    assert.deepEqual(info.notes, ["CMYK converted to RGB"]);
    expected.forEach((rgb, i) =>
      assertClose(pixel(raster, (i % 4) * 8 + 4, Math.floor(i / 4) * 8 + 4), rgb, 3, `${i}`)
    );
  };

  await t.step("Adobe CMYK (transform 0)", () => check(encodeJpeg({ ...img, adobeTransform: 0 })));

  await t.step("Adobe YCCK (transform 2)", () => {
    // YCCK is the inverted CMY, taken as RGB and coded as YCbCr, plus K unchanged.
    const planes = img.planes.map(() => new Uint8Array(img.width * img.height));
    for (let i = 0; i < img.width * img.height; i++) {
      const [y, cb, cr] = toYcc([255 - img.planes[0][i], 255 - img.planes[1][i], 255 - img.planes[2][i]]);
      planes[0][i] = y;
      planes[1][i] = cb;
      planes[2][i] = cr;
      planes[3][i] = img.planes[3][i];
    }
    check(encodeJpeg({ ...img, planes, adobeTransform: 2 }));
  });

  await t.step("4 components without an Adobe marker are taken as CMYK, as libjpeg does", () => {
    check(encodeJpeg(img));
  });

  await t.step("4:2:0-sampled CMYK", () => {
    const big = cells(4, 2, 16, (c, r) => stored[r * 4 + c]);
    const bytes = encodeJpeg({ ...big, adobeTransform: 0, sampling: [[2, 2], [1, 1], [1, 1], [2, 2]] });
    const { raster } = decodeJpeg(bytes);
    expected.forEach((rgb, i) => assertClose(pixel(raster, (i % 4) * 16 + 8, Math.floor(i / 4) * 16 + 8), rgb, 3));
  });
});

Deno.test("EXIF orientation", async (t) => {
  const img = cornerImage();
  const base = encodeJpeg(ycc(img));
  const CORNERS = { TL: RED, TR: GREEN, BL: BLUE, BR: YELLOW };
  // Which stored corner shows up at [top-left, top-right, bottom-left, bottom-right] once upright.
  const EXPECTED: Record<number, (keyof typeof CORNERS)[]> = {
    1: ["TL", "TR", "BL", "BR"],
    2: ["TR", "TL", "BR", "BL"],
    3: ["BR", "BL", "TR", "TL"],
    4: ["BL", "BR", "TL", "TR"],
    5: ["TL", "BL", "TR", "BR"],
    6: ["BL", "TL", "BR", "TR"],
    7: ["BR", "TR", "BL", "TL"],
    8: ["TR", "BR", "TL", "BL"],
  };
  const corners = (r: Raster) => [
    pixel(r, 0, 0),
    pixel(r, r.width - 1, 0),
    pixel(r, 0, r.height - 1),
    pixel(r, r.width - 1, r.height - 1),
  ];

  for (const littleEndian of [true, false]) {
    for (let orientation = 1; orientation <= 8; orientation++) {
      await t.step(`orientation ${orientation}, ${littleEndian ? "II" : "MM"}`, () => {
        const bytes = withApp1(base, exifPayload(orientation, littleEndian));
        const { raster, info } = decodeJpeg(bytes);
        const swapped = orientation >= 5;
        assert.deepEqual([raster.width, raster.height], swapped ? [24, 40] : [40, 24]);
        assert.equal(info.orientation, orientation === 1 ? undefined : orientation);
        corners(raster).forEach((px, i) => assertClose(px, CORNERS[EXPECTED[orientation][i]], 3, `corner ${i}`));
        // The stored size is what limits are checked against.
        assert.deepEqual(readJpegSize(bytes), { width: 40, height: 24 });
      });
    }
  }

  await t.step("grayscale is rotated too", () => {
    const gray = encodeJpeg({ ...img, planes: [img.planes[0]] });
    const { raster } = decodeJpeg(withApp1(gray, exifPayload(6, true)));
    assert.deepEqual([raster.width, raster.height, raster.channels], [24, 40, 1]);
    assert.deepEqual(pixel(raster, 23, 0), [RED[0]]);
    assert.deepEqual(pixel(raster, 0, 39), [YELLOW[0]]);
  });

  await t.step("malformed EXIF is ignored", () => {
    const good = exifPayload(6, true);
    const variants: [string, Uint8Array][] = [
      ["bad byte order", Uint8Array.from(good, (b, i) => (i === 6 || i === 7 ? 0x58 : b))],
      ["bad magic", Uint8Array.from(good, (b, i) => (i === 8 ? 41 : b))],
      ["IFD offset past the end", Uint8Array.from(good, (b, i) => (i === 10 ? 0xf0 : b))],
      ["entry count past the end", Uint8Array.from(good, (b, i) => (i === 14 || i === 15 ? 0xff : b))],
      ["cut inside the directory", good.subarray(0, 30)],
      ["cut inside the TIFF header", good.subarray(0, 9)],
      ["orientation 9", exifPayload(9, true)],
      ["orientation 0", exifPayload(0, false)],
      ["no TIFF at all", Uint8Array.from([0x45, 0x78, 0x69, 0x66, 0, 0])],
    ];
    for (const [what, payload] of variants) {
      const { raster, info } = decodeJpeg(withApp1(base, payload));
      assert.deepEqual([raster.width, raster.height], [40, 24], what);
      assert.equal(info.orientation, undefined, what);
      assertClose(pixel(raster, 0, 0), RED, 3, what);
    }
  });

  await t.step("only the first EXIF segment counts; other APP1 payloads (XMP) are skipped", () => {
    const xmp = new TextEncoder().encode("http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>");
    const bytes = withApp1(withApp1(withApp1(base, exifPayload(3, true)), exifPayload(6, false)), xmp);
    assert.equal(decodeJpeg(bytes).info.orientation, 6);
  });
});

Deno.test("unsupported coding processes are named", async (t) => {
  const base = encodeJpeg(ycc(cornerImage()));
  const sof = findMarker(base, 0xc0);
  const patched = (marker: number, precision = 8) =>
    Uint8Array.from(base, (b, i) => (i === sof + 1 ? marker : i === sof + 4 ? precision : b));

  const cases: [string, Uint8Array, RegExp][] = [
    ["lossless arithmetic SOF11", patched(0xcb), /lossless JPEG with arithmetic coding \(SOF11\)/],
    ["hierarchical arithmetic SOF13", patched(0xcd), /hierarchical JPEG with arithmetic coding \(SOF13\)/],
    ["lossless SOF3", patched(0xc3), /lossless JPEG \(SOF3\)/],
    ["12-bit SOF1", patched(0xc1, 12), /12-bit JPEG \(SOF1/],
    ["12-bit SOF2", patched(0xc2, 12), /12-bit JPEG \(SOF2/],
    ["hierarchical SOF5", patched(0xc5), /hierarchical JPEG \(SOF5\)/],
    [
      "hierarchical DHP",
      Uint8Array.from([0xff, 0xd8, ...seg(0xde, [8, 0, 24, 0, 40, 1, 1, 0x11, 0]), ...base.slice(2)]),
      /DHP/,
    ],
    ["2 components", Uint8Array.from(base, (b, i) => (i === sof + 9 ? 2 : b)), /2 colour components/],
  ];
  for (const [what, bytes, pattern] of cases) {
    await t.step(what, () => expectImageError(() => decodeJpeg(bytes), "unsupported_image", pattern));
  }

  await t.step("a progressive 4:2:0 scan jpeg-js would overrun is refused, not reported as damage", () => {
    // 21 rows → 3 luma block rows, an odd count; 7 luma blocks per row with a 4-MCU interval leave a partial one.
    const img = cells(7, 3, 7, (c, r) => [(c * 30 + r * 50) % 256, 100, 150]);
    const spec = { ...img, sampling: [[2, 2], [1, 1], [1, 1]] as [number, number][], progressive: true, quant: 4 };
    const bytes = encodeJpeg({ ...spec, restartInterval: 4 });
    expectImageError(() => decodeJpeg(bytes), "unsupported_image", /restart/);
    // The same picture without restart markers is fine.
    const { raster } = decodeJpeg(encodeJpeg(spec));
    assert.deepEqual([raster.width, raster.height], [49, 21]);
  });
});

Deno.test("damaged files", async (t) => {
  const rocket = await Deno.readFile(new URL("rocket.jpg", FIXTURES));

  await t.step("rocket.jpg cut to 100 bytes", () => {
    expectImageError(() => decodeJpeg(rocket.subarray(0, 100)), "corrupt_image", /truncated/);
  });

  await t.step("rocket.jpg cut inside its only scan", () => {
    expectImageError(() => decodeJpeg(rocket.subarray(0, rocket.length >> 1)), "corrupt_image", /truncated/);
  });

  await t.step("only the EOI missing: decoded, with a note", () => {
    const { raster, info } = decodeJpeg(rocket.subarray(0, rocket.length - 2));
    assert.deepEqual(raster, decodeJpeg(rocket).raster);
    assert.deepEqual(info.notes, ["JPEG file is truncated (end marker missing)"]);
  });

  await t.step("progressive cut inside its last scan: earlier scans decoded, with a note", () => {
    const img = ycc(cells(4, 2, 8, (c, r) => [[RED, GREEN, BLUE, YELLOW][c], GREY][r]));
    const bytes = encodeJpeg({ ...img, progressive: true });
    let lastSos = bytes.length;
    while (!(bytes[lastSos] === 0xff && bytes[lastSos + 1] === 0xda)) lastSos--;
    const { raster, info } = decodeJpeg(bytes.subarray(0, lastSos + 15));
    assert.deepEqual([raster.width, raster.height], [32, 16]);
    assert.deepEqual(info.notes, ["JPEG file is truncated: decoded 7 of 8 scans"]);
    // Only the last DC bit is missing: colours are a few levels off at most.
    assertClose(pixel(raster, 4, 4), RED, 10);
  });

  await t.step("progressive cut inside its first scan", () => {
    const bytes = encodeJpeg({ ...ycc(cornerImage()), progressive: true });
    const sos = findMarker(bytes, 0xda);
    expectImageError(() => decodeJpeg(bytes.subarray(0, sos + 16)), "corrupt_image", /truncated/);
  });

  await t.step("no scan at all", () => {
    const bytes = encodeJpeg(ycc(cornerImage()));
    const headersOnly = Uint8Array.from([...bytes.subarray(0, findMarker(bytes, 0xda)), 0xff, 0xd9]);
    expectImageError(() => decodeJpeg(headersOnly), "corrupt_image", /no image data/);
    assert.deepEqual(readJpegSize(headersOnly), { width: 40, height: 24 });
  });

  await t.step("garbage after the SOI", () => {
    const junk = Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff);
    expectImageError(() => decodeJpeg(Uint8Array.from([0xff, 0xd8, ...junk])), "corrupt_image");
    expectImageError(() => readJpegSize(Uint8Array.from([0xff, 0xd8, ...junk])), "corrupt_image");
  });

  await t.step("garbage inside the scan data", () => {
    const bytes = rocket.slice();
    const sos = findMarker(bytes, 0xda);
    for (let i = sos + 200; i < sos + 260; i++) bytes[i] = i % 2 ? 0xff : 0xc4;
    expectImageError(() => decodeJpeg(bytes), "corrupt_image");
  });

  await t.step("no SOI", () => {
    expectImageError(() => decodeJpeg(rocket.subarray(2)), "not_an_image");
    expectImageError(() => readJpegSize(new Uint8Array(0)), "not_an_image");
  });

  await t.step("readJpegSize needs the frame header", () => {
    expectImageError(() => readJpegSize(rocket.subarray(0, 10)), "corrupt_image", /truncated/);
    assert.deepEqual(readJpegSize(rocket.subarray(0, findMarker(rocket, 0xc0) + 19)), { width: 640, height: 427 });
  });

  await t.step("a huge declared size is refused before decoding", () => {
    const bytes = encodeJpeg(ycc(cornerImage()));
    const sof = findMarker(bytes, 0xc0);
    const huge = Uint8Array.from(bytes, (b, i) => (i >= sof + 5 && i <= sof + 8 ? 0xff : b));
    assert.deepEqual(readJpegSize(huge), { width: 65535, height: 65535 });
    expectImageError(() => decodeJpeg(huge), "image_too_large");
  });
});
