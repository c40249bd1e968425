// Multipart parsing, ours (routes/multipart.ts) against @fastify/busboy and busboy (multipart_busboy.ts and
// multipart_busboy1.ts, same interface), on the same bodies, interleaved in one run: a 1 MB and a 20 MB file
// (spilled to disk), and 200 uploads of 30 KB. The body arrives in 64 KiB chunks, as from a socket. Wall time and the
// process's CPU time per upload; medians of the rounds.
//
//   cp deno.lock /tmp/bench.lock
//   deno run --lock=/tmp/bench.lock --node-modules-dir=none -A bench/libraries/multipart.ts [rounds]
import process from "node:process";
import { receiveMultipart as ours } from "../../routes/multipart.ts";
import { receiveMultipart as busboy } from "./multipart_busboy.ts";
import { receiveMultipart as busboy1 } from "./multipart_busboy1.ts";

type Receive = typeof busboy;
const SIDES: [string, Receive][] = [
  ["ours", ours as unknown as Receive],
  ["@fastify/busboy 3.2.6", busboy],
  ["busboy 1.6.0", busboy1],
];
const ROUNDS = Number(Deno.args[0] ?? 9);
const CHUNK = 64 * 1024;
const dir = await Deno.makeTempDir({ prefix: "multipart-bench-" });

async function body(fileBytes: number): Promise<{ body: Uint8Array; type: string }> {
  // Random bytes: like compressed image data, they hold the boundary's bytes about as often as a real image does.
  const file = new Uint8Array(fileBytes);
  for (let i = 0; i < file.length; i += 65536) crypto.getRandomValues(file.subarray(i, i + 65536));
  const form = new FormData();
  form.append("threshold", "otsu");
  form.append("file", new File([file], "image.png"));
  const request = new Request("http://localhost/", { method: "POST", body: form });
  return { body: new Uint8Array(await request.arrayBuffer()), type: request.headers.get("content-type")! };
}

function request({ body, type }: { body: Uint8Array; type: string }): Request {
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= body.length) return controller.close();
      controller.enqueue(body.slice(offset, offset + CHUNK));
      offset += CHUNK;
    },
  });
  return new Request("http://localhost/", { method: "POST", body: stream, headers: { "content-type": type } });
}

async function run(receive: Receive, input: { body: Uint8Array; type: string }, count: number, fileBytes: number) {
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const tempPath = `${dir}/${crypto.randomUUID()}`;
    const got = await receive(request(input), {
      tempPath,
      maxFileBytes: 32 * 1024 * 1024,
      maxBodyBytes: 33 * 1024 * 1024,
      sha256: true,
    });
    if (got.file?.size !== fileBytes) throw new Error(`size ${got.file?.size}, expected ${fileBytes}`);
    if (got.file.bytes === null) await Deno.remove(tempPath);
  }
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { wallMs: wall / count, cpuMs: (used.user + used.system) / 1000 / count };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const CASES = [
  { name: "1 MB file", fileBytes: 1_000_000, count: 5 },
  { name: "20 MB file", fileBytes: 20_000_000, count: 1 },
  { name: "200 × 30 KB files", fileBytes: 30_000, count: 200 },
];
const rows: string[] = [];
for (const c of CASES) {
  const input = await body(c.fileBytes);
  const results = new Map<string, { wallMs: number; cpuMs: number }[]>(SIDES.map(([n]) => [n, []]));
  for (const [, receive] of SIDES) await run(receive, input, 1, c.fileBytes); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate which side goes first, so none always follows another's garbage.
    const order = [...SIDES.slice(r % SIDES.length), ...SIDES.slice(0, r % SIDES.length)];
    for (const [name, receive] of order) results.get(name)!.push(await run(receive, input, c.count, c.fileBytes));
  }
  const ourWall = median(results.get("ours")!.map((x) => x.wallMs));
  const ourCpu = median(results.get("ours")!.map((x) => x.cpuMs));
  for (const [name] of SIDES) {
    const wall = median(results.get(name)!.map((x) => x.wallMs));
    const cpu = median(results.get(name)!.map((x) => x.cpuMs));
    const mbs = (input.body.length / 1e6) / (wall / 1000);
    rows.push(
      `| ${c.name} | ${name} | ${wall.toFixed(2)} ms | ${mbs.toFixed(0)} MB/s | ${cpu.toFixed(2)} ms | ` +
        `${(wall / ourWall).toFixed(2)}× / ${(cpu / ourCpu).toFixed(2)}× |`,
    );
  }
}
await Deno.remove(dir, { recursive: true });
console.log(`${ROUNDS} rounds, medians per upload (64 KiB reads, SHA-256 on, spilled files written to disk)\n`);
console.log("| body | parser | wall | throughput | CPU | wall / CPU vs ours |");
console.log("| --- | --- | --- | --- | --- | --- |");
console.log(rows.join("\n"));
