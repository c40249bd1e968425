import assert from "node:assert/strict";
import { configureLog, type Level, log } from "../log.ts";

/** The lines `log` writes for one event of each level under the given settings, with the stream each went to. */
function written(settings: Parameters<typeof configureLog>[0]): string[] {
  const lines: string[] = [];
  const { log: out, error: err } = console;
  console.log = (line: string) => lines.push(`out ${line}`);
  console.error = (line: string) => lines.push(`err ${line}`);
  try {
    configureLog(settings);
    for (const level of ["debug", "info", "warn", "error"] as Level[]) log(level, `a ${level} event`, { n: 1 });
  } finally {
    console.log = out;
    console.error = err;
    configureLog({ pretty: false });
  }
  return lines;
}

Deno.test("log: JSON lines from info up by default, readable lines from debug up with DEBUG", () => {
  const json = written({ pretty: false });
  assert.deepEqual(json.map((l) => l.slice(0, 4) + JSON.parse(l.slice(4)).level), [
    "out info",
    "err warn",
    "err error",
  ]);
  assert.deepEqual(JSON.parse(written({ pretty: false })[0].slice(4)).n, 1);
  const readable = written({ pretty: true });
  assert.equal(readable.length, 4);
  assert.match(readable[0], /^out \S+ DEBUG a debug event n=1$/);
});

Deno.test("log: LOG_LEVEL leaves out the less severe events, in either format", () => {
  assert.deepEqual(written({ pretty: false, level: "warn" }).map((l) => JSON.parse(l.slice(4)).level), [
    "warn",
    "error",
  ]);
  assert.equal(written({ pretty: true, level: "error" }).length, 1);
  assert.equal(written({ pretty: false, level: "debug" }).length, 4);
});
