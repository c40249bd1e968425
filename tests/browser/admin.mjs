// Opens the queue dashboard in headless Chromium with API keys set: without credentials (expects the browser to be
// asked for them), then as a user who typed the key into the login prompt. Prints a JSON report; run by
// tests/admin_test.ts under Node (Playwright probes /proc at import, which Deno only allows with -A).
import { launchChromium } from "./chromium.mjs";

const [url, key, queueName] = process.argv.slice(2);
const browser = await launchChromium();
const report = { without_key: null, with_key: null, failed: [] };
try {
  // Without credentials Playwright dismisses the login prompt, and the navigation fails with this error: the browser
  // was asked for credentials.
  const anonymous = await browser.newContext();
  try {
    report.without_key = `status ${(await (await anonymous.newPage()).goto(url)).status()}`;
  } catch (err) {
    report.without_key = err.message.includes("ERR_INVALID_AUTH_CREDENTIALS") ? "asked for credentials" : err.message;
  }
  await anonymous.close();

  // What the browser does once the user has answered its login prompt with any name and the key.
  const context = await browser.newContext({ httpCredentials: { username: "admin", password: key } });
  const page = await context.newPage();
  page.on("response", (res) => res.status() >= 400 && report.failed.push(`${res.status()} ${res.url()}`));
  const res = await page.goto(url);
  try {
    // The queue's name appears once the page's script has fetched the dashboard API with the same credentials.
    await page.waitForFunction((name) => document.body.innerText.includes(name), queueName, { timeout: 30_000 });
    report.with_key = res.status() === 200 ? "rendered" : `status ${res.status()}`;
  } catch (err) {
    report.with_key = `not rendered: ${err.message.split("\n")[0]}`;
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
