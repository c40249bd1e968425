import assert from "node:assert/strict";
import { startPrivateRedis } from "../dev/private_redis.ts";
import { startContourWorker } from "../worker.ts";
import { fixture } from "./fixtures.ts";
import { sparePort, startTestService, testTempDir, upload, waitForTask } from "./harness.ts";

Deno.test("jobs accepted before a Redis restart complete afterwards (append-only persistence)", async () => {
  const dir = testTempDir();
  const port = sparePort();
  let redis = await startPrivateRedis(port, dir);
  // No workers yet: the jobs sit in the queue across the restart.
  const svc = await startTestService({ REDIS_PORT: String(port), EMBEDDED_WORKER: "false" });
  let worker: Awaited<ReturnType<typeof startContourWorker>> | undefined;
  try {
    const ids: string[] = [];
    for (const name of ["coins.png", "page.png", "coins.bmp"]) {
      const res = await upload(svc.base, await fixture(name), name);
      assert.equal(res.status, 202);
      ids.push((await res.json()).task_id);
    }
    await redis.stop();
    redis = await startPrivateRedis(port, dir);
    worker = await startContourWorker(svc.config);
    for (const id of ids) {
      const status = await waitForTask(svc.base, id, 30_000);
      assert.equal(status.state, "completed", JSON.stringify(status));
    }
  } finally {
    await worker?.close();
    await svc.close();
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a transient failure (result folder unwritable) is retried JOB_ATTEMPTS times, then fails with its reason", async () => {
  const dir = testTempDir();
  // A file where the result folder should be: every write of a result fails with an I/O error.
  const blocked = `${dir}/results-blocked`;
  await Deno.writeTextFile(blocked, "not a folder");
  const svc = await startTestService({ JOB_ATTEMPTS: "2", EMBEDDED_WORKER: "false" });
  const worker = await startContourWorker({ ...svc.config, RESULT_DIR: blocked }).catch((e) => e as Error);
  try {
    // The worker refuses to start on a result folder it cannot create: a misconfiguration is caught at start.
    assert.ok(worker instanceof Error, "a worker whose RESULT_DIR is a file must not start");
    // With the folder created and then replaced by a file, writes fail at job time instead.
    const late = `${dir}/results-late`;
    await Deno.mkdir(late);
    const w = await startContourWorker({ ...svc.config, RESULT_DIR: late });
    try {
      await Deno.remove(late);
      await Deno.writeTextFile(late, "not a folder");
      const res = await upload(svc.base, await fixture("page.png"), "page.png");
      const { task_id } = await res.json();
      const status = await waitForTask(svc.base, task_id, 30_000);
      assert.equal(status.state, "failed");
      assert.equal(status.attempts, 2, "retried once with backoff, then given up");
      assert.equal((status.error as { code: string }).code, "processing_error");
    } finally {
      await w.close();
    }
  } finally {
    await svc.close();
    await Deno.remove(dir, { recursive: true });
  }
});
