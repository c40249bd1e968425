// JPEG encoding with libjpeg-turbo compiled to WASM (libjpeg_turbo.ts): the library and settings native OpenCV's
// imencode uses (baseline, standard Huffman tables, islow DCT, 4:2:0), so its files are byte-identical to cv2.imencode's
// at the same quality, in well under twice its time (jpeg-js took over 30×; docs/jpeg-encoder.md).
import { compileLibjpegTurbo, libjpegTurboModule } from "./libjpeg_turbo.ts";
import type { Raster } from "./raster.ts";

interface Encoder {
  memory: WebAssembly.Memory;
  input_buffer(size: number): number;
  encode(width: number, height: number, channels: number, quality: number): number;
  output(): number;
  error_code(): number;
  message(code: number): number;
}

/** libjpeg's limit on either dimension (JPEG_MAX_DIMENSION). */
export const JPEG_MAX_DIMENSION = 65500;
/**
 * WASM memory cannot shrink: once encoding an image has grown it past this, the instance is dropped after that image
 * and the next one gets a fresh instance, so one huge image's buffers are not held for the life of the isolate.
 */
const RETAIN_BYTES = 64 * 1024 * 1024;
const MAX_INPUT_BYTES = 2 ** 31 - 1;

let encoder: Encoder | null = null;

/** Compiles the WASM module once per isolate, off the calling thread; encodeJpegWasm works before it too. */
export async function loadJpegEncoder(): Promise<void> {
  await compileLibjpegTurbo();
}

function instance(): Encoder {
  // A caller that did not await loadJpegEncoder (a script, a test) gets the module compiled synchronously.
  encoder ??= new WebAssembly.Instance(libjpegTurboModule(), {}).exports as unknown as Encoder;
  return encoder;
}

/** Bytes of WASM memory the encoder holds now (0 before its first image). */
export function jpegEncoderMemoryBytes(): number {
  return encoder ? encoder.memory.buffer.byteLength : 0;
}

/**
 * Encodes an 8-bit raster as a baseline JPEG at `quality` (1–100): gray as one component, RGB as YCbCr 4:2:0, RGBA as
 * RGB (alpha ignored).
 */
export function encodeJpegWasm(raster: Raster, quality = 95): Uint8Array {
  const { width, height, channels, data } = raster;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`JPEG quality must be an integer from 1 to 100, not ${quality}`);
  }
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > JPEG_MAX_DIMENSION) {
      throw new RangeError(`JPEG ${name} must be an integer from 1 to ${JPEG_MAX_DIMENSION}, not ${v}`);
    }
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) throw new RangeError(`cannot encode ${channels} channels`);
  const size = width * height * channels;
  if (data.length < size) {
    throw new RangeError(`${width}×${height}×${channels} needs ${size} bytes, got ${data.length}`);
  }
  // The pixels, the output and libjpeg's buffers share one 32-bit address space.
  if (size > MAX_INPUT_BYTES) throw new RangeError(`${width}×${height}×${channels} is too large for the JPEG encoder`);

  const e = instance();
  try {
    const input = e.input_buffer(size);
    if (input === 0) throw new Error(`JPEG encoder: no memory for a ${width}×${height} image`);
    new Uint8Array(e.memory.buffer, input, size).set(data.subarray(0, size));
    const length = e.encode(width, height, channels, quality);
    if (length < 0) throw new Error(`JPEG encoder: ${describe(e, e.error_code())}`);
    // Views are taken after the call: encoding may have grown (and so replaced) the memory's buffer.
    return new Uint8Array(e.memory.buffer, e.output(), length).slice();
  } catch (err) {
    // libjpeg's errors end in a trap (encoder.c): the instance's heap may hold half a compressor, so it goes.
    encoder = null;
    if (err instanceof WebAssembly.RuntimeError) throw new Error(`JPEG encoder: ${describe(e, e.error_code())}`);
    throw err;
  } finally {
    if (encoder && encoder.memory.buffer.byteLength > RETAIN_BYTES) encoder = null;
  }
}

/** libjpeg's message for a code, with its printf placeholders (the values are not passed back). */
function describe(e: Encoder, code: number): string {
  const at = e.message(code);
  const bytes = new Uint8Array(e.memory.buffer, at);
  const text = new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
  return `${text || "failed"} (libjpeg message ${code})`;
}
