// One of the project's own C kernels (built by wasm_build.sh): a module without libc that imports its memory and
// exports __heap_base, where the caller lays out its buffers.

const PAGE = 65536;

/** `n` rounded up to a multiple of 16: where a kernel's buffers start, so its vector loads and stores are aligned. */
export const align16 = (n: number): number => Math.ceil(n / 16) * 16;
/**
 * WASM memory cannot shrink: after a call needing more than this, the next smaller one gets a fresh instance, so a pool
 * member holds on to one huge image's buffers only until then.
 */
const RETAIN_BYTES = 64 * 1024 * 1024;

/** A kernel's compiled module and its one instance, whose memory grows to what each call needs. */
export class WasmKernel<K extends { __heap_base: WebAssembly.Global }> {
  #module: WebAssembly.Module | undefined;
  #exports: K | null = null;
  #memory: WebAssembly.Memory | undefined;
  #loading: Promise<void> | undefined;

  constructor(readonly url: URL) {}

  /** Compiles the module off the critical path (the first use otherwise compiles it, synchronously). */
  load(): Promise<void> {
    this.#loading ??= (async () => {
      this.#module ??= await WebAssembly.compile(await Deno.readFile(this.url));
      if (!this.#exports) this.#instantiate(2);
    })();
    return this.#loading;
  }

  /** Whether an instance exists (after load() or a first use). */
  get loaded(): boolean {
    return this.#exports !== null;
  }

  /** The instance's functions, instantiated on first use. */
  get exports(): K {
    return this.#exports ?? this.#instantiate(2);
  }

  /** The instance's memory, whose buffer views must be taken again after every reserve(). */
  get memory(): WebAssembly.Memory {
    if (!this.#memory) this.#instantiate(2);
    return this.#memory!;
  }

  /** Bytes of WASM memory held now. */
  get heldBytes(): number {
    return this.#memory?.buffer.byteLength ?? 0;
  }

  /** Where the kernel's stack ends: buffers may start from here. */
  get heapBase(): number {
    return this.exports.__heap_base.value as number;
  }

  /**
   * Makes the memory reach byte `end`: grown when it is shorter, or a fresh instance when an earlier call left more than
   * RETAIN_BYTES and this one needs less. Returns the functions to call (a fresh instance's after a restart).
   */
  reserve(end: number): K {
    const held = this.memory.buffer.byteLength;
    if (end > held) this.memory.grow(Math.ceil((end - held) / PAGE));
    else if (held > RETAIN_BYTES && end <= RETAIN_BYTES) return this.#instantiate(Math.ceil(end / PAGE));
    return this.exports;
  }

  #instantiate(pages: number): K {
    this.#module ??= new WebAssembly.Module(Deno.readFileSync(this.url));
    const memory = new WebAssembly.Memory({ initial: pages });
    this.#memory = memory;
    return this.#exports = new WebAssembly.Instance(this.#module, { env: { memory } }).exports as unknown as K;
  }
}
