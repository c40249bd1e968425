import assert from "node:assert/strict";
import { parseConfig } from "../config.ts";
import { dropPrefix, sparePort } from "./harness.ts";

Deno.test("DEBUG=true: deno task start hands over to the auto-reloading dev task, and stops on SIGTERM", async () => {
  const port = sparePort();
  const config = parseConfig({ QUEUE_PREFIX: `test-${crypto.randomUUID()}` });
  const child = new Deno.Command("deno", {
    args: ["task", "start"],
    cwd: new URL("..", import.meta.url),
    env: { DEBUG: "true", PORT: String(port), HOST: "127.0.0.1", QUEUE_PREFIX: config.QUEUE_PREFIX },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  let status: Deno.CommandStatus;
  try {
    const until = Date.now() + 30_000;
    let healthy = false;
    while (!healthy && Date.now() < until) {
      healthy = await fetch(`http://127.0.0.1:${port}/api/v1/health/`).then(async (r) => {
        await r.body?.cancel();
        return r.ok;
      }, () => false);
      if (!healthy) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(healthy, "the service did not come up within 30 s");
  } finally {
    child.kill("SIGTERM");
    status = await child.status;
    await dropPrefix(config);
  }
  // The watched service ends itself with SIGKILL once closed; the hand-over reports that as the clean stop it is.
  assert.equal(status.code, 0);
  const [out, err] = await output;
  // Deno colours its own lines: strip the ANSI escapes before matching.
  // deno-lint-ignore no-control-regex
  const text = (out + err).replace(/\x1b\[[0-9;]*m/g, "");
  assert.match(text, /restarting under `deno task dev`/);
  assert.match(text, /Watcher Process started/);
  // DEBUG=true also switches the log lines from JSON to readable text.
  assert.match(text, /^\S+Z INFO {2}service listening/m);
});
