// Renders the API reference pages in headless Chromium with every non-local request blocked, and prints a JSON
// report. Run by tests/docs_test.ts under Node: Playwright probes /proc at import, which Deno only allows with -A.
import { launchChromium } from "./chromium.mjs";

const [base, shotDir] = process.argv.slice(2);
const browser = await launchChromium();
const report = { outside: [], pages: {} };
try {
  const context = await browser.newContext();
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.protocol === "data:" || url.protocol === "blob:") return route.continue();
    report.outside.push(url.href);
    return route.abort();
  });
  const page = await context.newPage();
  const checks = [
    ["/docs", "Upload an image for contour detection"],
    ["/redoc", "Upload an image for contour detection"],
  ];
  for (const [path, text] of checks) {
    await page.goto(base + path);
    try {
      await page.waitForFunction((t) => document.body.innerText.includes(t), text, { timeout: 30_000 });
      report.pages[path] = "rendered";
    } catch (err) {
      report.pages[path] = `not rendered: ${err.message.split("\n")[0]}`;
    }
    await page.screenshot({ path: `${shotDir}/${path.slice(1)}.png`, fullPage: false });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
