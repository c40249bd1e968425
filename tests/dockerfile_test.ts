import assert from "node:assert/strict";
import { parse } from "yaml";

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
    // The deno tasks grant network access to this host by name.
    assert.match(tasks[svc.command[1]], /--allow-net=[^ ]*\bredis\b/);
  }
  assert.equal(api.environment.EMBEDDED_WORKER, "false");
  assert.deepEqual(new Set(api.volumes), new Set(worker.volumes), "the API and the workers see the same files");
  assert.ok(redis.command.includes("noeviction"));
});
