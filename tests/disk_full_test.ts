import assert from "node:assert/strict";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { createApp } from "../app.ts";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue } from "../queue/contour_queue.ts";
import { isDiskFull, withoutPaths } from "../storage/disk.ts";
import { fixture } from "./fixtures.ts";
import { dropPrefix, startTestService, testConfig, testTempDir, upload, waitForTask } from "./harness.ts";

/** Mounts a tmpfs of `size` at `dir`; false where the test may not mount (not root, no CAP_SYS_ADMIN, a container). */
async function mountTmpfs(dir: string, size: string, extra = ""): Promise<boolean> {
  await Deno.mkdir(dir, { recursive: true });
  const opts = `size=${size}${extra ? "," + extra : ""}`;
  try {
    const { success } = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", opts, "tmpfs", dir] }).output();
    return success;
  } catch {
    return false;
  }
}

async function umount(dir: string): Promise<void> {
  await new Deno.Command("umount", { args: ["-l", dir] }).output().catch(() => {});
}

async function remount(dir: string, mode: "ro" | "rw"): Promise<void> {
  const { success, stderr } = await new Deno.Command("mount", { args: ["-o", `remount,${mode}`, dir] }).output();
  assert.ok(success, new TextDecoder().decode(stderr));
}

/** Writes into `dir` until its file system is full; the file's path (remove it to make room again). */
async function fill(dir: string): Promise<string> {
  const path = `${dir}/.filler`;
  const file = await Deno.open(path, { write: true, create: true });
  const block = new Uint8Array(4096);
  try {
    for (;;) await file.write(block);
  } catch (err) {
    assert.ok(isDiskFull(err), `filling ${dir} ended with ${err}`);
  } finally {
    file.close();
  }
  return path;
}

function uploadWith(base: string, bytes: Uint8Array, fields: Record<string, string>): Promise<Response> {
  const form = new FormData();
  form.append("file", new File([bytes as Uint8Array<ArrayBuffer>], "coins.png"));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
}

const canMount = await (async () => {
  if (Deno.build.os !== "linux") return false;
  const probe = testTempDir();
  const ok = await mountTmpfs(probe, "64k");
  if (ok) await umount(probe);
  await Deno.remove(probe, { recursive: true }).catch(() => {});
  return ok;
})();

Deno.test("isDiskFull: ENOSPC and EDQUOT, as Deno reports them (an Error with that code), and nothing else", () => {
  assert.ok(isDiskFull(Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" })));
  assert.ok(isDiskFull(Object.assign(new Error("Disk quota exceeded (os error 122)"), { code: "EDQUOT" })));
  assert.ok(!isDiskFull(new Deno.errors.NotFound("x")));
  assert.ok(!isDiskFull(undefined));
});

// Runs where no tmpfs can be mounted too: the write error is injected through the renderer the app is given.
Deno.test("drawing on request into a full disk → 507 with Retry-After and no path (injected ENOSPC)", async () => {
  const config = testConfig();
  const redis = createRedis(config, "producer");
  await connectRedis(redis);
  const queue = createContourQueue(config, redis);
  const full = Object.assign(
    new Error(`No space left on device (os error 28): writefile '${config.RESULT_DIR}/x.png.1.tmp'`),
    { code: "ENOSPC" },
  );
  const app = createApp({ config, redis, queue, renderer: { ensure: () => Promise.reject(full) } });
  try {
    const res = await app.request(`/static/results/${crypto.randomUUID()}.png`);
    const body = await res.json();
    assert.equal(res.status, 507, JSON.stringify(body));
    assert.equal(body.error.code, "insufficient_storage");
    assert.ok(Number(res.headers.get("retry-after")) > 0);
    assert.ok(!JSON.stringify(body).includes(config.RESULT_DIR));
  } finally {
    await queue.close();
    await closeRedis(redis);
    await dropPrefix(config);
    await Deno.remove(config.UPLOAD_DIR.replace(/\/uploads$/, ""), { recursive: true }).catch(() => {});
  }
});

Deno.test("failure messages lose Deno's operation and paths", () => {
  assert.equal(
    withoutPaths("No space left on device (os error 28): writefile 'result_images/ab.json.0f1e.tmp'"),
    "No space left on device (os error 28)",
  );
  assert.equal(
    withoutPaths("Read-only file system (os error 30): rename '/srv/a.tmp' -> '/srv/a'"),
    "Read-only file system (os error 30)",
  );
  assert.equal(withoutPaths("cannot open /var/lib/bip/x.png"), "cannot open <path>");
});

Deno.test({
  name: "full disks: uploads and drawing on request → 507, jobs wait without using attempts, health says disk",
  ignore: !canMount,
  async fn(t) {
    const root = testTempDir();
    const uploads = `${root}/uploads`;
    const results = `${root}/results`;
    assert.ok(await mountTmpfs(uploads, "4m"), "mount uploads");
    assert.ok(await mountTmpfs(results, "2m"), "mount results");
    const svc = await startTestService({
      UPLOAD_DIR: uploads,
      RESULT_DIR: results,
      KEEP_UPLOADS: "true",
      JOB_ATTEMPTS: "1",
      WORKER_CONCURRENCY: "1",
    });
    const redis = new Redis({ host: svc.config.REDIS_HOST, port: svc.config.REDIS_PORT, maxRetriesPerRequest: 1 });
    const queue = new Queue(svc.config.QUEUE_NAME, { connection: redis, prefix: svc.config.QUEUE_PREFIX });
    const coins = await fixture("coins.png");
    try {
      let lazy: Record<string, unknown> = {};
      await t.step("with room, a lazily drawn task completes", async () => {
        const res = await uploadWith(svc.base, coins, { render: "lazy" });
        assert.equal(res.status, 202, await res.clone().text());
        lazy = await waitForTask(svc.base, (await res.json()).task_id);
        assert.equal(lazy.state, "completed", JSON.stringify(lazy));
      });

      const filler = await fill(results);
      await t.step("RESULT_DIR full: the first request for a lazily drawn image → 507 with Retry-After", async () => {
        const url = (lazy.result as { result_url: string }).result_url;
        const res = await fetch(`${svc.base}${url}`);
        const body = await res.json();
        assert.equal(res.status, 507, JSON.stringify(body));
        assert.equal(body.error.code, "insufficient_storage");
        assert.ok(Number(res.headers.get("retry-after")) > 0, "Retry-After");
        assert.ok(!JSON.stringify(body).includes(results), "no server path in the answer");
      });

      await t.step("RESULT_DIR full: the job is delayed for minutes, its attempt not used", async () => {
        const res = await uploadWith(svc.base, coins, { render: "eager" });
        assert.equal(res.status, 202);
        const id = (await res.json()).task_id;
        const until = Date.now() + 20_000;
        let state = "";
        while (Date.now() < until) {
          state = await queue.getJobState(id);
          if (state === "delayed" || state === "failed") break;
          await new Promise((r) => setTimeout(r, 50));
        }
        const job = await queue.getJob(id);
        assert.equal(state, "delayed", `state ${state}, reason ${job?.failedReason}`);
        assert.equal(job?.attemptsMade, 0);
        assert.ok((job?.delay ?? 0) >= 60_000, `delay ${job?.delay} ms`);
        const status = await (await fetch(`${svc.base}/api/v1/images/status/${id}`)).json();
        assert.equal(status.state, "queued");
      });

      await t.step("health/full names the disk; /metrics has its free bytes", async () => {
        const res = await fetch(`${svc.base}/api/v1/health/full`);
        const body = await res.json();
        assert.equal(res.status, 503, JSON.stringify(body));
        assert.ok(body.failing.includes("disk"), JSON.stringify(body.failing));
        assert.equal(body.components.disk.free_bytes.result_dir, 0);
        const metrics = await (await fetch(`${svc.base}/metrics`)).text();
        assert.match(metrics, /bip_disk_free_bytes\{dir="result"\} 0\b/);
        assert.match(metrics, /bip_disk_free_bytes\{dir="upload"\} \d+/);
      });

      await t.step("UPLOAD_DIR full: an upload → 507 insufficient_storage with Retry-After", async () => {
        const uploadFiller = await fill(uploads);
        try {
          const res = await upload(svc.base, coins, "coins.png");
          const body = await res.json();
          assert.equal(res.status, 507, JSON.stringify(body));
          assert.equal(body.error.code, "insufficient_storage");
          assert.ok(Number(res.headers.get("retry-after")) > 0);
        } finally {
          await Deno.remove(uploadFiller);
        }
      });

      await t.step("another write error fails the job with a reason that names no path", async () => {
        await Deno.remove(filler);
        await remount(results, "ro");
        try {
          const res = await uploadWith(svc.base, coins, { render: "eager" });
          const status = await waitForTask(svc.base, (await res.json()).task_id);
          assert.equal(status.state, "failed");
          const { message } = status.error as { message: string };
          assert.ok(!/\.tmp|results|\//.test(message), message);
        } finally {
          await remount(results, "rw");
        }
      });
    } finally {
      await queue.close();
      await redis.quit();
      await svc.close();
      await umount(uploads);
      await umount(results);
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
