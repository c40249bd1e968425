// What tests ask of the machine's own tools: native OpenCV (Debian's python3-opencv) and clang for the WASM builds.
import assert from "node:assert/strict";
import { assertSameBytes } from "./fixtures.ts";

/** Debian's python3, where cv2 lives (a python3 earlier on PATH, such as pyenv's, may have none). */
export const PYTHON = "/usr/bin/python3";

/** Whether a program runs here with these arguments (false when it is missing or the test may not run it). */
function runs(program: string, args: string[]): boolean {
  try {
    return new Deno.Command(program, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Whether PYTHON can import cv2. */
export function hasCv2(): boolean {
  return runs(PYTHON, ["-c", "import cv2"]);
}

/** Whether clang can run (the WASM modules' build scripts need it, and lld). */
export function hasClang(): boolean {
  return runs("clang", ["--version"]);
}

/**
 * Registers a test that the committed WASM module is what `deno task <task>` builds from its C source, so the binary
 * never drifts from the code reviewed beside it.
 */
export function testWasmMatchesSource(task: string, committed: string): void {
  const name = committed.split("/").pop();
  Deno.test({
    name: `the committed ${name} is what ${task} makes of its C source (needs clang and lld)`,
    ignore: !hasClang(),
    async fn() {
      const dir = new URL("./.tmp", import.meta.url).pathname;
      await Deno.mkdir(dir, { recursive: true });
      const tmp = await Deno.makeTempDir({ dir, prefix: "wasm-" });
      try {
        const out = `${tmp}/${name}`;
        const build = await new Deno.Command("deno", {
          args: ["task", "--quiet", task, out],
          cwd: new URL("..", import.meta.url),
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.ok(build.success, new TextDecoder().decode(build.stderr));
        const expected = await Deno.readFile(new URL(`../${committed}`, import.meta.url));
        assertSameBytes(await Deno.readFile(out), expected, `run \`deno task ${task}\` and commit the result`);
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}
