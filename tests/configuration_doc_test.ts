import assert from "node:assert/strict";
import { CONFIG_VARIABLES, ConfigSchema } from "../config.ts";
import { CONFIGURATION_DOC, describeSetting, withConfigurationReference } from "../docs/generate_configuration.ts";

Deno.test("docs/configuration.md lists what config.ts reads (regenerate with `deno task docs:config`)", async () => {
  const page = await Deno.readTextFile(CONFIGURATION_DOC);
  const generated = await withConfigurationReference(page);
  assert.ok(
    page === generated,
    "docs/configuration.md differs from what config.ts describes: run `deno task docs:config` and commit the result",
  );
  for (const name of CONFIG_VARIABLES) assert.ok(page.includes(`**\`${name}\`**`), `${name} is on the page`);
});

Deno.test("the generator reads type, default and description from a variable's schema", () => {
  const shape = ConfigSchema.in.shape;
  assert.deepEqual(describeSetting("PORT", shape.PORT), {
    name: "PORT",
    type: "integer 0–65535",
    default: "`8000`",
    description: "listen port (`0`: any free port)",
  });
  assert.equal(describeSetting("DEBUG", shape.DEBUG).type, "boolean");
  assert.equal(describeSetting("STORAGE", shape.STORAGE).type, "`local` or `s3`");
  assert.equal(describeSetting("REDIS_URL", shape.REDIS_URL).default, "none");
  assert.equal(describeSetting("API_KEYS", shape.API_KEYS).default, "empty");
  assert.equal(describeSetting("WORKER_CONCURRENCY", shape.WORKER_CONCURRENCY).default, "number of cores");
  assert.throws(
    () => describeSetting("UNDESCRIBED", shape.PORT.describe("")),
    /UNDESCRIBED has no description/,
  );
});
