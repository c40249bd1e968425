import assert from "node:assert/strict";
import { taskFlags, testTempDir } from "./harness.ts";

// Keeps `deno task bench` working: its quick mode, end to end, with the task's own permissions. Only the shape of
// what it writes and that every task was served are checked; its figures are for people to read (timing assertions
// here would be flaky by nature, and a target the bench reports as not met fails nothing).
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
    const images = [...samples, "coins.bmp", "camera.tif"];
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
    // End to end: every run, ours and (where it can run) the original's, served every task's image, whole and valid.
    const rows = result.e2e.rows;
    assert.deepEqual(rows.map((r: { ours: { fetched: string } }) => r.ours.fetched), ["jpeg", "png", "png", "json"]);
    assert.deepEqual(rows.map((r: { ours: { fields: unknown } }) => r.ours.fields), [
      { output_format: "jpeg" },
      {},
      { render: "lazy" },
      { render: "lazy" },
    ]);
    // The original needs Debian's python3 with cv2, Celery, FastAPI…; where it is missing (as in CI, which does not
    // install them) the bench says so and runs ours alone.
    const original = rows[0].original !== null;
    if (!original) assert.match(text, /the original's stack not measured/);
    const sides = [
      ...rows.flatMap((r: { ours: unknown; original: unknown }) => [r.ours, ...(original ? [r.original] : [])]),
      result.e2e.ours_one_member,
    ];
    for (const side of sides) {
      const where = JSON.stringify(side);
      assert.equal(side.accepted, side.uploads, where);
      assert.equal(side.served, side.uploads, where);
      assert.equal(side.failures, 0, where);
      assert.equal(side.warmup_failures, 0, where);
      assert.deepEqual(Object.keys(side.checked).sort(), [...images].sort());
      assert.ok(Object.values(side.checked).every((v) => v === "ok"), where);
      assert.ok(side.images_per_s > 0 && side.upload_ms.p99 > 0 && side.in_hand_ms.p99 > 0, where);
      assert.ok(side.cpu_ms.kernel > 0 && side.cpu_ms.total > 0, where);
      // The service lowers its analysis threads' priority by default (WORKER_NICE=19): their CPU shows up as niced.
      if (side.service === "ours") assert.ok(side.cpu.niced_ms > 0 && side.cpu.busy_pct > 0, where);
    }
    if (original) {
      assert.equal(rows[0].original.fetched, "jpeg");
      assert.equal(rows[1].original.fetched, "png");
      assert.ok(rows.every((r: { images_per_s_ratio: number }) => r.images_per_s_ratio > 0));
    }
    const targets = result.e2e.targets;
    assert.equal(targets.length, 5);
    assert.ok(targets.every((t: { met: boolean | null }) => original ? typeof t.met === "boolean" : true));
    assert.equal(targets[4].met, true, JSON.stringify(targets[4]));
    assert.match(text, /\| row \| images\/s: ours; original \| ours \/ original \|/);
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
    // CPU per request by kind, with the connection guard's relay and without: four kinds each, all answered.
    for (const mode of ["guarded", "direct"]) {
      const costs = result.requests[mode];
      assert.equal(costs.length, 4, JSON.stringify(costs));
      for (const c of costs) assert.ok(c.requests > 0 && c.total_ms > 0 && c.main_ms >= 0, JSON.stringify(c));
    }
    assert.match(text, /\| request \| CPU ms, CONNECTION_GUARD=true \(default\) \| CPU ms, CONNECTION_GUARD=false \|/);
    for (const op of ["create_ms", "rename_ms", "overwrite_ms", "read_ms", "remove_ms", "create_after_removes_ms"]) {
      assert.ok(result.file_ops[op] >= 0, JSON.stringify(result.file_ops));
    }
    assert.match(text, /\| image \| decode \| analyse \| measure \| draw \| encode \| total \|/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
