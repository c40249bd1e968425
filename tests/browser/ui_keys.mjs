// With API keys set: the results page's exports and the card a tile opens on /ui must send the key (fetch with the
// X-API-Key header, then a blob download), as a plain link cannot. Every non-local request is blocked; prints one JSON
// report. Run by tests/ui_test.ts under Node: Playwright probes /proc at import, which Deno only allows with -A.
import { mkdirSync, readFileSync } from "node:fs";
import { blockOutside, launchChromium, recordFailure } from "./chromium.mjs";

const [base, key, taskId, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });

const browser = await launchChromium();
const report = { outside: [], page_errors: [], api: [] };
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  await blockOutside(context, report.outside);
  // Every API request, and whether it carried the key.
  context.on("request", (req) => {
    const url = new URL(req.url());
    if (url.pathname.startsWith("/api/")) {
      report.api.push({ path: url.pathname + url.search, key: req.headers()["x-api-key"] === key });
    }
  });
  page = await context.newPage();
  page.on("pageerror", (err) => report.page_errors.push(err.message));

  await page.goto(`${base}/ui/results`);
  await page.waitForFunction(() => !document.getElementById("results-error").hidden, null, { timeout: 10_000 });
  report.without_key = await page.locator("#results-error").textContent();
  await page.fill("#api-key", key);
  await page.click("#api-key-save");
  const tile = page.locator(`.tile[data-task-id="${taskId}"]`);
  await tile.waitFor({ timeout: 10_000 });

  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: 10_000 }),
    tile.locator("[data-export=geojson]").click(),
  ]);
  report.geojson = {
    name: download.suggestedFilename(),
    // A blob: URL, fetched with the key; a plain link would have been a 401 page.
    from_blob: download.url().startsWith("blob:"),
    type: JSON.parse(readFileSync(await download.path(), "utf8")).type,
  };
  report.results_error_after = await page.locator("#results-error").isVisible();

  await tile.locator(".tile-open").click();
  await page.waitForURL(/\/ui\?task=/);
  await page.waitForFunction(() => document.querySelector(".card")?.getAttribute("aria-busy") === "false", null, {
    timeout: 15_000,
  });
  const card = page.locator(".card").first();
  report.card = {
    state: await card.getAttribute("data-state"),
    error: await card.getByTestId("error").isVisible() ? await card.getByTestId("error").textContent() : null,
    overlay_paths: await card.locator(".overlay path[data-id]").count(),
    count: Number(await card.getByTestId("contour-count").textContent()),
  };
  const [svg] = await Promise.all([
    page.waitForEvent("download", { timeout: 10_000 }),
    card.locator(".dl-svg").click(),
  ]);
  report.card.svg = { from_blob: svg.url().startsWith("blob:"), name: svg.suggestedFilename() };
  await page.screenshot({ path: `${outDir}/ui_task_link_key.png`, fullPage: true });
} catch (err) {
  await recordFailure(report, err, page, `${outDir}/ui_keys_failure.png`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
