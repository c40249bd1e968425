/** Sample images (copied from the shared public-domain set) and what native OpenCV 4.6 found in them. */
import assert from "node:assert/strict";
import type { OpenCV } from "../imaging/opencv.ts";
import type { Raster } from "../imaging/raster.ts";

const DIR = new URL("./fixtures/", import.meta.url);

/** Names of every sample image. */
export const SAMPLES = [
  "coins.png",
  "camera.png",
  "page.png",
  "hubble_deep_field.jpg",
  "rocket.jpg",
  "coins.bmp",
  "camera.tif",
];

/** The bytes of one sample. */
export function fixture(name: string): Promise<Uint8Array> {
  return Deno.readFile(new URL(name, DIR));
}

/** Native OpenCV's numbers for one image. */
export interface NativeReference {
  width: number;
  height: number;
  otsu_threshold: number;
  contour_count: number;
  top_level_count: number;
  total_points: number;
  areas_desc: number[];
}

const reference = JSON.parse(Deno.readTextFileSync(new URL("native_reference.json", DIR))) as {
  images: Record<string, NativeReference>;
};

/** The reference for a sample. */
export function nativeReference(name: string): NativeReference {
  const ref = reference.images[name];
  if (!ref) throw new Error(`no native reference for ${name}`);
  return ref;
}

/** Files written by Debian's imagemagick, libtiff-tools and libjpeg-turbo-progs (fixtures/codecs/, see README.md). */
export const CODEC_SAMPLES = [...Deno.readDirSync(new URL("codecs/", DIR))]
  .map((entry) => entry.name)
  .filter((name) => /\.(tif|jpg)$/.test(name))
  .sort();

/** What native OpenCV 4.6's imread makes of a codec sample: its size and the SHA-256 of its RGB pixels. */
export interface NativePixels {
  width: number;
  height: number;
  rgb_sha256: string;
}

const codecReference = JSON.parse(Deno.readTextFileSync(new URL("codecs/native.json", DIR))) as {
  images: Record<string, NativePixels>;
};

/** The bytes of a codec sample and native OpenCV's pixels for it. */
export function codecSample(name: string): { bytes: Uint8Array; native: NativePixels } {
  const native = codecReference.images[name];
  if (!native) throw new Error(`no native pixels for codecs/${name}`);
  return { bytes: Deno.readFileSync(new URL(`codecs/${name}`, DIR)), native };
}

/** SHA-256 (hex) of a raster as RGB, the way native.json hashes imread's pixels: gray repeated, alpha dropped. */
export async function rgbSha256(raster: Raster): Promise<string> {
  const { width, height, channels, data } = raster;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, s = 0, o = 0; i < width * height; i++, s += channels, o += 3) {
    rgb[o] = data[s];
    rgb[o + 1] = data[channels === 1 ? s : s + 1];
    rgb[o + 2] = data[channels === 1 ? s : s + 2];
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", rgb));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A seeded pseudo-random generator (mulberry32) in [0, 1): generated test data is the same on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Byte equality, asserted without node:assert's diff (which takes minutes on large differing arrays). */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, message: string): void {
  const same = actual.length === expected.length && actual.every((v, i) => v === expected[i]);
  assert.ok(same, `${message}: ${actual.length} vs ${expected.length} bytes, contents differ`);
}

/** OpenCV.js's own gray image of a raster (cvtColor from RGB or RGBA, a copy for gray): the reference tests compare
 * with. The caller deletes it. */
export function openCVGray(cv: OpenCV, raster: Raster): InstanceType<OpenCV["Mat"]> {
  const types = { 1: cv.CV_8UC1, 3: cv.CV_8UC3, 4: cv.CV_8UC4 };
  const src = new cv.Mat(raster.height, raster.width, types[raster.channels]);
  const gray = new cv.Mat();
  try {
    src.data.set(raster.data);
    if (raster.channels === 1) src.copyTo(gray);
    else cv.cvtColor(src, gray, raster.channels === 3 ? cv.COLOR_RGB2GRAY : cv.COLOR_RGBA2GRAY);
    return gray;
  } finally {
    src.delete();
  }
}
