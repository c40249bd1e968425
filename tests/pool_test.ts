import assert from "node:assert/strict";
import { releaseBuffer } from "../imaging/bytes.ts";
import { ImageError } from "../imaging/image_error.ts";
import { DEFAULT_OPTIONS } from "../imaging/options.ts";
import { analyseImage, loadPipeline } from "../imaging/pipeline.ts";
import { AnalysisTimeoutError, createAnalysisPool, PoolClosedError, type PooledAnalysis } from "../imaging/pool.ts";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { noisePng } from "../bench/heavy.ts";
import { assertSameBytes, fixture, SAMPLES } from "./fixtures.ts";

Deno.test("analysis pool: Web Workers, each with its own OpenCV.js", async (t) => {
  const pool = await createAnalysisPool(2);
  try {
    await t.step("results equal the in-thread pipeline's for every sample, run concurrently", async () => {
      // Pool members decode JPEGs with libjpeg-turbo (WASM); so does this thread once it is loaded.
      const cv = await loadPipeline();
      const results = await Promise.all(
        SAMPLES.map(async (name) => ({
          name,
          out: await pool.analyse(await fixture(name), DEFAULT_OPTIONS, Infinity, { task_id: name }),
        })),
      );
      for (const { name, out } of results) {
        const local = analyseImage(cv, await fixture(name));
        const { contours, ...summary } = local.report;
        const document = JSON.parse(new TextDecoder().decode(out.document));
        assert.deepEqual(document.contours, contours, name);
        assert.deepEqual({ ...out.report, timings_ms: undefined }, { ...summary, timings_ms: undefined }, name);
        assertSameBytes(out.image!, local.image!, `${name}: the image`);
        assert.equal(document.task_id, name, "header fields lead the document");
      }
    });
    await t.step("image errors cross the boundary with their code", async () => {
      await assert.rejects(
        () => pool.analyse(new TextEncoder().encode("not an image"), DEFAULT_OPTIONS, Infinity),
        (e) => e instanceof ImageError && e.code === "not_an_image",
      );
      await assert.rejects(
        async () => pool.analyse(await fixture("coins.png"), DEFAULT_OPTIONS, 10),
        (e) => e instanceof ImageError && e.code === "image_too_large",
      );
    });
    await t.step("the calling thread keeps running while a member works (lock renewal is never starved)", async () => {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      try {
        await pool.analyse(await fixture("hubble_deep_field.jpg"), DEFAULT_OPTIONS, Infinity);
      } finally {
        clearInterval(timer);
      }
      // In-thread, the synchronous pipeline would hold the event loop until it returned: no tick could fire.
      assert.ok(ticks > 0, "the event loop was blocked during analysis");
    });
    await t.step("more requests than members queue and all complete", async () => {
      const coins = await fixture("coins.png");
      const outs = await Promise.all(
        Array.from({ length: 7 }, () => pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity)),
      );
      assert.deepEqual(outs.map((o) => o.report.contour_count), Array(7).fill(61));
    });
  } finally {
    pool.close();
  }
});

Deno.test("analysis pool: stopping refuses queued requests at once and lets the running one finish", async () => {
  const pool = await createAnalysisPool(1);
  try {
    const hubble = await fixture("hubble_deep_field.jpg");
    const running = pool.analyse(hubble.slice(), DEFAULT_OPTIONS, Infinity);
    const queued = pool.analyse(hubble.slice(), DEFAULT_OPTIONS, Infinity);
    pool.stopStarting();
    await assert.rejects(queued, (e) => e instanceof PoolClosedError && !e.started);
    await assert.rejects(
      pool.analyse(hubble.slice(), DEFAULT_OPTIONS, Infinity),
      (e) => e instanceof PoolClosedError && !e.started,
      "nor does it start later ones",
    );
    assert.ok((await running).report.contour_count > 0);
  } finally {
    pool.close();
  }
});

Deno.test("analysis pool: closing cuts off running requests and refuses queued ones, each saying which", async () => {
  const pool = await createAnalysisPool(1);
  const hubble = await fixture("hubble_deep_field.jpg");
  const running = pool.analyse(hubble.slice(), DEFAULT_OPTIONS, Infinity);
  const queued = pool.analyse(hubble.slice(), DEFAULT_OPTIONS, Infinity);
  // A free member is handed over in microtasks: by the next macrotask the first request is on it.
  await new Promise((r) => setTimeout(r, 0));
  pool.close();
  await Promise.all([
    assert.rejects(running, (e) => e instanceof PoolClosedError && e.started),
    assert.rejects(queued, (e) => e instanceof PoolClosedError && !e.started),
  ]);
});

/** A member that crashes or hangs when an analysis's header says `fault` (tests/faulty_pool_member.ts). */
const FAULTY_MEMBER = new URL("./faulty_pool_member.ts", import.meta.url);

/** Awaits a pool request that must settle, failing with `what` after `ms` instead of hanging the test. */
async function settles(request: Promise<PooledAnalysis>, what: string, ms = 30_000): Promise<PooledAnalysis> {
  const out = await withDeadline(request, ms);
  if (out === TIMED_OUT) throw new Error(`${what} did not settle within ${ms} ms`);
  return out;
}

Deno.test("analysis pool: a member crashing mid-analysis fails that request only; the pool replaces it and goes on", async () => {
  const pool = await createAnalysisPool(1, 0, { memberUrl: FAULTY_MEMBER });
  try {
    const coins = await fixture("coins.png");
    const crashing = pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity, { fault: "crash" });
    // Queued behind it on the only member: were the dead member handed on, this would never settle.
    const queued = pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity);
    // A plain Error (not an ImageError): the worker retries the job.
    await assert.rejects(crashing, (e) => !(e instanceof ImageError) && /analysis worker crashed/.test(String(e)));
    assert.equal((await settles(queued, "the request queued behind the crash")).report.contour_count, 61);
    const later = pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity);
    assert.equal((await settles(later, "a request after the crash")).report.contour_count, 61);
  } finally {
    pool.close();
  }
});

Deno.test("analysis pool: a request past timeoutMs ends its stuck member, fails with AnalysisTimeoutError, and the pool goes on", async () => {
  // Members at nice 7, so their threads can be told from the rest of the process's.
  const pool = await createAnalysisPool(1, 7, { memberUrl: FAULTY_MEMBER, timeoutMs: 1500 });
  try {
    const [stuck] = [...await threadNice()].filter(([, nice]) => nice === 7).map(([tid]) => tid);
    const coins = await fixture("coins.png");
    const started = performance.now();
    const hung = pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity, { fault: "hang" });
    const queued = pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity);
    await assert.rejects(hung, (e) => e instanceof AnalysisTimeoutError && e.timeoutMs === 1500);
    assert.ok(performance.now() - started >= 1450, "not before the deadline");
    assert.equal((await settles(queued, "the request queued behind the stuck one")).report.contour_count, 61);
    // The stuck member's thread is gone: one member thread again, a new one.
    const until = Date.now() + 10_000;
    let members: string[] = [];
    while (Date.now() < until) {
      members = [...await threadNice()].filter(([, nice]) => nice === 7).map(([tid]) => tid);
      if (members.length === 1 && members[0] !== stuck) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(members.length, 1, `member threads: ${members} (the stuck one was ${stuck})`);
    assert.notEqual(members[0], stuck);
  } finally {
    pool.close();
  }
});

Deno.test("analysis pool: a member that keeps more than memberMaxBytes after a request is replaced by a fresh one", async () => {
  // Members at nice 7, so their threads can be told from the rest of the process's. An idle member holds ~210 MiB
  // (OpenCV.js's heap and the JS heap); a 3000×3000 noise image leaves it ~400 MiB.
  const pool = await createAnalysisPool(1, 7, { memberMaxBytes: 300 * 2 ** 20, maxContours: 20_000 });
  const members = async () => [...await threadNice()].filter(([, nice]) => nice === 7).map(([tid]) => tid);
  try {
    const [first] = await members();
    const coins = await fixture("coins.png");
    assert.equal((await pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity)).report.contour_count, 61);
    assert.deepEqual(await members(), [first], "a small image keeps its member");

    const noisy = await pool.analyse(await noisePng(3000), DEFAULT_OPTIONS, Infinity);
    assert.equal(noisy.report.contour_count, 20_000, "the request that grew the member is answered");
    const until = Date.now() + 20_000;
    let now: string[] = [];
    while (Date.now() < until) {
      now = await members();
      if (now.length === 1 && now[0] !== first) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(now.length, 1, `member threads: ${now}`);
    assert.notEqual(now[0], first, "a new member thread");
    assert.equal((await pool.analyse(coins.slice(), DEFAULT_OPTIONS, Infinity)).report.contour_count, 61);
  } finally {
    pool.close();
  }
});

/** Nice values of this process's threads, by thread id (from ps, which reads /proc for us). */
async function threadNice(): Promise<Map<string, number>> {
  const out = await new Deno.Command("ps", { args: ["-L", "-o", "tid=,nice=", "-p", String(Deno.pid)] }).output();
  const rows = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => l.trim().split(/\s+/));
  return new Map(rows.map(([tid, nice]) => [tid, Number(nice)]));
}

Deno.test("analysis pool: members run at the nice value given, the rest of the process keeps its own", async () => {
  const before = await threadNice();
  const pool = await createAnalysisPool(2, 7);
  try {
    const after = await threadNice();
    const niced = [...after].filter(([, nice]) => nice === 7).map(([tid]) => tid);
    assert.equal(niced.length, 2, `one thread per member at nice 7: ${JSON.stringify([...after])}`);
    for (const tid of niced) assert.ok(!before.has(tid), "only the members' new threads are lowered");
    for (const [tid, nice] of before) {
      if (after.has(tid)) assert.equal(after.get(tid), nice, `thread ${tid} kept its priority`);
    }
    // Lowered threads still do the work.
    const out = await pool.analyse(await fixture("coins.png"), DEFAULT_OPTIONS, Infinity);
    assert.equal(out.report.contour_count, 61);
  } finally {
    pool.close();
  }
});

Deno.test("analysis pool: without --allow-sys=setPriority the members keep the normal priority, say so, and work", async () => {
  const script = 'import { createAnalysisPool } from "./imaging/pool.ts";\n' +
    'import { DEFAULT_OPTIONS } from "./imaging/options.ts";\n' +
    "const pool = await createAnalysisPool(2, 5);\n" +
    'const out = await pool.analyse(await Deno.readFile("tests/fixtures/coins.png"), DEFAULT_OPTIONS, Infinity);\n' +
    "console.log(JSON.stringify({ contours: out.report.contour_count }));\npool.close();\n";
  const child = new Deno.Command("deno", {
    args: ["run", "--no-prompt", "--allow-read=.", "--allow-env", "-"],
    cwd: new URL("..", import.meta.url),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  assert.equal(code, 0, text(stderr));
  // Warnings go to stderr as JSON lines.
  const warnings = text(stderr).split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  const said = warnings.filter((l) => l.msg === "analysis threads keep the normal CPU priority");
  assert.equal(said.length, 1, `one warning for the pool, not one per member: ${text(stderr)}`);
  const [warning] = said;
  assert.equal(warning.nice, 5);
  assert.match(warning.error, /setPriority/);
  assert.deepEqual(JSON.parse(text(stdout)), { contours: 61 });
});

Deno.test("releaseBuffer frees large owned buffers now, and leaves small, WASM and input buffers alone", async () => {
  const large = new Uint8Array(1 << 20);
  releaseBuffer(large.subarray(10, 20));
  assert.ok(large.buffer.detached, "a large buffer is detached (its memory freed) through any view of it");
  const small = new Uint8Array(1024);
  releaseBuffer(small);
  assert.ok(!small.buffer.detached, "a small one may be a slice of Buffer's shared pool");
  const wasm = new WebAssembly.Memory({ initial: 2 });
  releaseBuffer(new Uint8Array(wasm.buffer));
  assert.equal(new Uint8Array(wasm.buffer).length, 2 * 65536, "WebAssembly memory stays usable");
  // The pipeline frees what it decoded, never the caller's bytes: the same input analyses twice alike.
  const cv = await loadPipeline();
  for (const name of SAMPLES) {
    const bytes = await fixture(name);
    const first = analyseImage(cv, bytes);
    assert.ok(!(bytes.buffer as ArrayBuffer).detached, name);
    assertSameBytes(analyseImage(cv, bytes).image!, first.image!, name);
  }
});
