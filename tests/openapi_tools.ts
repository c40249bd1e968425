/**
 * The npm command-line tools that judge the OpenAPI document, run under Node from node_modules (`deno install` puts
 * them there from deno.json's pinned imports): Redocly's linter and Prism's validating proxy.
 */
import assert from "node:assert/strict";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { sparePort } from "./harness.ts";

const NODE_MODULES = new URL("../node_modules/", import.meta.url);

/** The path of an npm package's script, failing with the remedy when `deno install` has not put it there. */
function packageScript(path: string): string {
  const file = new URL(path, NODE_MODULES).pathname;
  try {
    Deno.statSync(file);
  } catch {
    throw new Error(`${file} is missing: run \`deno install\` (deno.json pins the package)`);
  }
  return file;
}

// Redocly asks a server for news and sends usage data unless told not to; this machine reaches no such server.
const REDOCLY_ENV = { REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" };

/** One finding of Redocly's linter. */
export interface LintProblem {
  ruleId: string;
  severity: string;
  message: string;
  location: { pointer: string }[];
}

/** Runs `redocly lint` with its recommended rules on a document file; its totals and findings. */
export async function redoclyLint(
  documentPath: string,
): Promise<{ errors: number; warnings: number; problems: LintProblem[] }> {
  const out = await new Deno.Command("node", {
    args: [packageScript("@redocly/cli/bin/cli.js"), "lint", "--format=json", documentPath],
    env: REDOCLY_ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const start = text.indexOf("{");
  assert.ok(start >= 0, `redocly printed no report: ${text}${new TextDecoder().decode(out.stderr)}`);
  const report = JSON.parse(text.slice(start));
  return { ...report.totals, problems: report.problems };
}

/** A running Prism proxy that checks each request and response against the document. */
export interface PrismProxy {
  base: string;
  /** What Prism printed so far (for a failure's message). */
  output(): string;
  close(): Promise<void>;
}

/**
 * Starts Prism's validating proxy (`prism proxy --errors`) in front of `upstream`: a response that differs from the
 * document becomes a 500 `application/problem+json` naming the differences, as does a request the document refuses
 * (a 422, not forwarded). Every violation, warnings too, is listed in the `sl-violations` header.
 */
export async function startPrism(documentPath: string, upstream: string): Promise<PrismProxy> {
  const port = sparePort();
  const child = new Deno.Command("node", {
    args: [
      packageScript("@stoplight/prism-cli/dist/index.js"),
      "proxy",
      "--errors",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      documentPath,
      upstream,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const drain = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (chunk) => void (log = (log + chunk).slice(-20_000)) }),
    );
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const base = `http://127.0.0.1:${port}`;
  const proxy: PrismProxy = {
    base,
    output: () => log,
    async close() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
      await drained;
    },
  };
  const until = Date.now() + 60_000;
  const exited = child.status.then(() => "exited" as const);
  while (Date.now() < until) {
    // Prism prints this line once its server listens.
    if (log.includes("Prism is listening")) return proxy;
    if (await withDeadline(exited, 100) !== TIMED_OUT) break;
  }
  await proxy.close();
  throw new Error(`Prism did not start within 60 s:\n${log}`);
}
