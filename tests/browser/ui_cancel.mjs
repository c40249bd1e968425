// Cancels a queued task from its card on the try-it page (/ui) in headless Chromium and prints one JSON line with what
// it saw. Run by tests/ui_test.ts under Node against a service with no worker, so the task stays queued.
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { blockOutside, launchChromium, recordFailure } from "./chromium.mjs";

const [base, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const coins = fileURLToPath(new URL("../fixtures/coins.png", import.meta.url));

const browser = await launchChromium();
const report = { outside: [], page_errors: [] };
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await blockOutside(context, report.outside);
  page = await context.newPage();
  page.on("pageerror", (err) => report.page_errors.push(err.message));
  await page.goto(`${base}/ui`);
  await page.setInputFiles("#file-input", coins);
  await page.click("#submit");
  const card = page.locator(".card").first();
  await page.waitForFunction(() => document.querySelector(".card")?.dataset.state === "queued", null, {
    timeout: 10_000,
  });
  report.task_id = await card.getAttribute("data-task-id");
  const button = card.getByRole("button", { name: "Cancel coins.png" });
  report.button_visible_queued = await button.isVisible();
  await card.screenshot({ path: `${outDir}/ui_cancel_queued.png` });
  await button.click();
  await page.waitForFunction(() => document.querySelector(".card")?.dataset.state === "cancelled", null, {
    timeout: 10_000,
  });
  report.card_state = await card.getAttribute("data-state");
  report.state_text = await card.getByTestId("state").textContent();
  report.error_text = await card.getByTestId("error").textContent();
  report.button_visible_after = await card.getByTestId("cancel").isVisible();
  await page.screenshot({ path: `${outDir}/ui_cancel.png`, fullPage: false });
} catch (err) {
  await recordFailure(report, err, page, `${outDir}/ui_cancel_failure.png`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
