import assert from "node:assert/strict";
import { parseConfig } from "../config.ts";
import { childArgs, permissionFlags } from "../launcher.ts";
import { fixture } from "./fixtures.ts";
import { sparePort, spawnDeno, waitForTask } from "./harness.ts";

const FIXED = ["--no-prompt", "--allow-env", "--allow-sys=setPriority"];
const flag = (flags: string[], name: string) => flags.find((f) => f === name || f.startsWith(`${name}=`));

Deno.test("launcher: the permissions follow the configuration", async (t) => {
  await t.step("defaults: the project, the two folders, Redis and the listen address; fixed flags passed on", () => {
    const flags = permissionFlags(FIXED, "main.ts", parseConfig({}));
    assert.deepEqual(flags.slice(0, 3), FIXED);
    assert.equal(flag(flags, "--allow-read"), "--allow-read=.,uploads,result_images,.redis");
    assert.equal(flag(flags, "--allow-write"), "--allow-write=uploads,result_images,.redis");
    assert.equal(flag(flags, "--allow-net"), "--allow-net=127.0.0.1,0.0.0.0");
  });
  await t.step("folders outside the project, a Redis service name, an IPv6 listen address", () => {
    const config = parseConfig({
      UPLOAD_DIR: "/var/lib/bip/uploads",
      RESULT_DIR: "/srv/results",
      REDIS_HOST: "redis-master.bip.svc.cluster.local",
      REDIS_AUTOSTART: "false",
      HOST: "::",
    });
    const api = permissionFlags(FIXED, "main.ts", config);
    assert.equal(flag(api, "--allow-read"), "--allow-read=.,/var/lib/bip/uploads,/srv/results");
    assert.equal(flag(api, "--allow-write"), "--allow-write=/var/lib/bip/uploads,/srv/results");
    assert.equal(flag(api, "--allow-net"), "--allow-net=redis-master.bip.svc.cluster.local,[::],127.0.0.1");
    // The worker listens nowhere.
    assert.equal(
      flag(permissionFlags(FIXED, "worker.ts", config), "--allow-net"),
      "--allow-net=redis-master.bip.svc.cluster.local",
    );
  });
  await t.step("REDIS_URL wins, IPv6 hosts in brackets", () => {
    const config = parseConfig({ REDIS_URL: "rediss://u:p@[2001:db8::6]:6380/1", REDIS_HOST: "ignored" });
    assert.equal(flag(permissionFlags(FIXED, "worker.ts", config), "--allow-net"), "--allow-net=[2001:db8::6]");
  });
  await t.step("callbacks reach hosts the clients choose: any host, for the processes that deliver them", () => {
    const secret = { CALLBACK_SECRET: "0123456789abcdef" };
    assert.equal(flag(permissionFlags(FIXED, "worker.ts", parseConfig(secret)), "--allow-net"), "--allow-net");
    assert.equal(flag(permissionFlags(FIXED, "main.ts", parseConfig(secret)), "--allow-net"), "--allow-net");
    const apiOnly = parseConfig({ ...secret, EMBEDDED_WORKER: "false" });
    assert.equal(flag(permissionFlags(FIXED, "main.ts", apiOnly), "--allow-net"), "--allow-net=127.0.0.1,0.0.0.0");
  });
  await t.step("what cannot be granted exactly is refused", () => {
    assert.throws(() => permissionFlags(FIXED, "main.ts", parseConfig({ UPLOAD_DIR: "a,b" })), /comma/);
    assert.throws(() => permissionFlags(["--allow-write"], "main.ts", parseConfig({})), /every path/);
    assert.throws(() => childArgs([...FIXED, "other.ts"], parseConfig({})), /main\.ts, worker\.ts/);
  });
});

/** Lines of a child's output as they come, to wait for one. */
function lines(stream: ReadableStream<Uint8Array>) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  return {
    async waitFor(pattern: RegExp, timeoutMs: number): Promise<void> {
      const until = Date.now() + timeoutMs;
      while (!pattern.test(text)) {
        if (Date.now() > until) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${text}`);
        const { done, value } = await reader.read();
        if (done) throw new Error(`ended before ${pattern}:\n${text}`);
        text += value;
      }
    },
    rest: async () => {
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
      return text;
    },
  };
}

Deno.test("deno task start and deno task worker: folders under /tmp, Redis on 127.0.0.2 — served, processed, stopped", async () => {
  const root = await Deno.makeTempDir({ dir: "/tmp", prefix: "bip-launcher-" });
  // A Redis of this test's own on another loopback address: neither the tasks' defaults nor one deno.json names.
  const redisPort = sparePort();
  const redis = new Deno.Command("redis-server", {
    args: ["--bind", "127.0.0.2", "--port", String(redisPort), "--save", "", "--appendonly", "no"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const redisOut = lines(redis.stdout);
  const port = sparePort();
  const env = {
    // Not a loopback address: the API's own loopback hop must be granted all the same.
    HOST: "0.0.0.0",
    PORT: String(port),
    UPLOAD_DIR: `${root}/uploads`,
    RESULT_DIR: `${root}/results`,
    REDIS_HOST: "127.0.0.2",
    REDIS_PORT: String(redisPort),
    REDIS_AUTOSTART: "false",
    EMBEDDED_WORKER: "false",
    WORKER_CONCURRENCY: "1",
  };
  const task = (name: string) => spawnDeno(["task", name], env);
  let api: ReturnType<typeof task> | undefined;
  let worker: ReturnType<typeof task> | undefined;
  const codes: number[] = [];
  let outputs: (string | undefined)[] = [];
  try {
    await redisOut.waitFor(/Ready to accept connections/, 10_000);
    api = task("start");
    worker = task("worker");
    const base = `http://127.0.0.1:${port}`;
    const until = Date.now() + 60_000;
    while (!(await fetch(`${base}/api/v1/health/worker`).then((r) => r.json(), () => ({}))).workers) {
      if (Date.now() > until) {
        // Its output ends only when it does.
        api.child.kill("SIGKILL");
        throw new Error(`no API with a worker within 60 s:\n${await api.output}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const form = new FormData();
    form.append("file", new File([await fixture("coins.png") as Uint8Array<ArrayBuffer>], "coins.png"));
    const res = await fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
    const accepted = await res.json();
    assert.equal(res.status, 202, JSON.stringify(accepted));
    assert.ok(accepted.file_path.startsWith(`${root}/uploads/`), accepted.file_path);
    const status = await waitForTask(base, accepted.task_id, 60_000);
    assert.equal(status.state, "completed", JSON.stringify(status));
    const image = await fetch(`${base}${(status.result as { result_url: string }).result_url}`);
    assert.equal(image.status, 200);
    assert.equal(image.headers.get("content-type"), "image/png");
    await image.body?.cancel();
  } finally {
    for (const p of [worker, api]) {
      try {
        p?.child.kill("SIGTERM");
      } catch {
        // it has already exited (its output says why)
      }
    }
    for (const p of [worker, api]) if (p) codes.push((await p.child.status).code);
    outputs = await Promise.all([worker?.output, api?.output]);
    redis.kill("SIGTERM");
    await redis.status;
    await redisOut.rest();
    await Deno.remove(root, { recursive: true });
  }
  // SIGTERM reaches each process through deno task and the launcher, and each stops cleanly.
  assert.deepEqual(codes, [0, 0], outputs.join("\n"));
});
