import assert from "node:assert/strict";
import { dirname, join, normalize } from "node:path";

// The README and docs/ link to each other and to the project's files: a renamed file or heading breaks a link in
// silence, so every relative link is followed here (outside links are not fetched: the tests run offline).
const PAGES = [
  "README.md",
  ...[...Deno.readDirSync("docs")].filter((e) => e.name.endsWith(".md")).map((e) => `docs/${e.name}`),
];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/`/g, "").replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
}

function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of markdown.replace(/```[\s\S]*?```/g, "").matchAll(/^#{1,6}\s+(.+)$/gm)) {
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Markdown links `[text](target)` outside code blocks and code spans. */
function links(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
  return [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]);
}

Deno.test("every relative link in the README and docs/ resolves, anchors included", () => {
  const broken: string[] = [];
  for (const page of PAGES) {
    const text = Deno.readTextFileSync(page);
    for (const link of links(text)) {
      if (/^[a-z]+:/i.test(link)) continue;
      const [path, anchor] = link.split("#");
      const target = path === "" ? page : normalize(join(dirname(page), path));
      let targetText: string | undefined;
      try {
        const stat = Deno.statSync(target);
        if (stat.isFile && target.endsWith(".md")) targetText = Deno.readTextFileSync(target);
      } catch {
        broken.push(`${page}: ${link} (no ${target})`);
        continue;
      }
      if (anchor && targetText !== undefined && !anchors(targetText).has(anchor)) {
        broken.push(`${page}: ${link} (no heading #${anchor} in ${target})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

/** Every file of the project (dependencies, runtime folders and git's own excluded), as paths from the root. */
function projectFiles(dir = "."): string[] {
  const skip = new Set([".git", "node_modules", ".redis", "uploads", "result_images", ".tmp", "output", "results"]);
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    if (skip.has(entry.name)) continue;
    const path = dir === "." ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...projectFiles(path));
    else out.push(path);
  }
  return out;
}

/** Folders that tests and the bench write into: what they name exists once those have run. */
const GENERATED = ["tests/output/", "bench/results/"];

/** Code spans that name a project file (`routes/upload.ts`, `xz.ts`, `fixtures/coins.png`). */
function fileMentions(markdown: string): string[] {
  const spans = [...markdown.replace(/```[\s\S]*?```/g, "").matchAll(/`([^`\s]+)`/g)].map((m) => m[1]);
  // Bare names of other kinds are often another project's files (libjpeg-turbo's `jdhuff.h`), packages (`ipaddr.js`) or
  // files the service writes (a batch ZIP's `manifest.json`).
  const named = (s: string) =>
    /^[\w.-]+(?:\/[\w.-]+)+\.\w+$/.test(s) || /^[\w-]+(?:\.[\w-]+)*\.(?:ts|mjs|py|sh|md)$/.test(s);
  return spans.filter((s) => named(s) && !GENERATED.some((folder) => s.startsWith(folder)));
}

Deno.test("every project file the README and docs/ name in code exists", () => {
  const files = projectFiles();
  // A path is the project's when it starts in one of its folders (`simd/x86_64/…` is libjpeg-turbo's).
  const folders = new Set(files.flatMap((f) => f.split("/").slice(0, -1)));
  const missing: string[] = [];
  for (const page of PAGES) {
    for (const name of fileMentions(Deno.readTextFileSync(page))) {
      if (name.includes("/") && !folders.has(name.split("/")[0])) continue;
      // A name may be written from the root, from tests/ (`fixtures/…`) or bare (`xz.ts` beside its folder's text).
      if (!files.some((f) => f === name || f.endsWith(`/${name}`))) missing.push(`${page}: ${name}`);
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("every `deno task` the README and docs/ name is in deno.json", () => {
  const tasks = Object.keys(JSON.parse(Deno.readTextFileSync("deno.json")).tasks);
  const unknown: string[] = [];
  for (const page of PAGES) {
    for (const m of Deno.readTextFileSync(page).matchAll(/deno task ([\w:-]+)/g)) {
      if (!tasks.includes(m[1])) unknown.push(`${page}: deno task ${m[1]}`);
    }
  }
  assert.deepEqual(unknown, []);
});

Deno.test("the README stays short (at most 20 KB) and the docs cite no issue numbers", () => {
  const readme = Deno.readTextFileSync("README.md");
  const size = new TextEncoder().encode(readme).length;
  assert.ok(size <= 20_000, `README.md is ${size} bytes: move detail into docs/`);
  const cited: string[] = [];
  for (const page of PAGES) {
    // `#12` on its own is a reference to this project's tracker; `deno#35657` names another project's issue (linked);
    // code (a colour such as `#000000`) is not prose.
    const prose = Deno.readTextFileSync(page).replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
    for (const m of prose.matchAll(/(?<![\w/&])#\d+\b/g)) cited.push(`${page}: ${m[0]}`);
  }
  assert.deepEqual(cited, []);
});

Deno.test("the link checker reads headings and links as GitHub does", () => {
  assert.equal(slug("CPU per image: the kernel and everything else"), "cpu-per-image-the-kernel-and-everything-else");
  assert.equal(slug("`deno task bench` options"), "deno-task-bench-options");
  assert.deepEqual([...anchors("# A\n## A\n```\n# not a heading\n```\n")], ["a", "a-1"]);
  assert.deepEqual(links("see [x](docs/a.md#b) and `[y](z.md)`"), ["docs/a.md#b"]);
  assert.deepEqual(fileMentions("`routes/upload.ts`, `deno task test`, `x.ts` and `MAX_FILE_SIZE`"), [
    "routes/upload.ts",
    "x.ts",
  ]);
});
