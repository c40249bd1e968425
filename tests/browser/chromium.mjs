// Launches Debian's Chromium headless for the browser scripts, with the flags this machine needs; when it is not
// installed, prints {"missing": path} as the script's report and exits 0 (the calling test decides what that means).
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

/** The headless browser, or no return at all when Chromium is missing. */
export async function launchChromium() {
  const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
  if (!existsSync(executablePath)) {
    console.log(JSON.stringify({ missing: executablePath }));
    process.exit(0);
  }
  return await chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

/** Lets a browser context reach only this machine's service (and data:/blob: URLs); anything else is refused and noted. */
export async function blockOutside(context, outside) {
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.protocol === "data:" || url.protocol === "blob:") return route.continue();
    outside.push(url.href);
    return route.abort();
  });
}

/** Notes why a script failed in its report, with a screenshot of the page as it was: the first thing to look at. */
export async function recordFailure(report, err, page, shot) {
  report.failure = err.message.split("\n")[0];
  await page?.screenshot({ path: shot, fullPage: true }).catch(() => {});
}
