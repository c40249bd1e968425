import assert from "node:assert/strict";
import { parseConfig } from "../config.ts";
import { fixture } from "./fixtures.ts";
import { startTestService, upload } from "./harness.ts";
import { pollUntil, redisCommand, startRedisSentinel } from "./redis_topologies.ts";

// Uploads accepted before the primary is stopped, and after the new one is in place.
const BEFORE = 30;
const AFTER = 30;
const CLIENTS = 4;

Deno.test("Sentinel configuration: sentinels and the primary's name", () => {
  const c = parseConfig({ REDIS_SENTINELS: "127.0.0.1:26379, [::1]:26380", REDIS_SENTINEL_NAME: "main" });
  assert.deepEqual(c.REDIS_SENTINELS, [{ host: "127.0.0.1", port: 26379 }, { host: "::1", port: 26380 }]);
  assert.equal(c.REDIS_SENTINEL_NAME, "main");
  // Only Cluster needs a hash tag.
  assert.equal(c.QUEUE_PREFIX, "bip");
  assert.throws(() => parseConfig({ REDIS_SENTINELS: "127.0.0.1:0" }), /REDIS_SENTINELS=.*not host:port/);
});

Deno.test("Sentinel: the primary stops under load; the service follows the failover and goes on", async () => {
  const name = "bip-primary";
  const topology = await startRedisSentinel(name);
  const [primary, replica] = topology.servers;
  let svc: Awaited<ReturnType<typeof startTestService>> | undefined;
  try {
    svc = await startTestService({
      REDIS_SENTINELS: `127.0.0.1:${topology.sentinelPort}`,
      REDIS_SENTINEL_NAME: name,
      WORKER_CONCURRENCY: "1",
      // A job whose lock was held on the stopped primary is taken up again after ~1.5 lock durations.
      LOCK_DURATION_MS: "3000",
      RATE_LIMIT: "0",
    });
    const base = svc.base;
    const bytes = await fixture("coins.png");
    const accepted: { id: string; at: number; phase: "before" | "during" | "after" }[] = [];
    let refused = 0;
    let phase: "before" | "during" | "after" = "before";
    let stopAt = 0;
    const clients = Array.from({ length: CLIENTS }, async () => {
      while (accepted.filter((a) => a.phase === "after").length < AFTER) {
        const res = await upload(base, bytes, "coins.png").catch(() => null);
        if (res?.status === 202) {
          accepted.push({ id: (await res.json()).task_id, at: Date.now(), phase });
          continue;
        }
        // During the failover an upload is refused (503, never queued); the client tries again a moment later.
        refused++;
        assert.ok(!res || res.status === 503, `upload answered ${res?.status}`);
        await res?.body?.cancel();
        await new Promise((r) => setTimeout(r, 100));
      }
    });
    const failover = (async () => {
      await pollUntil("uploads before the failover", () => Promise.resolve(accepted.length >= BEFORE), 60_000);
      phase = "during";
      stopAt = Date.now();
      await primary.stop("SIGKILL");
      await pollUntil("the sentinel promotes the replica", async () => {
        const address = await redisCommand(topology.sentinelPort, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name);
        return Array.isArray(address) && Number(address[1]) === replica.port;
      }, 30_000);
      phase = "after";
    })();
    await Promise.all([failover, ...clients]);
    const promotedAfterMs = accepted.find((a) => a.phase === "after")!.at - stopAt;

    // Every accepted task ends: completed, failed with its reason, or gone (its job never reached the replica).
    const outcome = new Map<string, string>();
    await pollUntil("every accepted task ends", async () => {
      for (const { id } of accepted) {
        if (outcome.has(id)) continue;
        const res = await fetch(`${base}/api/v1/images/status/${id}`);
        const body = await res.json();
        if (res.status === 404) outcome.set(id, "vanished");
        else if (body.state === "completed") outcome.set(id, "completed");
        else if (body.state === "failed") outcome.set(id, `failed:${body.error.code}`);
      }
      return outcome.size === accepted.length;
    }, 90_000);
    const count = (phaseOf: string, what: string) =>
      accepted.filter((a) => a.phase === phaseOf && outcome.get(a.id) === what).length;
    const lost = accepted.filter((a) => outcome.get(a.id) !== "completed");
    const report = {
      accepted: accepted.length,
      refused_during_failover: refused,
      new_primary_accepting_after_ms: promotedAfterMs,
      completed: accepted.length - lost.length,
      lost: lost.map((a) => ({ outcome: outcome.get(a.id), accepted_ms_before_stop: stopAt - a.at })),
    };
    console.log("failover report", JSON.stringify(report));
    // Whatever was accepted once the new primary was in place is never lost.
    assert.equal(count("after", "completed"), accepted.filter((a) => a.phase === "after").length);
    // What a failover can lose is what asynchronous replication had not shipped: writes of the last moments before
    // the stop (an upload's job, or a job's completion, whose upload was then removed: upload_missing).
    for (const l of lost) {
      assert.ok(
        l.phase !== "before" || stopAt - l.at < 2000,
        `task accepted ${stopAt - l.at} ms before the stop was lost: ${outcome.get(l.id)}`,
      );
      assert.match(outcome.get(l.id)!, /^(vanished|failed:upload_missing)$/);
    }
  } finally {
    await svc?.close();
    await topology.close();
  }
});
