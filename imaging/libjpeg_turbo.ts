// libjpeg-turbo 2.1.5 compiled to WebAssembly with SIMD (libjpeg_turbo/, built by libjpeg_turbo/build.sh;
// docs/jpeg-encoder.md). One module holds the compressor (jpeg_encode.ts) and the decompressor (jpeg_wasm.ts); it is
// compiled once per isolate, and each of them runs an instance of its own, so that dropping one (after a libjpeg error,
// or to give back memory) leaves the other alone.
const WASM_URL = new URL("./libjpeg_turbo/libjpeg_turbo.wasm", import.meta.url);

let compiled: WebAssembly.Module | undefined;
let compiling: Promise<WebAssembly.Module> | undefined;

/** Compiles the module once per isolate, off the calling thread. */
export function compileLibjpegTurbo(): Promise<WebAssembly.Module> {
  compiling ??= (async () => {
    const module = await WebAssembly.compile(await Deno.readFile(WASM_URL));
    compiled ??= module;
    return compiled;
  })();
  return compiling;
}

/** The compiled module, compiling it here, synchronously, if nothing has yet (280 KB: a few milliseconds, once). */
export function libjpegTurboModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(Deno.readFileSync(WASM_URL));
  return compiled;
}
