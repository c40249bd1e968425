import assert from "node:assert/strict";
import { noisePng, runHeavy } from "../bench/heavy.ts";
import { testTempDir } from "./harness.ts";

// The heavy run (bench/heavy.ts: 32 × a 3000×3000 noise PNG) at a quarter of the pixels and a quarter of the uploads:
// 8 noise PNGs of 1500×1500 (about 16,700 contours each) at once, then their 8 lazily drawn images at once.
const UPLOADS = 8;
const SIDE = 1500;
const STORED = 500;
// Above the service's idle RSS (~270 MiB: Deno, Hono, BullMQ, two OpenCV.js members). Measured on 2 cores: 642 MiB
// peak while analysing, 686 MiB while drawing, ~410 MiB above idle; without the cap 4 such uploads already reached
// 948 MiB. The ~1.5× margin absorbs allocator and V8 heap sizing differences between machines; what the bound catches
// is memory growing with stored contours or with the number of uploads again.
const GROWTH_MIB = 640;

Deno.test("heavy noise images: every task completes, documents capped and marked, RSS bounded", async () => {
  const image = await noisePng(SIDE);
  const report = await runHeavy({
    image,
    uploads: UPLOADS,
    scratch: testTempDir(),
    render: "lazy",
    maxContours: STORED,
    workers: 2,
    timeoutMs: 120_000,
    inspect: async (base, summaries) => {
      const doc = await (await fetch(`${base}${summaries[0].data_url}`)).json();
      assert.equal(doc.truncated, true);
      assert.equal(doc.contours.length, STORED);
      assert.equal(doc.contour_count, STORED);
      assert.equal(doc.contours_found, summaries[0].contours_found);
    },
  });
  assert.equal(report.summaries.length, UPLOADS);
  for (const s of report.summaries) {
    assert.equal(s.truncated, true);
    assert.equal(s.contour_count, STORED);
    assert.ok((s.contours_found as number) > 10_000, `contours_found ${s.contours_found}`);
  }
  assert.ok(report.image_bytes.every((n) => n > 1000), `image sizes ${report.image_bytes}`);
  const peak = Math.max(report.analyse_peak_mib, report.fetch_peak_mib);
  assert.ok(
    peak - report.idle_mib < GROWTH_MIB,
    `RSS grew from ${report.idle_mib} MiB idle to ${peak} MiB (analysing ${report.analyse_peak_mib}, drawing ` +
      `${report.fetch_peak_mib}); bound ${GROWTH_MIB} MiB above idle`,
  );
});
