// Runs one of the project's decoder test files against a library instead of our module, and counts the steps that
// pass. The test file is copied to bench/.tmp/libraries with the one import swapped for an adapter (bench/libraries/*.ts) that
// puts the library's output in our Raster and its errors in ImageError; nothing else in the test changes.
//
// The libraries tried are not dependencies of the project: run with a lock file and module cache of its own, so that
// neither deno.lock nor node_modules changes.
//
//   cp deno.lock /tmp/bench.lock
//   deno run --lock=/tmp/bench.lock --node-modules-dir=none -A bench/libraries/matrix.ts \
//     tests/bmp_test.ts imaging/bmp.ts bench/libraries/bmp_bmp_ts.ts
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const LOCK = Deno.args.find((a) => a.startsWith("--lock="))?.slice(7) ?? "/tmp/bench.lock";
const [testFile, module, adapter, timeoutS = "600"] = Deno.args.filter((a) => !a.startsWith("--"));
// --skip=<step name>: a step that hangs with the library (noted as such) is left out, so the rest can be counted.
const skip = Deno.args.filter((a) => a.startsWith("--skip=")).map((a) => a.slice(7));
if (!adapter) throw new Error("usage: matrix.ts <test file> <module it imports> <adapter>");

// Outside tests/, so that no run or type check of the project's tests picks the copy up.
const outDir = join(ROOT, "bench/.tmp/libraries");
await Deno.mkdir(outDir, { recursive: true });
const out = join(outDir, `${basename(adapter, ".ts")}_${basename(testFile)}`);
const from = dirname(join(ROOT, testFile));
// --source=<file>: the test's text from elsewhere (a committed version, say), resolved as if it were testFile.
const source = Deno.args.find((a) => a.startsWith("--source="))?.slice(9);
let text = await Deno.readTextFile(source ?? join(ROOT, testFile));
// Relative specifiers and fixture URLs, re-pointed from the copy's folder; the swapped module to the adapter.
text = text.replace(/(["'])(\.\.?\/[^"']*)\1/g, (_m, q, spec) => {
  const target = join(from, spec);
  let rel = relative(outDir, target) + (spec.endsWith("/") ? "/" : "");
  if (target === join(ROOT, module)) rel = relative(outDir, join(ROOT, adapter));
  return q + (rel.startsWith(".") ? rel : "./" + rel) + q;
});
for (const name of skip) {
  const at = text.indexOf(`await t.step(${JSON.stringify(name)}`);
  if (at < 0) throw new Error(`no step ${name}`);
  text = text.slice(0, at) + "if (Deno.args.length < 0) " + text.slice(at);
}
await Deno.writeTextFile(out, text);

const cmd = new Deno.Command("deno", {
  args: [
    "test",
    `--lock=${LOCK}`,
    "--node-modules-dir=none",
    "--no-prompt",
    "--allow-net=127.0.0.1,localhost",
    "--allow-read=.,/tmp",
    "--allow-write=tests/.tmp,bench/.tmp,/tmp",
    "--allow-env",
    "--allow-sys",
    "--allow-run",
    ...Deno.args.filter((a) => a.startsWith("--filter=")),
    relative(ROOT, out),
  ],
  cwd: ROOT,
  stdout: "piped",
  stderr: "piped",
  signal: AbortSignal.timeout(Number(timeoutS) * 1000),
});
const started = performance.now();
let output: Deno.CommandOutput;
try {
  output = await cmd.output();
} catch (err) {
  console.log(JSON.stringify({ testFile, adapter, error: `did not finish in ${timeoutS} s (${err})` }));
  await Deno.remove(out);
  Deno.exit(0);
}
// deno test colours its report; the step lines are "  name ... ok|FAILED".
// deno-lint-ignore no-control-regex
const plain = new TextDecoder().decode(output.stdout).replace(/\x1b\[[0-9;]*m/g, "");
const steps = [...plain.matchAll(/^(\s*)(.+?) \.\.\. (ok|FAILED|ignored)(?: \(.*\))?$/gm)].map((m) => ({
  depth: m[1].length / 2,
  name: m[2],
  result: m[3],
}));
const summary = /(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?/.exec(plain);
console.log(JSON.stringify(
  {
    testFile,
    adapter,
    skipped: skip,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    summary: summary?.[0] ?? plain.slice(-400),
    failed: steps.filter((s) => s.result === "FAILED").map((s) => s.name),
    passed: steps.filter((s) => s.result === "ok").length,
  },
  null,
  2,
));
if (!Deno.args.includes("--keep")) await Deno.remove(out);
