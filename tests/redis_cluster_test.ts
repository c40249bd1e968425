import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../config.ts";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue } from "../queue/contour_queue.ts";
import { sweepRetention } from "../storage/retention.ts";
import { fixture } from "./fixtures.ts";
import { listDir, sparePort, spawnDeno, startTestService, taskFlags, upload, waitForTask } from "./harness.ts";
import { redisCommand, startRedisCluster } from "./redis_topologies.ts";

const HOUR = 3_600_000;

Deno.test("Cluster mode: a plain queue prefix is wrapped in a hash tag; one that breaks the rule is refused", () => {
  const nodes = "127.0.0.1:7000,127.0.0.1:7001";
  assert.equal(parseConfig({ REDIS_CLUSTER_NODES: nodes }).QUEUE_PREFIX, "{bip}");
  assert.equal(parseConfig({ REDIS_CLUSTER_NODES: nodes, QUEUE_PREFIX: "{eu}:bip" }).QUEUE_PREFIX, "{eu}:bip");
  assert.deepEqual(parseConfig({ REDIS_CLUSTER_NODES: nodes }).REDIS_CLUSTER_NODES, [
    { host: "127.0.0.1", port: 7000 },
    { host: "127.0.0.1", port: 7001 },
  ]);
  // Without Cluster the prefix is left as it is: the keys of a running deployment keep their names.
  assert.equal(parseConfig({}).QUEUE_PREFIX, "bip");
  for (const prefix of ["{}bip", "bip{", "b}ip", "{"]) {
    assert.throws(
      () => parseConfig({ REDIS_CLUSTER_NODES: nodes, QUEUE_PREFIX: prefix }),
      (err: Error) => err instanceof ConfigError && /^invalid configuration: QUEUE_PREFIX=.*hash tag/.test(err.message),
      prefix,
    );
  }
  assert.throws(() => parseConfig({ REDIS_CLUSTER_NODES: "127.0.0.1" }), /REDIS_CLUSTER_NODES=.*not host:port/);
  assert.throws(() => parseConfig({ REDIS_CLUSTER_NODES: nodes, REDIS_DB: "2" }), /REDIS_DB=.*only database 0/);
  assert.throws(
    () => parseConfig({ REDIS_CLUSTER_NODES: nodes, REDIS_SENTINELS: "127.0.0.1:26379" }),
    /not both/,
  );
});

Deno.test("Cluster mode: a bad prefix stops the API at start with one line", async () => {
  const { child, output } = spawnDeno(["run", ...await taskFlags("start"), "main.ts"], {
    REDIS_CLUSTER_NODES: `127.0.0.1:${sparePort()}`,
    QUEUE_PREFIX: "bip{",
  });
  const { code } = await child.status;
  const text = (await output).trim();
  assert.equal(code, 2, text);
  assert.equal(text.split("\n").length, 1, text);
  assert.match(text, /^invalid configuration: QUEUE_PREFIX="bip\{": in Redis Cluster mode/);
});

Deno.test({
  name: "Cluster mode: uploads, status, results, events, exports, retention and delete on a 3-node cluster",
  // Now and then (about one run in five here) BullMQ 6.7's Worker.close() on a Cluster connection does not finish
  // within WORKER_GRACE_MS: it waits for its main loop, blocked on the blocking cluster connection it is disconnecting.
  // The close is then forced and the workers' lock-renewal timers stay armed. A process exits anyway (main.ts,
  // worker.ts); here they would fail the sanitizers (Deno counts a pending timer under both), and shutdown is not this
  // test's subject.
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const cluster = await startRedisCluster();
  const nodes = cluster.servers.map((s) => `127.0.0.1:${s.port}`).join(",");
  let svc: Awaited<ReturnType<typeof startTestService>> | undefined;
  try {
    svc = await startTestService({ REDIS_CLUSTER_NODES: nodes, RESULT_TTL_HOURS: "1", WORKER_CONCURRENCY: "1" });
    const { base, config } = svc;
    assert.match(config.QUEUE_PREFIX, /^\{test-[0-9a-f-]+\}$/);
    const ids: string[] = [];
    await t.step("uploads complete; status, results and exports answer", async () => {
      for (const name of ["coins.png", "page.png", "coins.png"]) {
        const res = await upload(base, await fixture(name), name);
        assert.equal(res.status, 202, await res.clone().text());
        ids.push((await res.json()).task_id);
      }
      for (const id of ids) assert.equal((await waitForTask(base, id)).state, "completed");
      const list = await (await fetch(`${base}/api/v1/images/results?limit=2`)).json();
      assert.equal(list.items.length, 2);
      const rest = await (await fetch(`${base}/api/v1/images/results?cursor=${list.next_cursor}`)).json();
      assert.deepEqual(
        [...list.items, ...rest.items].map((i: { task_id: string }) => i.task_id).sort(),
        [...ids].sort(),
      );
      const image = await fetch(`${base}/static/results/${ids[0]}.png`);
      assert.equal(image.status, 200);
      assert.equal(image.headers.get("content-type"), "image/png");
      await image.body?.cancel();
      const geojson = await fetch(`${base}/api/v1/images/contours/${ids[0]}?format=geojson`);
      assert.equal(geojson.status, 200);
      assert.equal((await geojson.json()).type, "FeatureCollection");
    });
    await t.step("the status stream follows a task to completed", async () => {
      const { task_id } = await (await upload(base, await fixture("coins.png"), "coins.png")).json();
      ids.push(task_id);
      const res = await fetch(`${base}/api/v1/images/status/${task_id}/events`);
      assert.equal(res.status, 200);
      const text = await res.text();
      const last = text.split("\n\n").filter((b) => b.includes("event: status")).at(-1)!;
      assert.equal(JSON.parse(last.split("\n").find((l) => l.startsWith("data: "))!.slice(6)).state, "completed");
    });
    await t.step("an idempotent retry answers with the first task", async () => {
      const bytes = await fixture("coins.png");
      const send = () => {
        const body = new FormData();
        body.append("file", new File([bytes as Uint8Array<ArrayBuffer>], "coins.png"));
        return fetch(`${base}/api/v1/images/upload`, {
          method: "POST",
          body,
          headers: { "idempotency-key": "cluster-key" },
        });
      };
      const first = await (await send()).json();
      const again = await send();
      assert.equal(again.headers.get("idempotent-replayed"), "true");
      assert.equal((await again.json()).task_id, first.task_id);
      ids.push(first.task_id);
      assert.equal((await waitForTask(base, first.task_id)).state, "completed");
    });
    await t.step("every key of the service sits in the one slot of its hash tag", async () => {
      const slot = await redisCommand(cluster.servers[0].port, "CLUSTER", "KEYSLOT", config.QUEUE_PREFIX);
      let keys = 0;
      for (const s of cluster.servers) {
        const found = await redisCommand(s.port, "KEYS", `${config.QUEUE_PREFIX}*`) as string[];
        for (const key of found) {
          assert.equal(await redisCommand(s.port, "CLUSTER", "KEYSLOT", key), slot, key);
          keys++;
        }
      }
      // The queue's keys, the results index and summaries, the idempotency record, the rate-limit counter.
      assert.ok(keys >= 8, `only ${keys} keys found`);
    });
    await t.step("retention removes expired results; delete removes a task", async () => {
      const redis = createRedis(config, "producer");
      await connectRedis(redis);
      const queue = createContourQueue(config, redis);
      try {
        const deleted = ids.pop()!;
        const del = await fetch(`${base}/api/v1/images/${deleted}`, { method: "DELETE" });
        assert.equal(del.status, 204);
        const status = await fetch(`${base}/api/v1/images/status/${deleted}`);
        assert.equal(status.status, 404);
        await status.body?.cancel();
        const report = await sweepRetention(config, queue, redis, Date.now() + 2 * HOUR);
        assert.equal(report.expired_results, ids.length);
        assert.deepEqual(await listDir(config.RESULT_DIR), []);
        const list = await (await fetch(`${base}/api/v1/images/results`)).json();
        assert.equal(list.items.length, 0);
        const gone = await fetch(`${base}/api/v1/images/status/${ids[0]}`);
        assert.equal(gone.status, 404);
        await gone.body?.cancel();
      } finally {
        await queue.close();
        await closeRedis(redis);
      }
    });
  } finally {
    await svc?.close();
    await cluster.close();
  }
});
