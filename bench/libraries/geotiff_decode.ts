// Decodes every input geotiff_matrix.ts recorded with geotiff, storing the Raster (or the error) next to it. Each
// batch runs in a child process that a watchdog ends when one file takes over 5 s (geotiff has no limit of its own):
// that file is stored as a hang.
//   BENCH_LOCK=/tmp/bench.lock deno run --lock=/tmp/bench.lock --node-modules-dir=none -A \
//     bench/libraries/geotiff_decode.ts /tmp/geotiff-matrix
// deno-lint-ignore no-import-prefix -- a library tried, not a dependency (run with its own lock file)
import { fromArrayBuffer } from "npm:geotiff@3.0.5";
import type { Stored } from "./tiff_geotiff.ts";

const [cache] = Deno.args;
const pendingFiles = () =>
  [...Deno.readDirSync(cache)].map((e) => e.name).filter((n) => n.endsWith(".tif")).map((n) => n.slice(0, -4))
    .filter((sha) => !existsSync(`${cache}/${sha}.json`)).sort();
function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function decodeOne(sha: string): Promise<Stored> {
  const bytes = Deno.readFileSync(`${cache}/${sha}.tif`);
  try {
    const tiff = await fromArrayBuffer(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    const image = await tiff.getImage();
    const pages = await tiff.getImageCount();
    const width = image.getWidth(), height = image.getHeight();
    const photometric = image.fileDirectory.getValue("PhotometricInterpretation");
    const spp = image.getSamplesPerPixel();
    const rgb = await image.readRGB({ interleave: true, enableAlpha: true }) as unknown as ArrayLike<number>;
    const channels = rgb.length / (width * height);
    // Gray (by its header) is one channel in ours; readRGB repeats it three times.
    if ((photometric === 0 || photometric === 1) && spp === 1) {
      const data = new Uint8Array(width * height);
      for (let i = 0; i < data.length; i++) data[i] = rgb[i * channels];
      Deno.writeFileSync(`${cache}/${sha}.raw`, data);
      return { width, height, channels: 1, pages };
    }
    if (channels !== 3 && channels !== 4) return { error: `readRGB returned ${channels} samples per pixel` };
    Deno.writeFileSync(`${cache}/${sha}.raw`, Uint8Array.from(rgb));
    return { width, height, channels, pages };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

if (Deno.args.includes("--child")) {
  for (const sha of pendingFiles()) {
    console.log(sha);
    Deno.writeTextFileSync(`${cache}/${sha}.json`, JSON.stringify(await decodeOne(sha)));
  }
  Deno.exit(0);
}

let hangs = 0;
while (pendingFiles().length > 0) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--lock=${Deno.env.get("BENCH_LOCK") ?? "/tmp/bench.lock"}`,
      "--node-modules-dir=none",
      "-A",
      new URL(import.meta.url).pathname,
      cache,
      "--child",
    ],
    stdout: "piped",
  }).spawn();
  let current = "";
  let last = Date.now();
  const watch = setInterval(() => {
    if (Date.now() - last > 5_000) child.kill("SIGKILL");
  }, 1000);
  for await (const line of child.stdout.pipeThrough(new TextDecoderStream())) {
    current = line.trim().split("\n").pop()!;
    last = Date.now();
  }
  const status = await child.status;
  clearInterval(watch);
  if (!status.success && current && !existsSync(`${cache}/${current}.json`)) {
    Deno.writeTextFileSync(`${cache}/${current}.json`, JSON.stringify({ error: "hang: no answer in 5 s" }));
    hangs++;
  }
}
console.log(JSON.stringify({ hangs }));
