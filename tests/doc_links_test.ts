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

Deno.test("the link checker reads headings and links as GitHub does", () => {
  assert.equal(slug("CPU per image: the kernel and everything else"), "cpu-per-image-the-kernel-and-everything-else");
  assert.equal(slug("`deno task bench` options"), "deno-task-bench-options");
  assert.deepEqual([...anchors("# A\n## A\n```\n# not a heading\n```\n")], ["a", "a-1"]);
  assert.deepEqual(links("see [x](docs/a.md#b) and `[y](z.md)`"), ["docs/a.md#b"]);
});
