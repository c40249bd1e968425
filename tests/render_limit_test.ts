import { join } from "node:path";
import assert from "node:assert/strict";
import type { AnalysisPool } from "../imaging/pool.ts";
import { resultNames } from "../storage/files.ts";
import { createOnDemandRenderer } from "../rendering/render_on_demand.ts";
import { testConfig } from "./harness.ts";

Deno.test("drawing on request: 8 images asked for at once are read and drawn 2 at a time, not all at once", async () => {
  const config = testConfig({ WORKER_CONCURRENCY: "2" });
  await Deno.mkdir(config.UPLOAD_DIR, { recursive: true });
  await Deno.mkdir(config.RESULT_DIR, { recursive: true });
  let running = 0;
  let most = 0;
  // Stands in for the analysis pool, which queues per member itself: what matters is how many requests hold their
  // upload and document at once, i.e. how many reach it together.
  const pool = {
    async render() {
      most = Math.max(most, ++running);
      // A drawing takes time (a sleep is its stand-in), so that requests arriving together overlap in it.
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return new Uint8Array([1]);
    },
  } as unknown as AnalysisPool;
  const renderer = createOnDemandRenderer(config, () => Promise.resolve(pool));
  try {
    const ids = Array.from({ length: 8 }, () => crypto.randomUUID());
    for (const id of ids) {
      const document = JSON.stringify({ task_id: id, format: "png", options: { output_format: "png" }, contours: [] });
      await Deno.writeTextFile(join(config.RESULT_DIR, resultNames(id).data), document);
      await Deno.writeFile(`${config.UPLOAD_DIR}/${id}.png`, new Uint8Array(16));
    }
    const drawn = await Promise.all(ids.map((id) => renderer.ensure(id, "png")));
    assert.deepEqual(drawn, ids.map(() => true));
    assert.equal(most, 2, `${most} drawings at once`);
  } finally {
    await Deno.remove(config.UPLOAD_DIR.replace(/\/uploads$/, ""), { recursive: true });
  }
});
