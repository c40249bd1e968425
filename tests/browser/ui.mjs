// Drives the try-it page (/ui) and the results page in headless Chromium with every non-local request blocked, and
// prints one JSON line with what it saw. Run by tests/ui_test.ts under Node: Playwright probes /proc at import, which
// Deno only allows with -A.
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { blockOutside, launchChromium, recordFailure } from "./chromium.mjs";

const [base, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const coins = fileURLToPath(new URL("../fixtures/coins.png", import.meta.url));
// One deadline for the whole job (upload, queue, analysis, overlay), as a person would wait.
const JOB_DEADLINE_MS = 30_000;

const browser = await launchChromium();
const report = { outside: [], page_errors: [], pages: {} };
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await blockOutside(context, report.outside);
  page = await context.newPage();
  page.on("pageerror", (err) => report.page_errors.push(err.message));

  await page.goto(`${base}/ui`);
  const heading = await page.locator("h1").textContent({ timeout: 10_000 }).catch(() => null);
  report.pages["/ui"] = heading?.includes("contours") ? "rendered" : `not rendered: h1 ${JSON.stringify(heading)}`;

  // A real image, through the file input and the submit button.
  await page.setInputFiles("#file-input", coins);
  await page.click("#submit");
  const until = Date.now() + JOB_DEADLINE_MS;
  const card = page.locator(".card").first();
  await page.waitForFunction(
    () => ["completed", "failed"].includes(document.querySelector(".card")?.dataset.state),
    null,
    { timeout: JOB_DEADLINE_MS },
  );
  report.card_state = await card.getAttribute("data-state");
  report.task_id = await card.getAttribute("data-task-id");
  if (report.card_state === "completed") {
    await card.locator(".overlay path[data-id]").first().waitFor({
      state: "attached",
      timeout: Math.max(1, until - Date.now()),
    });
    report.contour_count = Number(await card.getByTestId("contour-count").textContent());
    report.overlay_paths = await card.locator(".overlay path[data-id]").count();
    report.original_shown = await card.locator(".original img").count() === 1;
    report.downloads = await card.locator(".downloads a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));

    // A contour the pointer can reach at its centre (not covered by a smaller one lying on top of it); the smallest
    // such, so the screenshot shows one object picked rather than the background.
    await card.locator(".overlay").scrollIntoViewIfNeeded();
    const target = await card.locator(".overlay").evaluate((svg) => {
      for (const path of [...svg.querySelectorAll("path[data-id]")].reverse()) {
        const r = path.getBoundingClientRect();
        if (r.width < 12 || r.height < 12) continue;
        const x = r.left + r.width / 2, y = r.top + r.height / 2;
        if (document.elementFromPoint(x, y) === path) return { id: path.dataset.id, x, y };
      }
      return null;
    });
    const panel = card.getByTestId("measurements");
    const readPanel = async () => ({
      id: await panel.locator("[data-field=id]").textContent().catch(() => null),
      area: await panel.locator("[data-field=area]").textContent().catch(() => null),
      fields: await panel.locator("[data-field]").evaluateAll((els) => els.map((e) => e.dataset.field)),
    });
    if (target) {
      await page.mouse.move(target.x, target.y);
      report.hovered = { target: target.id, ...await readPanel() };
      await page.mouse.click(target.x, target.y);
      report.clicked = { target: target.id, ...await readPanel() };
    }
  } else {
    report.card_error = await card.getByTestId("error").textContent();
  }

  // A text file named like a PNG: the server refuses it, the page must say so in words.
  await page.setInputFiles("#file-input", {
    name: "notes.png",
    mimeType: "image/png",
    buffer: Buffer.from("These are my notes, not a picture.\n"),
  });
  await page.click("#submit");
  await page.waitForFunction(
    () => document.querySelectorAll(".card").length === 2 && document.querySelector(".card").dataset.state === "failed",
    null,
    { timeout: 10_000 },
  );
  const errorCard = page.locator(".card").first();
  report.error_text = await errorCard.getByTestId("error").textContent();
  report.error_visible = await errorCard.getByTestId("error").isVisible();

  // Two images at once: sent as one batch, whose results the page offers as a ZIP.
  const camera = fileURLToPath(new URL("../fixtures/camera.png", import.meta.url));
  await page.setInputFiles("#file-input", [coins, camera]);
  await page.click("#submit");
  await page.waitForFunction(
    () =>
      [...document.querySelectorAll(".card")].slice(0, 2).every((c) =>
        ["completed", "failed"].includes(c.dataset.state)
      ),
    null,
    { timeout: JOB_DEADLINE_MS },
  );
  const batchCards = page.locator(".card");
  report.batch_states = [
    await batchCards.nth(0).getAttribute("data-state"),
    await batchCards.nth(1).getAttribute("data-state"),
  ];
  const zipLink = page.locator("#batch-downloads a").first();
  report.batch_zip_href = await zipLink.getAttribute("href");
  // What the link serves: a ZIP (local file header "PK\x03\x04") holding both results.
  report.batch_zip = await page.evaluate(async (href) => {
    const bytes = new Uint8Array(await (await fetch(href)).arrayBuffer());
    return { magic: [...bytes.slice(0, 4)], size: bytes.length };
  }, report.batch_zip_href);
  report.batch_csv_links = await batchCards.nth(0).locator(".dl-csv").evaluateAll((as) => as.map((a) => a.href));
  await page.screenshot({ path: `${outDir}/ui.png`, fullPage: true });

  await page.goto(`${base}/ui/results`);
  await page.waitForFunction(
    () => document.getElementById("results-grid")?.getAttribute("aria-busy") === "false",
    null,
    {
      timeout: 10_000,
    },
  );
  report.results_thumbnails = await page.locator(".tile img").count();
  report.results_task_ids = await page.locator(".tile").evaluateAll((els) => els.map((e) => e.dataset.taskId));
  if (report.results_thumbnails > 0) {
    const first = page.locator(".tile img").first();
    await first.evaluate((img) => img.decode());
    report.thumbnail_width = await first.evaluate((img) => img.naturalWidth);
  }
  report.pages["/ui/results"] = "rendered";
  await page.screenshot({ path: `${outDir}/ui_results.png`, fullPage: false });
} catch (err) {
  await recordFailure(report, err, page, `${outDir}/ui_failure.png`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
