import assert from "node:assert/strict";
import { parse } from "yaml";
import { parseConfig } from "../config.ts";
import { childArgs } from "../launcher.ts";

const read = (path: string) => Deno.readTextFile(new URL(`../${path}`, import.meta.url));

Deno.test("compose.yaml's s3 profile: MinIO with its bucket, an API and workers that share no volume", async () => {
  const compose = parse(await read("compose.yaml"));
  const tasks = JSON.parse(await read("deno.json")).tasks as Record<string, string>;
  const { minio, "minio-init": init, "api-s3": api, "worker-s3": worker } = compose.services;
  for (const svc of [minio, init, api, worker]) assert.deepEqual(svc.profiles, ["s3"]);
  assert.match(init.command.join(" "), /mc mb --ignore-existing local\/bip/);
  assert.equal(api.depends_on["minio-init"].condition, "service_completed_successfully");
  assert.deepEqual(api.environment, worker.environment);
  // Compose substitutes ${VAR:-default}; the defaults stand in for it here.
  const env = Object.fromEntries(
    Object.entries(api.environment as Record<string, string>).map((
      [k, v],
    ) => [k, v.replace(/^\$\{\w+:-(.*)\}$/, "$1")]),
  );
  const config = parseConfig(env);
  assert.equal(config.STORAGE, "s3");
  assert.equal(config.S3_BUCKET, "bip");
  assert.notEqual(config.QUEUE_PREFIX, parseConfig(compose.services.api.environment).QUEUE_PREFIX);
  for (const svc of [api, worker]) {
    assert.equal(svc.volumes, undefined, "nothing shared on disk");
    const words = tasks[svc.command[1]].split(" ");
    const args = childArgs(words.slice(words.indexOf("launcher.ts") + 1), config);
    assert.match(args.find((a) => a.startsWith("--allow-net"))!, /^--allow-net=(.*,)?minio:9000(,|$)/);
  }
});
