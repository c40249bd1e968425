// libjpeg-turbo compiled to WASM (mozjpeg's decoder, from @jsquash/jpeg): the same library native OpenCV decodes with,
// so its pixels equal imread's bit for bit, about 4× faster than jpeg-js here (README "Codecs").
import mozjpegDecoder from "@jsquash/jpeg/codec/dec/mozjpeg_dec.js";

interface MozJpegModule {
  decode(
    data: ArrayBuffer | Uint8Array,
    preserveOrientation: boolean,
  ): { data: Uint8ClampedArray; width: number; height: number } | null;
}

let decoder: MozJpegModule | null = null;
let loading: Promise<void> | undefined;
let warnings: string[] = [];

/** Loads the WASM decoder once per isolate (from node_modules, no network); decodeJpegWasm works once it resolves. */
export function loadJpegWasm(): Promise<void> {
  loading ??= (async () => {
    const url = new URL(import.meta.resolve("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm"));
    const wasm = await WebAssembly.compile(await Deno.readFile(url));
    decoder = await (mozjpegDecoder as unknown as (options: object) => Promise<MozJpegModule>)({
      noInitialRun: true,
      instantiateWasm: (imports: WebAssembly.Imports, done: (instance: WebAssembly.Instance) => void) => {
        const instance = new WebAssembly.Instance(wasm, imports);
        done(instance);
        return instance.exports;
      },
      // libjpeg reports damaged data as warnings and goes on with grey; collected, so the caller can refuse them.
      printErr: (line: string) => warnings.push(line),
      print: () => {},
    });
  })();
  return loading;
}

/**
 * Decodes a JPEG to RGBA with libjpeg-turbo; null when the decoder is not loaded, fails, or warns about damaged data
 * (the caller then uses its own decoder, which refuses or explains such files).
 */
export function decodeJpegWasm(bytes: Uint8Array): { width: number; height: number; rgba: Uint8Array } | null {
  if (!decoder) return null;
  warnings = [];
  let image;
  try {
    image = decoder.decode(bytes, false);
  } catch {
    // It throws non-Error values (an Emscripten exception pointer) on what it cannot decode, e.g. CMYK to RGBA.
    return null;
  }
  if (!image || warnings.length > 0) return null;
  return {
    width: image.width,
    height: image.height,
    rgba: new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength),
  };
}
