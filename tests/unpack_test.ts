import assert from "node:assert/strict";
import { pngUnfilter, unpackMemoryBytes } from "../imaging/unpack.ts";
import { assertSameBytes, seededRandom } from "./fixtures.ts";
import { testWasmMatchesSource } from "./native_tools.ts";

// PNG's unfiltering as the specification words it (ISO/IEC 15948, 9.2-9.4), one byte at a time: the reference the
// WASM kernel must equal. Rows are compacted as the kernel does it.
function referenceUnfilter(buf: Uint8Array, at: number, rows: number, stride: number, bpp: number): void {
  const out = new Uint8Array(rows * stride);
  for (let y = 0; y < rows; y++) {
    const row = at + y * (stride + 1);
    const filter = buf[row];
    for (let i = 0; i < stride; i++) {
      const x = buf[row + 1 + i];
      const a = i >= bpp ? out[y * stride + i - bpp] : 0;
      const b = y > 0 ? out[(y - 1) * stride + i] : 0;
      const c = y > 0 && i >= bpp ? out[(y - 1) * stride + i - bpp] : 0;
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      const predicted = [0, a, b, (a + b) >> 1, paeth][filter];
      out[y * stride + i] = (x + predicted) & 255;
    }
  }
  buf.set(out, at);
}

Deno.test("pngUnfilter equals the specification on random rows: every filter, step and width, SIMD tails too", () => {
  const random = seededRandom(15948);
  for (const bpp of [1, 2, 3, 4, 6, 8]) {
    for (const stride of [bpp, bpp + 1, 15, 16, 17, 33, 100, 257]) {
      if (stride < bpp) continue;
      const rows = 1 + Math.floor(random() * 6);
      const at = Math.floor(random() * 5);
      const buf = new Uint8Array(at + rows * (stride + 1) + 3).map(() => Math.floor(random() * 256));
      for (let y = 0; y < rows; y++) buf[at + y * (stride + 1)] = Math.floor(random() * 5);
      const expected = buf.slice();
      referenceUnfilter(expected, at, rows, stride, bpp);
      assert.equal(pngUnfilter(buf, at, rows, stride, bpp), null);
      assertSameBytes(buf, expected, `bpp ${bpp}, stride ${stride}, ${rows} rows at ${at}`);
    }
  }
});

Deno.test("pngUnfilter names the first row with an invalid filter type and leaves the buffer as it was", () => {
  const buf = new Uint8Array(4 * 9).map((_, i) => i % 9 === 0 ? 1 : i);
  buf[2 * 9] = 7;
  buf[3 * 9] = 9;
  const before = buf.slice();
  assert.deepEqual(pngUnfilter(buf, 0, 4, 8, 1), { row: 2, filter: 7 });
  assertSameBytes(buf, before, "buffer after a refused filter type");
});

Deno.test("pngUnfilter: after an image over 64 MiB, a smaller one starts afresh (memory given back) and is exact", () => {
  const stride = 8192, big = Math.ceil((65 * 2 ** 20) / (stride + 1));
  const large = new Uint8Array(big * (stride + 1));
  assert.equal(pngUnfilter(large, 0, big, stride, 1), null);
  assert.ok(unpackMemoryBytes() > 64 * 2 ** 20, `${unpackMemoryBytes()} bytes held`);
  const small = new Uint8Array([2, 1, 2, 3, 2, 1, 1, 1]);
  assert.equal(pngUnfilter(small, 0, 2, 3, 1), null);
  assertSameBytes(small.subarray(0, 6), new Uint8Array([1, 2, 3, 2, 3, 4]), "Up filter after the restart");
  assert.ok(unpackMemoryBytes() <= 64 * 2 ** 20, `${unpackMemoryBytes()} bytes held`);
});

testWasmMatchesSource("build:unpack", "imaging/unpack/unpack.wasm");
