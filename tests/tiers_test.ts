import assert from "node:assert/strict";

const tasks: Record<string, string> = JSON.parse(Deno.readTextFileSync("deno.json")).tasks;

/** The files `deno task test:quick` leaves out: the slow tier (docs/testing.md#test-tiers). */
function slowTier(): string[] {
  const ignore = /--ignore=(\S+)/.exec(tasks["test:quick"]);
  assert.ok(ignore, "test:quick names the slow files with --ignore=");
  return ignore[1].split(",");
}

Deno.test("test:quick is the test task without the slow files, and the test task runs every file", () => {
  assert.equal(tasks["test:quick"].replace(/ --ignore=\S+/, ""), tasks.test, "the same flags and folder");
  assert.doesNotMatch(tasks.test, /--ignore|--filter/, "deno task test (what CI runs) leaves nothing out");
});

Deno.test("every file the quick tier leaves out exists (a renamed slow test would join the quick tier)", () => {
  const missing = slowTier().filter((path) => {
    try {
      Deno.statSync(path);
      return false;
    } catch {
      return path !== "tests/.tmp"; // scratch space of the tests, absent on a fresh checkout
    }
  });
  assert.deepEqual(missing, []);
});
