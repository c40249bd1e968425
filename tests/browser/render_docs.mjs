// Renders the API reference pages in headless Chromium with every non-local request blocked, and prints a JSON
// report. Run by tests/docs_test.ts under Node: Playwright probes /proc at import, which Deno only allows with -A.
import { blockOutside, launchChromium } from "./chromium.mjs";

const [base, shotDir] = process.argv.slice(2);
const browser = await launchChromium();
const report = { outside: [], pages: {}, errors: [], hosted_features: [] };
try {
  const context = await browser.newContext();
  await blockOutside(context, report.outside);
  const page = await context.newPage();
  // A request the page's Content-Security-Policy refuses shows up here, as does any script error.
  page.on("console", (m) => m.type() === "error" && report.errors.push(m.text()));
  page.on("pageerror", (e) => report.errors.push(String(e)));
  const checks = [
    ["/docs", "Upload an image for contour detection"],
    ["/redoc", "Upload an image for contour detection"],
  ];
  for (const [path, text] of checks) {
    await page.goto(base + path);
    try {
      await page.waitForFunction((t) => document.body.innerText.includes(t), text, { timeout: 30_000 });
      report.pages[path] = "rendered";
      // Scalar's hosted extras upload the API document to scalar.com: they must not be offered.
      const body = await page.evaluate(() => document.body.innerText);
      for (const label of ["Ask AI", "Generate MCP", "Deploy", "Share"]) {
        if (body.includes(label)) report.hosted_features.push(`${path}: ${label}`);
      }
    } catch (err) {
      report.pages[path] = `not rendered: ${err.message.split("\n")[0]}`;
    }
    await page.screenshot({ path: `${shotDir}/${path.slice(1)}.png`, fullPage: false });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
