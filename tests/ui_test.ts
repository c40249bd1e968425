import assert from "node:assert/strict";
import { type Service, startService } from "../main.ts";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue } from "../queue/contour_queue.ts";
import { fixture } from "./fixtures.ts";
import { dropPrefix, runBrowserScript, startTestService, testConfig, waitForTask } from "./harness.ts";

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
  batch_states?: (string | null)[];
  batch_zip_href?: string | null;
  batch_zip?: { magic: number[]; size: number };
  batch_csv_links?: string[];
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
            const f of [
              ...["id", "area", "perimeter", "bbox", "centroid", "circularity", "convex", "depth", "parent"],
              ...["solidity", "feret", "min_area_rect", "ellipse", "hu_moments", "intensity"],
            ]
          ) assert.ok(step.fields.includes(f), `measurement ${f} missing: ${seen}`);
        }

        assert.ok(report.error_visible, seen);
        assert.ok(report.error_text && !report.error_text.includes("{"), `error shown raw: ${report.error_text}`);
        assert.match(report.error_text, /not an image/i);

        // Several files at once: one batch, both cards completed, its ZIP offered and served.
        assert.deepEqual(report.batch_states, ["completed", "completed"], seen);
        assert.match(report.batch_zip_href ?? "", /^\/api\/v1\/batches\/[0-9a-f-]{36}\/results\.zip$/, seen);
        assert.deepEqual(report.batch_zip?.magic, [0x50, 0x4b, 0x03, 0x04], seen);
        const batchStatus = await (await fetch(svc.base + report.batch_zip_href!.replace("/results.zip", ""))).json();
        assert.equal(batchStatus.counts.completed, 2, JSON.stringify(batchStatus));
        assert.match(report.batch_csv_links?.[0] ?? "", /\?format=csv$/, seen);

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

/**
 * Runs a browser script from tests/browser/ under Node that asks this test to act on the service mid-run: each line
 * `{"ask": what}` it prints is handled by `act`, then answered with `{"done": what}` on its stdin. Returns its report,
 * its last line of output; null when Chromium is missing (as runBrowserScript).
 */
async function runInteractiveScript<T>(
  script: string,
  args: string[],
  act: (what: string) => Promise<void>,
): Promise<T | null> {
  const child = new Deno.Command("node", {
    args: [new URL(`./browser/${script}`, import.meta.url).pathname, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const answers = child.stdin.getWriter();
  const lines: string[] = [];
  let buffer = "";
  try {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        let ask: unknown;
        try {
          ask = JSON.parse(line).ask;
        } catch {
          continue;
        }
        if (typeof ask !== "string") continue;
        await act(ask);
        await answers.write(new TextEncoder().encode(JSON.stringify({ done: ask }) + "\n"));
      }
    }
  } catch (err) {
    // The script waits on its stdin for an answer that will not come.
    child.kill("SIGKILL");
    await child.status;
    await stderr;
    throw err;
  } finally {
    await answers.close().catch(() => {});
  }
  const { code } = await child.status;
  assert.equal(code, 0, await stderr);
  await stderr;
  const report = JSON.parse([...lines, buffer].filter((l) => l.trim()).at(-1)!);
  if (report.missing) {
    assert.ok(!Deno.env.get("CI"), `Chromium is not installed at ${report.missing}`);
    console.warn(`skipped: no Chromium at ${report.missing} (apt-get install chromium)`);
    return null;
  }
  return report as T;
}

interface CardView {
  title: string;
  task_id: string | null;
  state: string;
  state_text: string;
  contact: string | null;
  error: string | null;
  note: string | null;
  overlay_paths: number;
  count: string;
  downloads: string[];
  linked: boolean;
  focused: boolean;
}

interface SessionReport {
  failure?: string;
  outside: string[];
  page_errors: string[];
  validation: { text: string; invalid: string | null };
  selection: { items: string[]; flagged: string[]; summary: string; limit_shown: string };
  batch_order: string[];
  outage: {
    lost_after_ms: number;
    cards: CardView[];
    announced: string;
    window_ms: number;
    requests: Record<string, number[]>;
  };
  recovery: { after_ms: number; cards: CardView[]; announced: string; done: CardView[] };
  reload: { waiting_id: string; ghost: string; cards: CardView[]; stored: string[]; finished: CardView };
  results: {
    lead: string;
    open_href: string;
    open_text: string;
    thumb_href: string;
    exports: { kind: string; href: string; download: string }[];
    svg: { name: string; head: string };
    url_after_download: string;
    same_tab: CardView[];
    new_tab: { cards: CardView[]; measured: string[] };
    bad_link: CardView[];
  };
  cleared: { cards: number; empty_hint: boolean; stored: string[]; focus: string; announced: string };
}

const LOST = "Lost contact with the service — retrying…";

Deno.test("the try-it pages through a session: the service lost and back, a reload, a result opened", async (t) => {
  const config = testConfig();
  let service: Service | undefined = await startService(config);
  const base = `http://127.0.0.1:${service.port}`;
  // The same service on the same port again, as after a restart.
  const restarted = { ...config, PORT: service.port };
  const redis = createRedis(config, "producer");
  await connectRedis(redis);
  // Paused, the queue keeps jobs waiting for as long as a step needs them unfinished.
  const queue = createContourQueue(config, redis);
  try {
    const started = Date.now();
    const report = await runInteractiveScript<SessionReport>("ui_session.mjs", [base, OUT_DIR], async (what) => {
      if (what === "hold") await queue.pause();
      else if (what === "release") await queue.resume();
      else if (what === "stop") {
        await service!.close();
        service = undefined;
      } else if (what === "start") service = await startService(restarted);
      else throw new Error(`the script asked for ${what}`);
    });
    if (!report) return;
    const seen = JSON.stringify(report);
    assert.equal(report.failure, undefined, seen);
    assert.deepEqual(report.page_errors, [], seen);
    assert.deepEqual(report.outside, [], seen);

    await t.step("a validation message names the form's labels, not the API's fields", () => {
      assert.equal(report.validation.text, "Check the option “Canny low”: must not exceed “Canny high”.");
      assert.equal(report.validation.invalid, "true");
    });

    await t.step("files keep the order chosen; one over the limit is flagged on choosing it", () => {
      const { items, flagged, summary } = report.selection;
      assert.deepEqual(items.map((i) => i.split(" ")[0]), ["h0.png", "h1.png", "huge.png", "h2.png"], seen);
      assert.equal(flagged.length, 1, seen);
      assert.match(flagged[0], /^huge\.png — 12 MiB — over the 10 MiB limit/);
      assert.match(summary, /4 images chosen \(1 over the 10 MiB limit\)/);
      assert.deepEqual(report.batch_order, ["h0.png", "h1.png", "h2.png"], "cards in the order chosen");
    });

    await t.step("the service stopped: each card says so, and asks less and less often", () => {
      const { outage } = report;
      for (const card of outage.cards) {
        assert.equal(card.contact, LOST, seen);
        // The last state known stays.
        assert.equal(card.state_text, "Waiting in the queue", seen);
      }
      assert.equal(outage.announced, LOST);
      assert.ok(outage.lost_after_ms < 5_000, `the line came after ${outage.lost_after_ms} ms`);
      for (const [task, times] of Object.entries(outage.requests)) {
        const gaps = times.slice(1).map((at, i) => at - times[i]);
        // Every 500 ms would be about 24 reads in 12 s; backing off to 5 s leaves about 5.
        assert.ok(times.length >= 3 && times.length <= 8, `${task} asked at ${times} ms`);
        assert.ok(Math.max(...gaps) >= 3_000, `${task} never slowed down: asked at ${times} ms`);
        assert.ok(gaps.every((gap) => gap <= 5_500), `${task} waited too long: asked at ${times} ms`);
      }
    });

    await t.step("the service back: the line goes, and every card finishes", () => {
      const { recovery } = report;
      assert.ok(recovery.after_ms < 8_000, `contact back after ${recovery.after_ms} ms`);
      for (const card of recovery.cards) assert.equal(card.contact, null, seen);
      assert.equal(recovery.announced, "Back in contact with the service.");
      for (const card of recovery.done) {
        assert.equal(card.state, "completed", seen);
        assert.ok(card.overlay_paths > 0 && card.overlay_paths === Number(card.count), seen);
      }
    });

    await t.step("a reload brings every card back: the waiting one finishes, a gone one says so", () => {
      const { reload } = report;
      // The card of the refused upload had no task to come back to.
      assert.deepEqual(reload.cards.map((c) => c.title), ["r0.png", "h0.png", "h1.png", "h2.png", "ghost.png"], seen);
      const [waiting, ...rest] = reload.cards;
      assert.equal(waiting.task_id, reload.waiting_id);
      assert.equal(waiting.state_text, "Waiting in the queue");
      for (const card of rest.slice(0, 3)) {
        assert.equal(card.state, "completed", seen);
        assert.ok(card.overlay_paths > 0 && card.overlay_paths === Number(card.count), seen);
        assert.equal(card.downloads.length, 5, seen);
        assert.match(card.note ?? "", /not kept after a reload/, seen);
      }
      const ghost = rest[3];
      assert.equal(ghost.task_id, reload.ghost);
      assert.equal(ghost.state_text, "No longer available");
      assert.match(ghost.error ?? "", /no longer has this job/);
      assert.ok(!reload.stored.includes(reload.ghost), "a gone task is forgotten");
      assert.equal(reload.stored.length, 4, seen);
      assert.equal(reload.finished.state, "completed", seen);
      assert.equal(reload.finished.task_id, reload.waiting_id);
      assert.ok(reload.finished.overlay_paths > 0, seen);
    });

    await t.step("recent results: the lead says what a tile offers; exports download; a tile opens its card", () => {
      const { results, reload } = report;
      const id = reload.waiting_id;
      assert.doesNotMatch(results.lead, /status, measurements and export links/);
      assert.match(results.lead, /measurements/);
      assert.match(results.lead, /SVG, GeoJSON or JSON/);
      assert.equal(results.open_href, `/ui?task=${id}`);
      assert.equal(results.open_text, "r0.png");
      assert.equal(results.thumb_href, `/ui?task=${id}`);
      const contours = `/api/v1/images/${id}/contours`;
      assert.deepEqual(results.exports, [
        { kind: "svg", href: `${contours}?format=svg`, download: "r0-contours.svg" },
        { kind: "geojson", href: `${contours}?format=geojson`, download: "r0-contours.geojson" },
        { kind: "json", href: contours, download: "r0-contours.json" },
      ]);
      assert.equal(results.svg.name, "r0-contours.svg");
      assert.match(results.svg.head, /<svg/);
      assert.equal(new URL(results.url_after_download).pathname, "/ui/results", "a download leaves the page be");

      assert.equal(results.same_tab.length, 1, seen);
      assert.equal(results.same_tab[0].title, "r0.png");
      assert.ok(results.same_tab[0].linked && results.same_tab[0].focused, seen);

      const { cards, measured } = results.new_tab;
      assert.equal(cards.length, 1, seen);
      const [card] = cards;
      assert.equal(card.title, "h0.png", "the name comes from the service");
      assert.equal(card.state, "completed");
      assert.ok(card.linked && card.focused, seen);
      assert.ok(card.overlay_paths > 0 && card.overlay_paths === Number(card.count), seen);
      assert.equal(card.downloads.length, 5, seen);
      assert.ok(card.downloads.some((href) => href?.endsWith("?format=csv")), seen);
      for (const f of ["id", "area", "perimeter", "bbox"]) assert.ok(measured.includes(f), seen);

      assert.equal(results.bad_link.length, 1);
      assert.equal(results.bad_link[0].state_text, "No longer available");
      assert.equal(results.bad_link[0].error, "This link does not name a task.");
    });

    await t.step("finished cards can be cleared, and are forgotten", () => {
      assert.deepEqual(report.cleared, {
        cards: 0,
        empty_hint: true,
        stored: [],
        focus: "jobs-title",
        announced: "Cleared 4 finished cards.",
      });
    });

    for (const shot of ["ui_selection", "ui_lost_contact", "ui_reload", "ui_results_tiles", "ui_task_link"]) {
      const stat = Deno.statSync(`${OUT_DIR}${shot}.png`);
      assert.ok(stat.mtime!.getTime() >= started - 1000, `screenshot ${shot} written by this run`);
    }
  } finally {
    await service?.close();
    await queue.close().catch(() => {});
    await closeRedis(redis);
    await dropPrefix(config);
    await Deno.remove(config.UPLOAD_DIR.replace(/\/uploads$/, ""), { recursive: true }).catch(() => {});
  }
});

interface KeysReport {
  failure?: string;
  outside: string[];
  page_errors: string[];
  api: { path: string; key: boolean }[];
  without_key: string;
  geojson: { name: string; from_blob: boolean; type: string };
  results_error_after: boolean;
  card: {
    state: string;
    error: string | null;
    overlay_paths: number;
    count: number;
    svg: { from_blob: boolean; name: string };
  };
}

Deno.test("the try-it pages with API keys: a tile's exports and the card it opens send the key", async () => {
  const key = "ui-test-key";
  const svc = await startTestService({ API_KEYS: key });
  try {
    const form = new FormData();
    form.append("file", new File([await fixture("coins.png") as Uint8Array<ArrayBuffer>], "coins.png"));
    const res = await fetch(`${svc.base}/api/v1/images/upload`, {
      method: "POST",
      body: form,
      headers: { "X-API-Key": key },
    });
    assert.equal(res.status, 202);
    const { task_id } = await res.json();
    assert.equal((await waitForTask(svc.base, task_id, 30_000, { "X-API-Key": key })).state, "completed");

    const report = await runBrowserScript<KeysReport>("ui_keys.mjs", [svc.base, key, task_id, OUT_DIR]);
    if (!report) return;
    const seen = JSON.stringify(report);
    assert.equal(report.failure, undefined, seen);
    assert.deepEqual(report.page_errors, [], seen);
    assert.deepEqual(report.outside, [], seen);
    assert.match(report.without_key, /needs an API key/);
    assert.deepEqual(report.geojson, { name: "coins-contours.geojson", from_blob: true, type: "FeatureCollection" });
    assert.equal(report.results_error_after, false, seen);
    assert.equal(report.card.state, "completed", seen);
    assert.equal(report.card.error, null, seen);
    assert.ok(report.card.overlay_paths > 0 && report.card.overlay_paths === report.card.count, seen);
    assert.deepEqual(report.card.svg, { from_blob: true, name: "coins-contours.svg" });
    // After the key was saved every API request carried it, and none was an event stream (which cannot).
    const first = report.api.findIndex((r) => r.key);
    assert.ok(first >= 0, seen);
    assert.deepEqual(report.api.slice(first).filter((r) => !r.key), [], seen);
    assert.ok(!report.api.some((r) => r.path.endsWith("/events")), seen);
  } finally {
    await svc.close();
  }
});

Deno.test("the try-it page: a queued task's Cancel button cancels it, and the card says so", async () => {
  // No worker: the upload stays queued until it is cancelled.
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  try {
    const report = await runBrowserScript<{
      failure?: string;
      outside: string[];
      page_errors: string[];
      task_id?: string;
      button_visible_queued?: boolean;
      card_state?: string;
      state_text?: string;
      error_text?: string;
      button_visible_after?: boolean;
    }>("ui_cancel.mjs", [svc.base, OUT_DIR]);
    if (!report) return;
    const seen = JSON.stringify(report);
    assert.equal(report.failure, undefined, seen);
    assert.deepEqual(report.page_errors, [], seen);
    assert.deepEqual(report.outside, [], seen);
    assert.equal(report.button_visible_queued, true, seen);
    assert.equal(report.card_state, "cancelled", seen);
    assert.equal(report.state_text, "Cancelled", seen);
    assert.match(report.error_text ?? "", /cancelled this job/, seen);
    assert.equal(report.button_visible_after, false, "no Cancel button on a finished task");
    const status = await (await fetch(`${svc.base}/api/v1/images/status/${report.task_id}`)).json();
    assert.equal(status.state, "failed");
    assert.equal(status.error.code, "cancelled");
  } finally {
    await svc.close();
  }
});
