import assert from "node:assert/strict";
import { taskFlags, testTempDir } from "./harness.ts";

// Keeps `deno task bench` working: its quick mode, end to end, with the task's own permissions. Only the shape of
// what it writes is checked; its figures are for people to read (timing assertions here would be flaky by nature).
Deno.test("deno task bench --quick runs every part and writes its JSON", async () => {
  const dir = testTempDir();
  const out = `${dir}/bench.json`;
  const flags = await taskFlags("bench");
  const run = await new Deno.Command("deno", {
    args: ["run", ...flags, `--allow-write=bench/.tmp,${dir}`, "bench/main.ts", "--quick", `--out=${out}`],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(run.stdout);
  assert.ok(run.success, `${text}\n${new TextDecoder().decode(run.stderr)}`);
  try {
    const result = JSON.parse(await Deno.readTextFile(out));
    const samples = ["coins.png", "camera.png", "page.png", "hubble_deep_field.jpg", "rocket.jpg"];
    assert.deepEqual(Object.keys(result.kernel.ours), samples);
    for (const name of samples) {
      const stages = result.kernel.ours[name];
      for (const stage of ["decode", "analyse", "measure", "draw", "encode", "total"]) {
        assert.ok(stages[stage] > 0, `${name} ${stage}: ${stages[stage]}`);
      }
      if (result.kernel.native) assert.equal(result.kernel.native.images[name].contour_count, stages.contour_count);
    }
    assert.ok(result.opencv_startup_ms > 0);
    assert.ok(result.memory.rss_after_all_mib > 0);
    assert.ok(result.pool.scaling > 0);
    assert.ok(result.e2e.length >= 2);
    for (const run of result.e2e) {
      assert.equal(run.failures, 0, JSON.stringify(run));
      assert.equal(run.accepted, run.uploads);
      assert.ok(run.images_per_s > 0 && run.upload_ms.p99 > 0 && run.completed_ms.p99 > 0);
      // The service lowers its analysis threads' priority by default (WORKER_NICE=19): their CPU shows up as niced.
      assert.ok(run.cpu.niced_ms > 0 && run.cpu.normal_ms > 0 && run.cpu.busy_pct > 0, JSON.stringify(run.cpu));
    }
    assert.ok(result.scaling_budget.length >= 2, JSON.stringify(result.scaling_budget));
    assert.ok(result.drain.length >= 2);
    for (const run of result.drain) {
      assert.ok(run.failures === 0 && run.images_per_s > 0, JSON.stringify(run));
      if (Deno.build.os !== "linux") continue;
      // Thread times come in 10 ms ticks: only the pool members' and Redis's are sure to be above zero in 20 images.
      const kinds = ["analysis", "main", "file_io", "v8", "other", "redis"];
      assert.deepEqual(Object.keys(run.threads_ms).sort(), kinds.sort());
      assert.ok(Object.values(run.threads_ms).every((v) => typeof v === "number" && v >= 0), JSON.stringify(run));
      assert.ok(run.threads_ms.analysis > 0 && run.threads_ms.redis > 0, JSON.stringify(run.threads_ms));
    }
    assert.ok(result.drain.every((run: { workload: string }) => run.workload === "five samples"));
    assert.match(text, /\| queue drain \| analysis \| main \| file_io \| v8 \| other \| redis \|/);
    assert.match(text, /\| image \| decode \| analyse \| measure \| draw \| encode \| total \|/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
