import assert from "node:assert/strict";
import { runBrowserScript, startTestService } from "./harness.ts";

// Outside tests/.tmp on purpose: the screenshots are for people to look at after a run (git-ignored). Node writes
// them, so the test task's narrow --allow-write does not need to cover it.
const OUT_DIR = new URL("./output/", import.meta.url).pathname;

interface UiReport {
  failure?: string;
  outside: string[];
  page_errors: string[];
  pages: Record<string, string>;
  card_state?: string;
  card_error?: string;
  task_id?: string;
  contour_count?: number;
  overlay_paths?: number;
  hovered?: { target: string; id: string | null; area: string | null; fields: string[] };
  clicked?: { target: string; id: string | null; area: string | null; fields: string[] };
  error_text?: string;
  error_visible?: boolean;
  results_thumbnails?: number;
  results_task_ids?: string[];
  thumbnail_width?: number;
}

Deno.test("the try-it pages: served by the app, and used in headless Chromium", async (t) => {
  const svc = await startTestService();
  try {
    const probe = await fetch(`${svc.base}/ui`);
    await probe.body?.cancel();
    assert.notEqual(
      probe.status,
      404,
      "GET /ui is 404: add `registerUiRoutes(app);` (routes/ui.ts) to createApp in app.ts",
    );

    await t.step("pages and their assets come from this server, with the right types", async () => {
      for (const path of ["/ui", "/ui/results"]) {
        const res = await fetch(svc.base + path);
        assert.equal(res.status, 200, path);
        assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
        assert.match(res.headers.get("content-security-policy") ?? "", /script-src 'self'/);
        const html = await res.text();
        const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]).filter((r) => !r.startsWith("#"));
        for (const ref of refs) assert.ok(ref.startsWith("/"), `${path} refers to ${ref} outside this server`);
        for (const asset of refs.filter((r) => r.startsWith("/ui/assets/"))) {
          const a = await fetch(svc.base + asset);
          assert.equal(a.status, 200, asset);
          const type = { js: /^text\/javascript/, css: /^text\/css/, svg: /^image\/svg\+xml/ }[asset.split(".").pop()!];
          assert.match(a.headers.get("content-type") ?? "", type!, asset);
          assert.equal(a.headers.get("x-content-type-options"), "nosniff");
          await a.body?.cancel();
        }
      }
      // The module the page loads imports its siblings by relative path.
      const shared = await fetch(`${svc.base}/ui/assets/api.js`);
      assert.equal(shared.status, 200);
      await shared.body?.cancel();
    });

    await t.step("asset names outside the pattern are 404, so nothing else can be read", async () => {
      for (
        const name of ["index.html", "APP.JS", "..%2F..%2Fapp.ts", "app.ts", ".style.css", "missing.js", "a.b.js"]
      ) {
        const res = await fetch(`${svc.base}/ui/assets/${name}`);
        assert.equal(res.status, 404, name);
        assert.equal((await res.json()).error.code, "not_found");
      }
    });

    await t.step({
      name: "upload, live progress, overlay, measurements, a friendly error and the results grid in Chromium",
      fn: async () => {
        const started = Date.now();
        const report = await runBrowserScript<UiReport>("ui.mjs", [svc.base, OUT_DIR]);
        if (!report) return;
        const seen = JSON.stringify(report);
        assert.equal(report.failure, undefined, seen);
        assert.deepEqual(report.pages, { "/ui": "rendered", "/ui/results": "rendered" }, seen);
        assert.deepEqual(report.page_errors, [], seen);
        // Every outside request was blocked and recorded: the pages need none.
        assert.deepEqual(report.outside, [], seen);

        assert.equal(report.card_state, "completed", seen);
        assert.match(report.task_id ?? "", /^[0-9a-f-]{36}$/, seen);
        const status = await (await fetch(`${svc.base}/api/v1/images/status/${report.task_id}`)).json();
        assert.equal(status.state, "completed");
        assert.equal(report.contour_count, status.result.contour_count, "count shown on the page");
        assert.ok(report.overlay_paths! >= 1, seen);
        assert.equal(report.overlay_paths, status.result.contour_count, "one overlay path per contour");

        for (const step of [report.hovered, report.clicked]) {
          assert.ok(step, `no contour could be pointed at: ${seen}`);
          assert.equal(step.id, `#${step.target}`, "the panel shows the contour under the pointer");
          assert.match(step.area ?? "", /\d.*px²/, seen);
          for (
            const f of ["id", "area", "perimeter", "bbox", "centroid", "circularity", "convex", "depth", "parent"]
          ) assert.ok(step.fields.includes(f), `measurement ${f} missing: ${seen}`);
        }

        assert.ok(report.error_visible, seen);
        assert.ok(report.error_text && !report.error_text.includes("{"), `error shown raw: ${report.error_text}`);
        assert.match(report.error_text, /not an image/i);

        assert.ok(report.results_thumbnails! >= 1, seen);
        assert.ok(report.results_task_ids!.includes(report.task_id!), seen);
        assert.ok(report.thumbnail_width! > 0, "the thumbnail decoded");
        const shot = Deno.statSync(`${OUT_DIR}ui.png`);
        assert.ok(shot.size > 10_000, "screenshot of /ui");
        // Not one left over from an earlier run.
        assert.ok(shot.mtime!.getTime() >= started - 1000, "screenshot of /ui written by this run");
      },
    });
  } finally {
    await svc.close();
  }
});
