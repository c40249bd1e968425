// JPEG decoding with libjpeg-turbo 2.1.5 compiled to WASM with SIMD (libjpeg_turbo.ts; docs/jpeg-encoder.md): the
// library and settings native OpenCV's imread uses (islow IDCT, fancy upsampling; on x86-64 its SIMD code), so its
// pixels equal imread's bit for bit, in about the time imread takes.
import { compileLibjpegTurbo, libjpegTurboModule } from "./libjpeg_turbo.ts";

interface Decoder {
  memory: WebAssembly.Memory;
  decode_input(size: number): number;
  decode_begin(size: number): number;
  decode_width(): number;
  decode_height(): number;
  decode_band(): number;
  decode_rows(): number;
  decode_finish(): number;
}

/**
 * WASM memory cannot shrink: once a decode has grown it past this (a progressive file keeps all its coefficients, two
 * bytes per sample), the instance is dropped after that image, so one huge image's buffers are not held for the life
 * of the isolate.
 */
const RETAIN_BYTES = 64 * 1024 * 1024;
const MAX_INPUT_BYTES = 2 ** 31 - 1;

let wasm: WebAssembly.Module | undefined;
let decoder: Decoder | null = null;
let loading: Promise<void> | undefined;

/** Compiles the WASM decoder once per isolate (no network); decodeJpegWasm works once it resolves. */
export function loadJpegWasm(): Promise<void> {
  loading ??= compileLibjpegTurbo().then((module) => {
    wasm = module;
  });
  return loading;
}

/** Bytes of WASM memory the decoder holds now (0 before its first image). */
export function jpegDecoderMemoryBytes(): number {
  return decoder ? decoder.memory.buffer.byteLength : 0;
}

/**
 * Decodes a JPEG to RGBA (alpha 255; gray as R = G = B; CMYK and YCCK converted as OpenCV converts them) with
 * libjpeg-turbo, as stored (EXIF orientation is the caller's). Null when the decoder is not loaded (and `load` is not
 * set: then it is compiled here, synchronously), when libjpeg fails, or when it warns about damaged data: the caller
 * then uses its own decoder, which refuses or explains such files.
 */
export function decodeJpegWasm(
  bytes: Uint8Array,
  { load = false } = {},
): { width: number; height: number; rgba: Uint8Array } | null {
  if (!wasm && load) wasm = libjpegTurboModule();
  if (!wasm || bytes.length === 0 || bytes.length > MAX_INPUT_BYTES) return null;
  decoder ??= new WebAssembly.Instance(wasm, {}).exports as unknown as Decoder;
  const d = decoder;
  try {
    const input = d.decode_input(bytes.length);
    if (input === 0) return null;
    new Uint8Array(d.memory.buffer, input, bytes.length).set(bytes);
    if (d.decode_begin(bytes.length) !== 0) return null;
    const width = d.decode_width(), height = d.decode_height(), stride = width * 4;
    const rgba = new Uint8Array(stride * height);
    // Band by band (decoder.c): each is copied out while it is still in cache, and the WASM memory never holds the
    // whole image.
    for (let y = 0;;) {
      const rows = d.decode_rows();
      if (rows < 0) return null;
      if (rows === 0) break;
      rgba.set(new Uint8Array(d.memory.buffer, d.decode_band(), rows * stride), y * stride);
      y += rows;
    }
    return d.decode_finish() === 0 ? { width, height, rgba } : null;
  } catch (err) {
    // libjpeg's errors end in a trap (decoder.c): the instance's heap may hold half a decompressor, so it goes.
    if (!(err instanceof WebAssembly.RuntimeError)) throw err;
    decoder = null;
    return null;
  } finally {
    if (decoder && decoder.memory.buffer.byteLength > RETAIN_BYTES) decoder = null;
  }
}
