import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { decodeImage } from "../imaging/decode.ts";
import { ImageError } from "../imaging/image_error.ts";
import { checkStructure } from "../imaging/structure.ts";
import { CODEC_SAMPLES, codecSample, fixture, SAMPLES } from "./fixtures.ts";
import { concatBytes } from "../imaging/bytes.ts";
import { withoutSegments } from "./jpeg_writer.ts";

const JPEG_CROPS = [...Deno.readDirSync(new URL("./fixtures/jpeg/", import.meta.url))]
  .filter((entry) => entry.name.endsWith(".jpg"))
  .map((entry) => `jpeg/${entry.name}`)
  .sort();
const ALL_SAMPLES = [...SAMPLES, ...JPEG_CROPS];

// The fixtures are all single-scan baseline JPEGs. This multi-scan one is `jpegtran -progressive
// tests/fixtures/jpeg/crop_420.jpg` (libjpeg-turbo 2.1.5), inlined so that the tests do not need jpegtran.
const PROGRESSIVE_420 = Uint8Array.from(
  atob([
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8Q",
    "EBEQCgwSExIQEw8QEBD/2wBDAQMDAwQDBAgEBAgQCwkLEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ",
    "EBAQEBAQEBD/wgARCAAdAC0DASIAAhEBAxEB/8QAGQAAAgMBAAAAAAAAAAAAAAAABgcCBAUI/8QAFwEBAQEBAAAAAAAAAAAAAAAA",
    "BQMCBP/aAAwDAQACEAMQAAABHLIwXgtnOmQsQOvPAy4Ut10wz+9Ge9s7W8z93l6UqJeH/8QAHRAAAgMAAwEBAAAAAAAAAAAAAQID",
    "BAUAERQSIf/aAAgBAQABBQKrGJ28OtAcRWmjlyfDnaGGE4ygcpP+5ly8oyJfYCiSDZoCGS9NbebOoTM9CGlnLRuGxbj3oDNv6Viu",
    "8u+Xbvn2Ryi5EjOfJfPqpOem/8QAHhEAAgICAgMAAAAAAAAAAAAAAQMAAgQREjEUIkH/2gAIAQMBAT8BSas1uZOV41hQjcuacAwf",
    "YtVVdRiaOHvMhlkaFOp//8QAJBEAAQMCBQUBAAAAAAAAAAAAAwECBAAhERIxwfAFEyNRYoH/2gAIAQIBAT8BkNcFVc3D9qHHJPzv",
    "E5G/Pu+PNqgkMRVG9dOcvRzEk2dpTUIAi9lcum9dLjDMzyJev//EAC4QAAIBAgQDBAsAAAAAAAAAAAECAwARBBIhMRMiQTJRkdEQ",
    "FCNCQ1JhcoGhwf/aAAgBAQAGPwJjHMAQnZ6Vdc7JfdKXAzrbii6lvnHnWNkVdcQwVfKozjJBDDEgGu7HrVsHg7xjq/WpbH4LUphl",
    "a4IQ6+H9oS4jDxcMa8U6UNu8U2JeJsTMdQW7K/jrRLmQfTamDYaRAVy8wIousRlktsai9blz83LCo5VqeRW9jHlXXbNe1ceCVwsm",
    "4vcBu6xq8uHiY+Ho0ppOqg1975jQR/ev+qOlf//EACEQAQACAgICAgMAAAAAAAAAAAEAESExQVFhcYGxkdHw/9oACAEBAAE/IWy4",
    "TSxX98xY4OyCd48R7iXbGq/RqKxBBWTv8mDA7bal0Pc6PAxe8StqAPioRL10Hf6fEdDu8DVVTy4uVcOm6rrzGIygYujaFZVtAoeg",
    "iirJMp3xM/nMlYOpXliaIffRG2AWoyfq+oZfzoZtaL2V3PICLYUNDGjymzCRC1xk8iR8BpZN3owxZZ5Z/9oADAMBAAIAAwAAABD3",
    "FOVsn//EACARAQACAQQCAwAAAAAAAAAAAAERMQAhQVFxYYGRsfD/2gAIAQMBAT8QGEx5HNAgW8dPkiZK2ZxYPYL+aPWDcjeMDomD",
    "S6kX2xeTLhH1+vP/xAAdEQEAAgMAAwEAAAAAAAAAAAABESEAMVFBYXGR/9oACAECAQE/EJdZVD13xzWPuAjBmR0gCoId7o5IgZiL",
    "AM3Q29XbRgijLYMT9wSjLoBD8BQLTS2zGKWYrKUt+o/NZ//EAB8QAQACAgIDAQEAAAAAAAAAAAERIQAxQVFhgZGxcf/aAAgBAQAB",
    "PxBlgel2gp9vDSFaXpU8qbxmRKWHyB6Z18F+6vcesf5eQLoPlGuMhkoUl+AOL84EaUT6e39yQ+MgLSRs/Bg/0Z73A0aJyrHIGRuE",
    "8o785coDqpjYD0YadAofqkY3Cs80LF1m21ORWRkb6csPIWCl9Ai9s6w8xgI9bYzydOB6lmeezhRIfGeMB6H8vN9BziemG8nZZntM",
    "HzV9ChBgEwDTEQPmMQNEJkz/2Q==",
  ].join("")),
  (c) => c.charCodeAt(0),
);

/** The decoder's documented leniency that checkStructure does not share (see checkJpeg in imaging/structure.ts). */
const STRICTER_JPEG_RULE = "JPEG file is truncated (no end marker)";

/** null when `work` succeeds, else "code: message" of the ImageError it threw (anything else fails the test). */
function outcome(work: () => unknown): string | null {
  try {
    work();
    return null;
  } catch (err) {
    if (!(err instanceof ImageError)) throw err;
    return `${err.code}: ${err.message}`;
  }
}

function assertCorrupt(bytes: Uint8Array, pattern?: RegExp, label = ""): void {
  assert.throws(() => checkStructure(bytes), (err: unknown) => {
    assert.ok(err instanceof ImageError, `${label}: expected an ImageError, got ${err}`);
    assert.equal(err.code, "corrupt_image", `${label}: ${err.message}`);
    if (pattern) assert.match(err.message, pattern);
    return true;
  }, `${label}: expected corrupt_image`);
}

/** Every 1/50 of the file plus the last 16 byte offsets. */
function truncationLengths(size: number): number[] {
  const lengths = new Set<number>();
  for (let i = 0; i < 50; i++) lengths.add(Math.floor((size * i) / 50));
  for (let i = 1; i <= 16; i++) lengths.add(size - i);
  return [...lengths].filter((n) => n >= 0).sort((a, b) => a - b);
}

/**
 * The property the upload path relies on: whatever checkStructure lets through, the worker can decode. The
 * converse holds too, except for the one documented rule; returns the cut lengths where that rule applied.
 */
function assertConsistent(name: string, bytes: Uint8Array, lengths: number[]): number[] {
  const stricter: number[] = [];
  for (const length of lengths) {
    const cut = bytes.slice(0, length);
    const check = outcome(() => checkStructure(cut));
    const decode = outcome(() => decodeImage(cut));
    if (check === null) {
      assert.equal(decode, null, `${name} cut to ${length} bytes passes checkStructure but the decoder says ${decode}`);
    } else if (decode === null) {
      assert.equal(check, `corrupt_image: ${STRICTER_JPEG_RULE}`, `${name} cut to ${length} bytes decodes`);
      stricter.push(length);
    }
  }
  return stricter;
}

const every = (bytes: Uint8Array) => Array.from({ length: bytes.length + 1 }, (_, i) => i);

/** Offsets of the SOS markers (found by byte pattern: stuffing keeps FF DA out of entropy-coded data). */
function jpegScans(bytes: Uint8Array): number[] {
  const scans: number[] = [];
  for (let i = 0; i + 1 < bytes.length; i++) if (bytes[i] === 0xff && bytes[i + 1] === 0xda) scans.push(i);
  return scans;
}

Deno.test("checkStructure on the sample files", async (t) => {
  const samples = new Map<string, Uint8Array>();
  for (const name of ALL_SAMPLES) samples.set(name, await fixture(name));
  samples.set("progressive crop_420", PROGRESSIVE_420);

  await t.step("every sample passes", () => {
    for (const [name, bytes] of samples) assert.equal(outcome(() => checkStructure(bytes)), null, name);
  });

  await t.step("truncations at characteristic points are corrupt_image", () => {
    // The progressive file is left to its own steps: the decoder accepts most of its cuts.
    for (const name of ALL_SAMPLES) {
      const bytes = samples.get(name)!;
      const format = decodeImage(bytes).format;
      // Just past the signature and header: IHDR, BITMAPINFOHEADER, the TIFF header, the first SOS.
      const headerEnd = { png: 33, bmp: 54, tiff: 8, jpeg: jpegScans(bytes)[0] + 14 }[format];
      const points = [headerEnd, headerEnd + 1, Math.floor(bytes.length / 2), bytes.length - 3];
      if (format !== "jpeg") points.push(bytes.length - 2, bytes.length - 1);
      for (const length of points) assertCorrupt(bytes.slice(0, length), undefined, `${name} cut to ${length}`);
    }
  });

  await t.step("a baseline JPEG missing only its EOI is refused, though the decoder accepts it", () => {
    // The documented exception: without Huffman-decoding the scan, losing the EOI looks like any other cut.
    for (const name of ["rocket.jpg", "hubble_deep_field.jpg", ...JPEG_CROPS]) {
      const bytes = samples.get(name)!;
      for (const removed of [1, 2, 3, 100]) {
        const cut = bytes.slice(0, bytes.length - removed);
        assertCorrupt(cut, /^JPEG file is truncated \(no end marker\)$/);
        assert.equal(outcome(() => decodeImage(cut)) === null, removed <= 2, `${name} minus ${removed} bytes`);
      }
    }
  });

  for (const [name, bytes] of samples) {
    await t.step(
      `${name}: what passes decodes, at ${truncationLengths(bytes.length).length} truncation lengths`,
      () => {
        const stricter = assertConsistent(name, bytes, truncationLengths(bytes.length));
        // In a single-scan baseline file the decoder accepts only the loss of the EOI's two bytes.
        const expected = name.endsWith(".jpg") ? [bytes.length - 2, bytes.length - 1] : [];
        assert.deepEqual(stricter, expected);
      },
    );
  }

  await t.step("every truncation of the small JPEGs, progressive included", () => {
    for (const name of JPEG_CROPS) {
      const bytes = samples.get(name)!;
      assert.deepEqual(assertConsistent(name, bytes, every(bytes)), [bytes.length - 2, bytes.length - 1]);
    }
    // There the rule covers cuts right at the end of the first scan's data, which the decoder happens to accept.
    const [first, second] = jpegScans(PROGRESSIVE_420);
    for (const length of assertConsistent("progressive", PROGRESSIVE_420, every(PROGRESSIVE_420))) {
      assert.ok(length > first && length < second, `progressive cut to ${length}`);
    }
  });

  await t.step("a progressive JPEG cut inside a later scan passes, as the decoder shows the earlier scans", () => {
    const scans = jpegScans(PROGRESSIVE_420);
    assert.ok(scans.length > 2);
    const inSecondScan = PROGRESSIVE_420.slice(0, scans[1] + 20);
    assert.equal(outcome(() => checkStructure(inSecondScan)), null);
    assert.equal(outcome(() => decodeImage(inSecondScan)), null);
    assertCorrupt(PROGRESSIVE_420.slice(0, scans[0] + 20), /no end marker/);
  });

  await t.step("data after the end (JPEG EOI, PNG IEND) is ignored", () => {
    const trailer = new TextEncoder().encode("camera maker notes or a second image".repeat(10));
    for (const name of ["rocket.jpg", "coins.png"]) {
      const bytes = concatBytes([samples.get(name)!, trailer]);
      assert.equal(outcome(() => checkStructure(bytes)), null, name);
      assert.equal(outcome(() => decodeImage(bytes)), null, name);
    }
  });

  await t.step("a JPEG lacking the quantization tables its scan uses is corrupt, as the decoder finds", () => {
    for (const name of ["rocket.jpg", ...JPEG_CROPS]) {
      const noDqt = withoutSegments(samples.get(name)!, 0xdb);
      assertCorrupt(noDqt, /quantization table \d before it is defined/, name);
      assert.match(outcome(() => decodeImage(noDqt)) ?? "decoded", /^corrupt_image: .*quantization table/, name);
    }
  });

  await t.step("non-images keep their own error codes", () => {
    assert.throws(() => checkStructure(new TextEncoder().encode("hello, world")), { code: "not_an_image" });
    assert.throws(() => checkStructure(new TextEncoder().encode("GIF89a........")), { code: "unsupported_image" });
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** Offsets of each PNG chunk's length field, keyed by chunk type. */
function pngChunks(bytes: Uint8Array): Map<string, number[]> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks = new Map<string, number[]>();
  for (let p = 8; p + 12 <= bytes.length; p += 12 + dv.getUint32(p)) {
    const type = String.fromCharCode(...bytes.subarray(p + 4, p + 8));
    chunks.set(type, [...(chunks.get(type) ?? []), p]);
  }
  return chunks;
}

function pngChunk(type: string, data: Uint8Array, badCrc = false): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, (crc32(out.subarray(4, 8 + data.length)) ^ (badCrc ? 1 : 0)) >>> 0);
  return out;
}

Deno.test("checkStructure: PNG chunks", async (t) => {
  const coins = await fixture("coins.png");
  const chunks = pngChunks(coins);
  const dv = new DataView(coins.buffer, coins.byteOffset, coins.byteLength);

  await t.step("a damaged CRC of a critical chunk is corrupt", () => {
    for (const type of ["IHDR", "IDAT", "IEND"]) {
      for (const at of chunks.get(type)!) {
        const crcAt = at + 8 + dv.getUint32(at);
        const damaged = coins.slice();
        damaged[crcAt + 2] ^= 0x5a;
        assertCorrupt(damaged, /bad CRC/);
        assert.notEqual(outcome(() => decodeImage(damaged)), null);
      }
    }
  });

  await t.step("a flipped byte inside IDAT data is caught by its CRC", () => {
    const damaged = coins.slice();
    damaged[chunks.get("IDAT")![0] + 100] ^= 0xff;
    assertCorrupt(damaged, /IDAT chunk has a bad CRC/);
  });

  await t.step("a damaged ancillary chunk is ignored, as the decoder ignores it", () => {
    const text = pngChunk("tEXt", new TextEncoder().encode("Comment\0hello"), true);
    const bytes = concatBytes([coins.subarray(0, 33), text, coins.subarray(33)]);
    assert.equal(outcome(() => checkStructure(bytes)), null);
    assert.equal(outcome(() => decodeImage(bytes)), null);
  });

  await t.step("missing IEND, missing IDAT, misplaced or duplicate critical chunks", () => {
    const iend = chunks.get("IEND")![0];
    assertCorrupt(coins.slice(0, iend), /no IEND/);
    const noIdat = concatBytes([coins.subarray(0, 33), coins.subarray(iend)]);
    assertCorrupt(noIdat, /no IDAT/);
    const twoHeaders = concatBytes([coins.subarray(0, 33), coins.subarray(8, 33), coins.subarray(33)]);
    assertCorrupt(twoHeaders, /more than one IHDR/);
    const latePalette = concatBytes([
      coins.subarray(0, iend),
      pngChunk("PLTE", new Uint8Array(6)),
      coins.subarray(iend),
    ]);
    assertCorrupt(latePalette, /PLTE chunk comes after the image data/);
    const huge = coins.slice();
    new DataView(huge.buffer).setUint32(chunks.get("IDAT")![0], 0x80000000);
    assertCorrupt(huge, /invalid length/);
  });

  await t.step("image data far too short for the declared size", () => {
    const forged = coins.slice();
    const fdv = new DataView(forged.buffer);
    fdv.setUint32(16, 60000);
    fdv.setUint32(20, 60000);
    fdv.setUint32(29, crc32(forged.subarray(12, 29)));
    assertCorrupt(forged, /far too short/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

interface TiffSpec {
  bigEndian?: boolean;
  width: number;
  height: number;
  spp: 1 | 3;
  /** SHORT or LONG strip/tile offsets and byte counts. */
  long: boolean;
  rowsPerStrip?: number;
  tile?: number;
  byteCounts?: boolean;
}

/** An uncompressed TIFF: header, one IFD, out-of-line values, then the pixel data (so cuts lose pixels first). */
function buildTiff(spec: TiffSpec): Uint8Array {
  const le = !spec.bigEndian;
  const { width, height, spp } = spec;
  const tile = spec.tile;
  const chunkWidth = tile ?? width;
  const chunkHeight = tile ?? Math.min(spec.rowsPerStrip ?? height, height);
  const across = Math.ceil(width / chunkWidth), down = Math.ceil(height / chunkHeight);
  const sizes = Array.from({ length: across * down }, (_, i) => {
    const rows = tile ?? Math.min(chunkHeight, height - Math.floor(i / across) * chunkHeight);
    return chunkWidth * spp * rows;
  });
  const SHORT = 3, LONG = 4;
  const type = spec.long ? LONG : SHORT;
  const offsetTag = tile ? 324 : 273;
  const entries: [number, number, number[]][] = [
    [256, SHORT, [width]],
    [257, LONG, [height]],
    [258, SHORT, Array(spp).fill(8)],
    [259, SHORT, [1]],
    [262, SHORT, [spp === 3 ? 2 : 1]],
    [277, SHORT, [spp]],
    // The offsets are filled in once the layout is known.
    [offsetTag, type, sizes.map(() => 0)],
  ];
  if (tile) entries.push([322, SHORT, [tile]], [323, SHORT, [tile]]);
  else entries.push([278, SHORT, [chunkHeight]]);
  if (spec.byteCounts !== false) entries.push([tile ? 325 : 279, type, sizes]);
  entries.sort((a, b) => a[0] - b[0]);

  const ifdSize = 2 + 12 * entries.length + 4;
  const unit = (t: number) => (t === SHORT ? 2 : 4);
  const outOfLine = entries.reduce((n, [, t, v]) => n + (v.length * unit(t) > 4 ? v.length * unit(t) : 0), 0);
  const dataStart = 8 + ifdSize + outOfLine;
  let at = dataStart;
  const offsets = sizes.map((size) => (at += size) - size);
  for (const e of entries) if (e[0] === offsetTag) e[2] = offsets;
  assert.ok(spec.long || at < 65536, "SHORT offsets must fit");

  const out = new Uint8Array(at);
  const dv = new DataView(out.buffer);
  out.set(le ? [0x49, 0x49, 42, 0] : [0x4d, 0x4d, 0, 42]);
  dv.setUint32(4, 8, le);
  dv.setUint16(8, entries.length, le);
  let extra = 8 + ifdSize;
  entries.forEach(([tag, t, values], i) => {
    const p = 10 + 12 * i;
    dv.setUint16(p, tag, le);
    dv.setUint16(p + 2, t, le);
    dv.setUint32(p + 4, values.length, le);
    let target = p + 8;
    if (values.length * unit(t) > 4) {
      dv.setUint32(p + 8, extra, le);
      target = extra;
      extra += values.length * unit(t);
    }
    values.forEach((v, k) => t === SHORT ? dv.setUint16(target + 2 * k, v, le) : dv.setUint32(target + 4 * k, v, le));
  });
  for (let i = dataStart; i < out.length; i++) out[i] = (i * 7) & 0xff;
  return out;
}

/** Where the values of `tag` in the first IFD are (inline or out-of-line), their unit and the byte order. */
function tiffValues(bytes: Uint8Array, tag: number): { at: number; unit: number; le: boolean } {
  const le = bytes[0] === 0x49;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ifd = dv.getUint32(4, le);
  for (let i = 0; i < dv.getUint16(ifd, le); i++) {
    const p = ifd + 2 + 12 * i;
    if (dv.getUint16(p, le) !== tag) continue;
    const unit = dv.getUint16(p + 2, le) === 3 ? 2 : 4;
    const inline = dv.getUint32(p + 4, le) * unit <= 4;
    return { at: inline ? p + 8 : dv.getUint32(p + 8, le), unit, le };
  }
  throw new Error(`no tag ${tag}`);
}

function setTiffValue(bytes: Uint8Array, tag: number, index: number, value: number): Uint8Array {
  const out = bytes.slice();
  const { at, unit, le } = tiffValues(out, tag);
  const dv = new DataView(out.buffer);
  if (unit === 2) dv.setUint16(at + 2 * index, value, le);
  else dv.setUint32(at + 4 * index, value, le);
  return out;
}

Deno.test("checkStructure on fax, Zstandard, LZMA, CMYK and arithmetic-coded files", async (t) => {
  await t.step("every one passes", () => {
    for (const name of CODEC_SAMPLES) assert.equal(outcome(() => checkStructure(codecSample(name).bytes)), null, name);
  });

  for (const name of CODEC_SAMPLES) {
    const { bytes } = codecSample(name);
    await t.step(
      `${name}: what passes decodes, at ${truncationLengths(bytes.length).length} truncation lengths`,
      () => {
        const stricter = assertConsistent(name, bytes, truncationLengths(bytes.length));
        // Only a single-scan file's missing EOI: the decoder keeps a complete scan, the check cannot tell it is one.
        for (const length of stricter) {
          assert.ok(name.endsWith(".jpg") && length >= bytes.length - 2, `${name}: ${length}`);
        }
      },
    );
  }

  await t.step("a TIFF compression the decoder lacks is refused at upload, named", () => {
    const g4 = codecSample("page_g4.tif").bytes;
    for (const [compression, name] of [[34712, "JPEG 2000"], [50001, "WebP"], [9, "JBIG"]] as const) {
      const bytes = setTiffValue(g4, 259, 0, compression);
      assert.equal(
        outcome(() => checkStructure(bytes)),
        `unsupported_image: TIFF compression ${compression} (${name})`,
      );
      assert.equal(outcome(() => decodeImage(bytes)), outcome(() => checkStructure(bytes)));
    }
  });
});

Deno.test("checkStructure: TIFF directories and strips", async (t) => {
  const camera = await fixture("camera.tif");

  await t.step("a strip offset past the end of the file is corrupt", () => {
    const bad = setTiffValue(camera, 273, 0, camera.length + 100);
    assertCorrupt(bad, /strip 0 starts at offset \d+, beyond the end/);
    assert.notEqual(outcome(() => decodeImage(bad)), null);
  });

  await t.step("a strip whose byte count runs past the end of the file is corrupt", () => {
    const { at, le } = tiffValues(camera, 279);
    const last = new DataView(camera.buffer, camera.byteOffset).getUint32(at + 4 * 50, le);
    const bad = setTiffValue(camera, 279, 50, last + camera.length);
    assertCorrupt(bad, /strip 50 is truncated/);
    assert.notEqual(outcome(() => decodeImage(bad)), null);
  });

  await t.step("missing strip offsets, or byte counts of compressed strips, are corrupt", () => {
    const renamed = (tag: number) => {
      const out = camera.slice();
      const le = out[0] === 0x49;
      const dv = new DataView(out.buffer);
      const ifd = dv.getUint32(4, le);
      for (let i = 0; i < dv.getUint16(ifd, le); i++) {
        if (dv.getUint16(ifd + 2 + 12 * i, le) === tag) dv.setUint16(ifd + 2 + 12 * i, 65000, le);
      }
      return out;
    };
    assertCorrupt(renamed(273), /no strip offsets/);
    // camera.tif is LZW: its strip sizes cannot be inferred.
    assertCorrupt(renamed(279), /no strip byte counts/);
  });

  const layouts: [string, TiffSpec][] = [];
  for (const bigEndian of [false, true]) {
    for (const long of [false, true]) {
      for (const rowsPerStrip of [1000, 3, 1]) {
        for (const byteCounts of [true, false]) {
          const order = bigEndian ? "MM" : "II";
          const label = `${order} ${long ? "LONG" : "SHORT"} ${
            rowsPerStrip === 1000 ? "one strip" : `${rowsPerStrip} rows/strip`
          }${byteCounts ? "" : ", counts inferred"}`;
          layouts.push([label, { bigEndian, long, width: 7, height: 5, spp: 3, rowsPerStrip, byteCounts }]);
        }
      }
    }
    for (const long of [false, true]) {
      for (const byteCounts of [true, false]) {
        const label = `${bigEndian ? "MM" : "II"} ${long ? "LONG" : "SHORT"} tiled gray${
          byteCounts ? "" : ", counts inferred"
        }`;
        layouts.push([label, { bigEndian, long, width: 20, height: 20, spp: 1, tile: 16, byteCounts }]);
      }
    }
  }

  await t.step("built layouts (II/MM, SHORT/LONG, inline/out-of-line, inferred counts, tiles) pass and decode", () => {
    for (const [label, spec] of layouts) {
      const bytes = buildTiff(spec);
      assert.equal(outcome(() => checkStructure(bytes)), null, label);
      assert.equal(outcome(() => decodeImage(bytes)), null, label);
    }
  });

  await t.step("built layouts: every truncation agrees with the decoder", () => {
    for (const [label, spec] of layouts) {
      const bytes = buildTiff(spec);
      assert.deepEqual(assertConsistent(label, bytes, every(bytes)), [], label);
      assertCorrupt(bytes.slice(0, bytes.length - 1), /truncated/);
    }
  });

  await t.step("an uncompressed strip shorter than its rows is corrupt", () => {
    const bytes = buildTiff({ width: 7, height: 5, spp: 3, long: true, rowsPerStrip: 3 });
    const short = setTiffValue(bytes, 279, 0, 7 * 3 * 3 - 1);
    assertCorrupt(short, /strip 0 is truncated: it holds 62 of 63 bytes/);
    assert.notEqual(outcome(() => decodeImage(short)), null);
  });

  await t.step("StripOffsets values stored beyond the end of the file are corrupt", () => {
    const bytes = buildTiff({ width: 7, height: 5, spp: 3, long: true, rowsPerStrip: 1 });
    const le = true;
    const dv = new DataView(bytes.buffer);
    const ifd = dv.getUint32(4, le);
    for (let i = 0; i < dv.getUint16(ifd, le); i++) {
      if (dv.getUint16(ifd + 2 + 12 * i, le) === 273) dv.setUint32(ifd + 2 + 12 * i + 8, bytes.length - 4, le);
    }
    assertCorrupt(bytes, /StripOffsets values lie beyond the end of the file/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** A BMP with a 40-byte info header; `pixels` follows the header and palette. */
function buildBmp(width: number, height: number, bpp: number, compression: number, pixels: Uint8Array): Uint8Array {
  const paletteSize = bpp <= 8 ? 4 * (1 << bpp) : 0;
  const offset = 14 + 40 + paletteSize;
  const out = new Uint8Array(offset + pixels.length);
  const dv = new DataView(out.buffer);
  out.set([0x42, 0x4d]);
  dv.setUint32(2, out.length, true);
  dv.setUint32(10, offset, true);
  dv.setUint32(14, 40, true);
  dv.setInt32(18, width, true);
  dv.setInt32(22, height, true);
  dv.setUint16(26, 1, true);
  dv.setUint16(28, bpp, true);
  dv.setUint32(30, compression, true);
  for (let i = 0; i < paletteSize; i++) out[54 + i] = (i * 37) & 0xff;
  out.set(pixels, offset);
  return out;
}

Deno.test("checkStructure: BMP pixel data", async (t) => {
  const coins = await fixture("coins.bmp");

  await t.step("pixel-data offset past the end of the file is corrupt", () => {
    const bad = coins.slice();
    new DataView(bad.buffer).setUint32(10, coins.length + 1, true);
    assertCorrupt(bad, /pixel data offset \d+ past end of file/);
  });

  await t.step("rows × stride must be present, except the last row's padding", () => {
    // 3 pixels × 24 bits = 9 bytes per row, padded to 12.
    const bmp = buildBmp(3, 4, 24, 0, new Uint8Array(12 * 4));
    assert.equal(outcome(() => checkStructure(bmp)), null);
    const noPadding = bmp.slice(0, bmp.length - 3);
    assert.equal(outcome(() => checkStructure(noPadding)), null);
    assert.equal(outcome(() => decodeImage(noPadding)), null);
    assertCorrupt(bmp.slice(0, bmp.length - 4), /pixel data truncated/);
    assert.deepEqual(assertConsistent("24-bit BMP", bmp, every(bmp)), []);
  });

  await t.step("RLE8: every truncation of the command stream agrees with the decoder", () => {
    // Row 0: a run of 4; row 1: an absolute run of 3 (padded to 4 bytes); then end of bitmap.
    const stream = Uint8Array.of(4, 1, 0, 0, 0, 3, 2, 3, 4, 0, 0, 1);
    const bmp = buildBmp(4, 2, 8, 1, stream);
    assert.equal(outcome(() => checkStructure(bmp)), null);
    assert.equal(outcome(() => decodeImage(bmp)), null);
    assert.deepEqual(assertConsistent("RLE8 BMP", bmp, every(bmp)), []);
    assertCorrupt(bmp.slice(0, bmp.length - 6), /RLE data truncated/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

Deno.test("checkStructure: damaged files give ImageError and nothing else", async () => {
  // A fixed seed keeps failures reproducible.
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const samples = [
    ...(await Promise.all(ALL_SAMPLES.map(fixture))),
    PROGRESSIVE_420,
    buildTiff({ width: 7, height: 5, spp: 3, long: false, rowsPerStrip: 2 }),
  ];
  for (const original of samples) {
    for (let k = 0; k < 400; k++) {
      const bytes = original.slice(0, random() < 0.3 ? Math.floor(random() * original.length) : original.length);
      for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) {
        // Mostly the headers and directories, where a flipped byte changes structure rather than pixel values.
        const region = random() < 0.7 ? Math.min(bytes.length, 1500) : bytes.length;
        bytes[Math.floor(random() * region)] = Math.floor(random() * 256);
      }
      try {
        checkStructure(bytes);
      } catch (err) {
        assert.ok(err instanceof ImageError, `unexpected ${err}`);
      }
    }
  }
});
