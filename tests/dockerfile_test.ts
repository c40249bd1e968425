import assert from "node:assert/strict";
import { parse } from "yaml";
import { parseConfig } from "../config.ts";
import { childArgs } from "../launcher.ts";

const root = new URL("../", import.meta.url);
const read = (name: string) => Deno.readTextFile(new URL(name, root));

Deno.test("Dockerfile: pinned Deno base, cached dependencies, non-root, HEALTHCHECK, runs a real task", async () => {
  const dockerfile = await read("Dockerfile");
  const ci = await read(".ci/run");
  const tasks = JSON.parse(await read("deno.json")).tasks as Record<string, string>;
  const pinned = /DENO_VERSION=(\S+)/.exec(ci)?.[1];
  assert.ok(pinned, ".ci/run pins a Deno version");
  assert.match(dockerfile, new RegExp(`^FROM denoland/deno:${pinned.replace(/\./g, "\\.")}$`, "m"), "same Deno as CI");
  // The dependency layer comes before the source, and CI runs the same commands (.ci/run), so they are known to work.
  const install = dockerfile.indexOf("RUN deno install --frozen");
  assert.ok(install > 0 && install < dockerfile.indexOf("COPY . ."));
  assert.ok(ci.includes("deno install --frozen") && ci.includes("deno cache main.ts worker.ts"));
  assert.match(dockerfile, /RUN deno cache main\.ts worker\.ts/);
  const user = /^USER (\S+)$/m.exec(dockerfile)?.[1];
  assert.ok(user && user !== "root" && user !== "0", "runs as a non-root user");
  assert.match(dockerfile, /^HEALTHCHECK .*\n.*\/api\/v1\/health\//m);
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]) as string[];
  assert.deepEqual(cmd.slice(0, 1), ["task"]);
  assert.ok(tasks[cmd[1]], `deno.json has task ${cmd[1]}`);
  for (const dir of ["uploads", "result_images"]) assert.ok(dockerfile.includes(dir), `${dir} is created and owned`);
});

Deno.test("compose.yaml: Redis, the API and workers sharing the upload and result volumes", async () => {
  const compose = parse(await read("compose.yaml"));
  const tasks = JSON.parse(await read("deno.json")).tasks as Record<string, string>;
  const { redis, api, worker } = compose.services;
  assert.ok(redis && api && worker);
  assert.deepEqual(api.command, ["task", "start"]);
  assert.deepEqual(worker.command, ["task", "worker"]);
  for (const svc of [api, worker]) {
    assert.ok(tasks[svc.command[1]]);
    assert.equal(svc.environment.REDIS_HOST, "redis");
    // The tasks' launcher grants network access to the configured Redis host by name.
    const words = tasks[svc.command[1]].split(" ");
    const args = childArgs(words.slice(words.indexOf("launcher.ts") + 1), parseConfig({ ...svc.environment }));
    assert.match(args.find((a) => a.startsWith("--allow-net"))!, /^--allow-net=(.*,)?redis(,|$)/);
  }
  assert.equal(api.environment.EMBEDDED_WORKER, "false");
  assert.deepEqual(new Set(api.volumes), new Set(worker.volumes), "the API and the workers see the same files");
  assert.ok(redis.command.includes("noeviction"));
});

/** A Compose duration ("45s", "1m30s", "500ms") in milliseconds. */
function durationMs(text: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  const parts = [...String(text).matchAll(/(\d+(?:\.\d+)?)(h|ms|us|m|s)/g)];
  assert.ok(parts.length && parts.map((p) => p[0]).join("") === String(text), `a Compose duration: ${text}`);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * units[unit], 0);
}

Deno.test("compose.yaml: stop_grace_period outlasts the API's drain and the workers' grace before Docker's SIGKILL", async () => {
  const { api, worker } = parse(await read("compose.yaml")).services;
  const drainMs = Number(/const DRAIN_TIMEOUT_MS = ([\d_]+);/.exec(await read("main.ts"))?.[1].replaceAll("_", ""));
  assert.ok(drainMs > 0, "main.ts declares DRAIN_TIMEOUT_MS");
  // Closing the queue, the event subscription and Redis after the drain or the grace; forced jobs get 1 s to go back.
  const overheadMs = 5000;
  const graceOf = (svc: { environment: Record<string, string> }) => parseConfig({ ...svc.environment }).WORKER_GRACE_MS;
  const apiNeeds = drainMs + (api.environment.EMBEDDED_WORKER === "false" ? 0 : graceOf(api) + 1000) + overheadMs;
  assert.ok(api.stop_grace_period, "the api service sets stop_grace_period");
  assert.ok(durationMs(api.stop_grace_period) >= apiNeeds, `api: ${api.stop_grace_period} < ${apiNeeds} ms`);
  const workerNeeds = graceOf(worker) + 1000 + overheadMs;
  assert.ok(worker.stop_grace_period, "the worker service sets stop_grace_period");
  assert.ok(
    durationMs(worker.stop_grace_period) >= workerNeeds,
    `worker: ${worker.stop_grace_period} < ${workerNeeds} ms`,
  );
});
