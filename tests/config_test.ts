import assert from "node:assert/strict";
import { ConfigError, parseConfig, parseDotEnv, publicConfig, redisOptions } from "../config.ts";

Deno.test("config: defaults match the original service", () => {
  const c = parseConfig({});
  assert.equal(c.PORT, 8000);
  assert.equal(c.HOST, "0.0.0.0");
  assert.equal(c.MAX_FILE_SIZE, 10 * 1024 * 1024);
  assert.equal(c.UPLOAD_DIR, "uploads");
  assert.equal(c.RESULT_DIR, "result_images");
  assert.equal(c.EMBEDDED_WORKER, true);
  assert.equal(c.WORKER_NICE, 19, "analysis runs below the API's priority");
  // About 3.5× the slowest analysis of a MAX_PIXELS image measured on a 2-core machine (docs/configuration.md).
  assert.equal(c.ANALYSIS_TIMEOUT_MS, 30_000);
  assert.equal(parseConfig({ ANALYSIS_TIMEOUT_MS: "250" }).ANALYSIS_TIMEOUT_MS, 250);
  assert.deepEqual(redisOptions(c), { host: "127.0.0.1", port: 6379, db: 0, password: undefined });
});

Deno.test("config: a bad value is refused with a message naming the variable", async (t) => {
  const cases: Record<string, string> = {
    PORT: "eighty",
    REDIS_PORT: "70000",
    MAX_FILE_SIZE: "-1",
    DEBUG: "maybe",
    EMBEDDED_WORKER: "sometimes",
    WORKER_CONCURRENCY: "0",
    WORKER_NICE: "20",
    REDIS_DB: "99",
    QUEUE_PREFIX: "has space",
    REDIS_URL: "http://example",
    // Number() would read these as 8080, 5 and 1000: a typo must not become a working value.
    RATE_LIMIT: "0x1f90",
    JOB_ATTEMPTS: " 5",
    WORKER_GRACE_MS: "1e3x",
    // Below 100 ms no image could be analysed; 0 would read as "no deadline", which is not offered.
    ANALYSIS_TIMEOUT_MS: "0",
    // Trusting every sender's X-Forwarded-For would let any client pick its own address.
    TRUST_PROXY: "yes",
  };
  for (const [key, value] of Object.entries(cases)) {
    await t.step(`${key}=${value}`, () => {
      assert.throws(() => parseConfig({ [key]: value }), (e) => e instanceof ConfigError && e.message.includes(key));
    });
  }
});

Deno.test("config: an empty value counts as not set (FOO= in .env, ${FOO} of an unset FOO in compose)", () => {
  const c = parseConfig({ PORT: "", RATE_LIMIT: "", WORKER_GRACE_MS: "", EMBEDDED_WORKER: "", REDIS_PORT: "" });
  assert.equal(c.PORT, 8000);
  assert.equal(c.RATE_LIMIT, 1000);
  assert.equal(c.WORKER_GRACE_MS, 10_000);
  assert.equal(c.EMBEDDED_WORKER, true);
  assert.equal(redisOptions(c).port, 6379);
  assert.equal(parseConfig({ RESULT_TTL_HOURS: "0.5" }).RESULT_TTL_HOURS, 0.5);
  // Booleans read as the upload form's are: in any case.
  assert.equal(parseConfig({ KEEP_UPLOADS: "TRUE" }).KEEP_UPLOADS, true);
});

Deno.test("config: booleans, lists and REDIS_URL", () => {
  const c = parseConfig({
    DEBUG: "true",
    EMBEDDED_WORKER: "0",
    CORS_ORIGINS: "https://a.example, https://b.example",
    REDIS_URL: "redis://user:s%40cret@cache.internal:6380/2",
  });
  assert.equal(c.DEBUG, true);
  assert.equal(c.EMBEDDED_WORKER, false);
  assert.deepEqual(c.CORS_ORIGINS, ["https://a.example", "https://b.example"]);
  assert.deepEqual(redisOptions(c), {
    host: "cache.internal",
    port: 6380,
    db: 2,
    password: "s@cret",
    username: "user",
  });
  const shown = JSON.stringify(publicConfig(c));
  assert.ok(!shown.includes("s@cret") && !shown.includes("s%40cret"), "no secrets in the public config");
  // An IPv6 host loses the URL's brackets, which a socket's host must not have.
  assert.equal(redisOptions(parseConfig({ REDIS_URL: "redis://[::ffff:127.0.0.1]:6379" })).host, "::ffff:7f00:1");
});

Deno.test(".env parsing: comments, quotes, export prefix", () => {
  const vars = parseDotEnv(`# comment\nexport PORT=9000\nAPP_NAME="My Service"\nDEBUG=true # inline\n\nBAD LINE\n`);
  assert.deepEqual(vars, { PORT: "9000", APP_NAME: "My Service", DEBUG: "true" });
});

Deno.test("config: the process exits at start with the variable named", async () => {
  const cmd = new Deno.Command("deno", {
    args: ["run", "--allow-read=.", "--allow-env", "main.ts"],
    env: { PORT: "not-a-port" },
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  });
  const out = await cmd.output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /PORT/);
});
