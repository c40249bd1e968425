// Drives /ui and /ui/results in headless Chromium through a session's life, with every non-local request blocked: the
// options' error in the form's words, files kept in the order chosen (and one too large flagged at once), the service
// stopped and started again under running jobs, a reload in the middle of a job, and a result opened and exported from
// Recent results. Asks the test to act on the service by printing {"ask": what} and waiting for {"done": what} on
// stdin ("hold"/"release": pause/resume the queue, "stop"/"start": the server); prints one JSON report as its last line.
// Run by tests/ui_test.ts under Node: Playwright probes /proc at import, which Deno only allows with -A.
import { mkdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { blockOutside, launchChromium, recordFailure } from "./chromium.mjs";

const [base, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const coins = readFileSync(fileURLToPath(new URL("../fixtures/coins.png", import.meta.url)));
const png = (name) => ({ name, mimeType: "image/png", buffer: coins });
// How long the service stays away: long enough for the retries to slow down to their ceiling.
const OUTAGE_MS = 12_000;
const JOB_DEADLINE_MS = 30_000;

const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
/** Asks the test to act on the service, and resolves once it has. */
async function ask(what) {
  console.log(JSON.stringify({ ask: what }));
  const { value, done } = await answers.next();
  if (done || JSON.parse(value).done !== what) throw new Error(`the test did not do "${what}": ${value}`);
}

// What the first `n` cards (top to bottom) show.
const readCards = (page, n = Infinity) =>
  page.locator(".card").evaluateAll((els, n) =>
    els.slice(0, n).map((c) => ({
      title: c.querySelector(".card-title").textContent,
      task_id: c.dataset.taskId ?? null,
      state: c.dataset.state,
      state_text: c.querySelector(".state").textContent,
      contact: c.querySelector("[data-testid=contact]").hidden ? null : c.querySelector("[data-testid=contact]")
        .textContent,
      error: c.querySelector("[data-testid=error]").hidden ? null : c.querySelector("[data-testid=error]").textContent,
      note: c.querySelector(".note").hidden ? null : c.querySelector(".note").textContent,
      overlay_paths: c.querySelectorAll(".overlay path[data-id]").length,
      count: c.querySelector("[data-testid=contour-count]").textContent,
      downloads: [...c.querySelectorAll(".downloads a")].map((a) => a.getAttribute("href")),
      linked: c.classList.contains("linked"),
      focused: document.activeElement === c.querySelector(".card-title"),
    })), n);

// Whether the first `n` cards are all done with their overlay drawn.
const allDone = (n) =>
  [...document.querySelectorAll(".card")].slice(0, n).every((c) =>
    c.dataset.state === "completed" && c.getAttribute("aria-busy") === "false"
  );

const browser = await launchChromium();
const report = { outside: [], page_errors: [] };
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  await blockOutside(context, report.outside);
  // Every status read and event stream the pages open, by task.
  const statusRequests = [];
  context.on("request", (req) => {
    const m = /^\/api\/v1\/images\/status\/([0-9a-f-]{36})(\/events)?$/.exec(new URL(req.url()).pathname);
    if (m) statusRequests.push({ task: m[1], events: Boolean(m[2]), t: Date.now() });
  });
  const watchErrors = (p) => p.on("pageerror", (err) => report.page_errors.push(err.message));
  page = await context.newPage();
  watchErrors(page);
  await page.goto(`${base}/ui`);
  await page.waitForFunction(() => document.getElementById("size-limit").textContent !== "", null, { timeout: 10_000 });

  // ---- the server's validation message, in the form's words ----
  await page.selectOption("#opt-threshold", "canny");
  await page.fill("#opt-canny_low", "300");
  await page.setInputFiles("#file-input", [png("v.png")]);
  await page.click("#submit");
  await page.waitForFunction(() => document.querySelector(".card")?.dataset.state === "failed", null, {
    timeout: 10_000,
  });
  report.validation = {
    text: await page.locator(".card [data-testid=error]").first().textContent(),
    invalid: await page.getAttribute("#opt-canny_low", "aria-invalid"),
  };
  await page.click("button[type=reset]");

  // ---- the selection: in the order chosen, and a file over the limit flagged before any upload ----
  const huge = { name: "huge.png", mimeType: "image/png", buffer: Buffer.alloc(12 * 1024 * 1024) };
  await page.setInputFiles("#file-input", [png("h0.png"), png("h1.png"), huge, png("h2.png")]);
  report.selection = {
    items: await page.locator("#selection-list li").allTextContents(),
    flagged: await page.locator("#selection-list li.too-large").allTextContents(),
    summary: await page.locator("#selection-summary").textContent(),
    limit_shown: await page.locator("#size-limit").textContent(),
  };
  await page.screenshot({ path: `${outDir}/ui_selection.png`, clip: { x: 0, y: 0, width: 1280, height: 900 } });

  // ---- the service goes away under three queued jobs, and comes back ----
  await ask("hold");
  await page.setInputFiles("#file-input", [png("h0.png"), png("h1.png"), png("h2.png")]);
  await page.click("#submit");
  await page.waitForFunction(() => document.querySelectorAll(".card[data-task-id]").length === 3, null, {
    timeout: 10_000,
  });
  const batch = await readCards(page, 3);
  report.batch_order = batch.map((c) => c.title);
  const ids = batch.map((c) => c.task_id);
  // Each card follows its job on an event stream before the server stops.
  const streamsBy = Date.now() + 5_000;
  while (Date.now() < streamsBy) {
    if (ids.every((id) => statusRequests.some((r) => r.task === id && r.events))) break;
    await page.waitForTimeout(50);
  }
  await page.waitForTimeout(300);

  await ask("stop");
  const stoppedAt = Date.now();
  await page.waitForFunction(
    (n) =>
      [...document.querySelectorAll(".card")].slice(0, n).every((c) =>
        !c.querySelector("[data-testid=contact]").hidden
      ),
    3,
    { timeout: 10_000 },
  );
  report.outage = {
    lost_after_ms: Date.now() - stoppedAt,
    cards: await readCards(page, 3),
    announced: await page.locator("#jobs-status").textContent(),
  };
  await page.locator(".card").first().scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${outDir}/ui_lost_contact.png` });
  await page.waitForTimeout(Math.max(0, stoppedAt + OUTAGE_MS - Date.now()));
  const outageEnd = Date.now();
  // When each card asked during the outage, in ms since the stop.
  report.outage.window_ms = outageEnd - stoppedAt;
  report.outage.requests = Object.fromEntries(
    ids.map((id) => [
      id,
      statusRequests.filter((r) => r.task === id && r.t >= stoppedAt && r.t < outageEnd).map((r) => r.t - stoppedAt),
    ]),
  );

  await ask("start");
  const startedAt = Date.now();
  await page.waitForFunction(
    (n) =>
      [...document.querySelectorAll(".card")].slice(0, n).every((c) => c.querySelector("[data-testid=contact]").hidden),
    3,
    { timeout: 15_000 },
  );
  report.recovery = {
    after_ms: Date.now() - startedAt,
    cards: await readCards(page, 3),
    announced: await page.locator("#jobs-status").textContent(),
  };
  await ask("release");
  await page.waitForFunction(allDone, 3, { timeout: JOB_DEADLINE_MS });
  report.recovery.done = await readCards(page, 3);

  // ---- a reload while a job waits: every card comes back, the waiting one finishes ----
  await ask("hold");
  await page.setInputFiles("#file-input", [png("r0.png")]);
  await page.click("#submit");
  await page.waitForFunction(() => document.querySelectorAll(".card[data-task-id]").length === 4, null, {
    timeout: 10_000,
  });
  const [waiting] = await readCards(page, 1);
  // A task the service does not have (deleted, or expired), as the tab would remember it.
  const ghost = crypto.randomUUID();
  await page.evaluate((ghost) => {
    const list = JSON.parse(sessionStorage.getItem("bip.tasks"));
    list.unshift({ id: ghost, name: "ghost.png", batch: 1, seq: 0 });
    sessionStorage.setItem("bip.tasks", JSON.stringify(list));
  }, ghost);
  await page.reload();
  await page.waitForFunction(
    (ghost) => {
      const cards = [...document.querySelectorAll(".card")];
      const ghostCard = cards.find((c) => c.dataset.taskId === ghost);
      return cards.length === 5 && ghostCard?.dataset.state === "gone" && cards[0].dataset.state === "queued" &&
        cards.slice(1, 4).every((c) => c.getAttribute("aria-busy") === "false");
    },
    ghost,
    { timeout: 15_000 },
  );
  report.reload = {
    waiting_id: waiting.task_id,
    ghost,
    cards: await readCards(page),
    stored: await page.evaluate(() => JSON.parse(sessionStorage.getItem("bip.tasks")).map((t) => t.id)),
  };
  await page.screenshot({ path: `${outDir}/ui_reload.png`, fullPage: true });
  await ask("release");
  await page.waitForFunction(allDone, 1, { timeout: JOB_DEADLINE_MS });
  report.reload.finished = (await readCards(page, 1))[0];

  // ---- Recent results: exports on each tile, and a tile opens its card on /ui ----
  await page.goto(`${base}/ui/results`);
  await page.waitForFunction(
    () => document.getElementById("results-grid")?.getAttribute("aria-busy") === "false",
    null,
    {
      timeout: 10_000,
    },
  );
  const tile = page.locator(`.tile[data-task-id="${waiting.task_id}"]`);
  report.results = {
    lead: (await page.locator(".lead").textContent()).replace(/\s+/g, " ").trim(),
    open_href: await tile.locator(".tile-open").getAttribute("href"),
    open_text: await tile.locator(".tile-open").textContent(),
    thumb_href: await tile.locator(".thumb").getAttribute("href"),
    exports: await tile.locator("[data-export]").evaluateAll((as) =>
      as.map((a) => ({ kind: a.dataset.export, href: a.getAttribute("href"), download: a.getAttribute("download") }))
    ),
  };
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: 10_000 }),
    tile.locator("[data-export=svg]").click(),
  ]);
  report.results.svg = {
    name: download.suggestedFilename(),
    head: readFileSync(await download.path(), "utf8").slice(0, 300),
  };
  report.results.url_after_download = page.url();
  await page.screenshot({ path: `${outDir}/ui_results_tiles.png` });

  // The name opens the card on /ui, in this tab (which remembers the task: its card is marked and focused).
  await tile.locator(".tile-open").click();
  await page.waitForURL(/\/ui\?task=/);
  await page.waitForFunction(allDone, 4, { timeout: 15_000 });
  report.results.same_tab = (await readCards(page)).filter((c) => c.linked || c.focused);

  // Finished cards can be cleared, from the page and from the tab's memory.
  await page.click("#clear-jobs");
  report.cleared = {
    cards: await page.locator(".card").count(),
    empty_hint: await page.locator("#jobs-empty").isVisible(),
    stored: await page.evaluate(() => JSON.parse(sessionStorage.getItem("bip.tasks"))),
    focus: await page.evaluate(() => document.activeElement?.id),
    announced: await page.locator("#jobs-status").textContent(),
  };

  // A new tab (an empty session): only the linked card, learning its name from the service.
  const fresh = await context.newPage();
  watchErrors(fresh);
  await fresh.goto(`${base}/ui?task=${ids[0]}`);
  await fresh.waitForFunction(
    () => document.querySelector(".card")?.getAttribute("aria-busy") === "false",
    null,
    { timeout: 15_000 },
  );
  const cards = await readCards(fresh);
  await fresh.locator(".overlay").first().focus();
  await fresh.keyboard.press("ArrowRight");
  report.results.new_tab = {
    cards,
    measured: await fresh.locator("[data-testid=measurements] [data-field]").evaluateAll((els) =>
      els.map((e) => e.dataset.field)
    ),
  };
  await fresh.screenshot({ path: `${outDir}/ui_task_link.png`, fullPage: true });

  // A mangled link says so.
  await fresh.goto(`${base}/ui?task=not-a-task`);
  await fresh.waitForFunction(() => document.querySelector(".card")?.dataset.state === "gone", null, {
    timeout: 10_000,
  });
  report.results.bad_link = await readCards(fresh);
} catch (err) {
  await recordFailure(report, err, page, `${outDir}/ui_session_failure.png`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(0);
