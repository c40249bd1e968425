// The recent-results page: one page of the results index at a time, as a grid of annotated thumbnails.
import { apiFetch, bindApiKeyBox, element, friendlyError, keyAwareLink, loadLimits } from "./api.js";

const PAGE_SIZE = 12;

const grid = document.getElementById("results-grid");
const status = document.getElementById("results-status");
const errorEl = document.getElementById("results-error");
const prevButton = document.getElementById("prev-page");
const nextButton = document.getElementById("next-page");
const title = document.getElementById("results-title");

// Cursors only lead forward, so the ones already used are kept to step back.
const history = [];
let current = null;
let next = null;

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function ago(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  const steps = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"], [12, "month"]];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return relative.format(Math.round(value), "year");
}

function tile(item) {
  const li = element("li", "tile");
  li.dataset.taskId = item.task_id;
  const id = encodeURIComponent(item.task_id);
  // The card view of the "Try it" page: the contours over the image, their measurements, and every export.
  const view = `/ui?task=${id}`;
  const frame = element("a", "thumb");
  frame.href = view;
  // The name below is the same link for keyboards and screen readers; the picture is a bigger target for pointers.
  frame.tabIndex = -1;
  frame.setAttribute("aria-hidden", "true");
  const img = element("img");
  img.loading = "lazy";
  img.src = item.result_url;
  img.alt = "";
  if (item.width && item.height) {
    img.width = item.width;
    img.height = item.height;
  }
  frame.append(img);
  const name = element("h2", "tile-name");
  const open = element("a", "tile-open", item.filename);
  open.href = view;
  open.title = `${item.filename}: open its contours and measurements`;
  name.append(open);
  const count = element("p", "tile-count");
  count.append(element("strong", "", String(item.contour_count)), ` contour${item.contour_count === 1 ? "" : "s"}`);
  if (item.width && item.height) count.append(` · ${item.width} × ${item.height} px`);
  const when = element("time", "tile-time", ago(item.finished_at));
  when.dateTime = item.finished_at;
  when.title = new Date(item.finished_at).toLocaleString();
  const meta = element("p", "tile-meta");
  // The results list holds completed tasks only; the state is still shown, as on the job cards.
  meta.append(element("span", "tile-state", "Completed"), " · finished ", when);
  li.append(frame, name, count, meta, downloads(item));
  return li;
}

/** The contour exports as downloads, through the API key when one is set (as the cards' downloads are). */
function downloads(item) {
  const stem = item.filename.replace(/\.[^.]+$/, "") || "image";
  const contours = `/api/v1/images/${encodeURIComponent(item.task_id)}/contours`;
  const row = element("p", "tile-meta tile-downloads");
  row.append("Download: ");
  const links = [
    ["svg", `${contours}?format=svg`, "svg", "SVG"],
    ["geojson", `${contours}?format=geojson`, "geojson", "GeoJSON"],
    ["json", contours, "json", "JSON"],
  ];
  links.forEach(([kind, href, ext, text], i) => {
    const a = element("a", "", text);
    a.href = href;
    a.download = `${stem}-contours.${ext}`;
    a.dataset.export = kind;
    a.setAttribute("aria-label", `${text} of ${item.filename}`);
    keyAwareLink(a, showError);
    row.append(i ? " · " : "", a);
  });
  return row;
}

function showError(text) {
  errorEl.textContent = text;
  errorEl.hidden = !text;
}

async function load(cursor, { focus = false } = {}) {
  grid.setAttribute("aria-busy", "true");
  status.textContent = "Loading…";
  showError("");
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) params.set("cursor", cursor);
  try {
    const page = await (await apiFetch(`/api/v1/images/results?${params}`)).json();
    current = cursor;
    next = page.next_cursor;
    grid.replaceChildren(...page.items.map(tile));
    const first = history.length * PAGE_SIZE + 1;
    status.textContent = page.items.length
      ? `Showing results ${first}–${first + page.items.length - 1}${next ? "" : " (the last ones)"}.`
      : history.length
      ? "No more results."
      : "Nothing processed yet — upload an image on the “Try it” page.";
  } catch (err) {
    status.textContent = "";
    showError(friendlyError(err));
  } finally {
    grid.setAttribute("aria-busy", "false");
    prevButton.hidden = history.length === 0;
    nextButton.hidden = !next;
    // After paging, keyboard and screen-reader users start again at the top of the new page.
    if (focus) title.focus();
  }
}

nextButton.addEventListener("click", () => {
  history.push(current);
  load(next, { focus: true });
});
prevButton.addEventListener("click", () => {
  load(history.pop() ?? null, { focus: true });
});

const keyBox = bindApiKeyBox(() => {
  history.length = 0;
  load(null);
});
loadLimits().then((limits) => keyBox.setRequired(Boolean(limits.keysRequired)));
load(null);
