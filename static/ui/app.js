// The upload page: pick or drop images, send them with the chosen options, follow each job live, then show the
// original and annotated images with an interactive contour overlay.
import {
  ApiError,
  apiFetch,
  bindApiKeyBox,
  element,
  formatBytes,
  friendlyError,
  hasApiKey,
  keyAwareLink,
  loadLimits,
} from "./api.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const POLL_INTERVAL_MS = 500;
// Long enough to wait behind a busy queue, short enough that a lost job does not spin forever.
const POLL_DEADLINE_MS = 10 * 60_000;

const form = document.getElementById("upload-form");
const fileInput = document.getElementById("file-input");
const dropzone = document.getElementById("dropzone");
const selectionSummary = document.getElementById("selection-summary");
const selectionList = document.getElementById("selection-list");
const formStatus = document.getElementById("form-status");
const jobs = document.getElementById("jobs");
const jobsEmpty = document.getElementById("jobs-empty");
const template = document.getElementById("job-template");

let limits = {};
let selected = [];
let cardCount = 0;

const keyBox = bindApiKeyBox();
loadLimits().then((found) => {
  limits = found;
  if (found.maxFileSize) {
    document.getElementById("size-limit").textContent = `, up to ${formatBytes(found.maxFileSize)} each`;
  }
  keyBox.setRequired(Boolean(found.keysRequired));
});

/** The visible label of an option, for messages ("blur" → "Blur (px)"). */
function fieldLabel(name) {
  const label = form.querySelector(`label[for="opt-${CSS.escape(name)}"]`);
  return label?.firstChild?.textContent.trim() || name;
}

const errorContext = () => ({ limits, fieldLabel });

// ---- choosing files ----

function select(files) {
  selected = files;
  selectionList.replaceChildren(
    ...files.map((f) => {
      const li = document.createElement("li");
      li.textContent = `${f.name} — ${formatBytes(f.size)}`;
      return li;
    }),
  );
  selectionSummary.textContent = files.length
    ? `${files.length} image${files.length === 1 ? "" : "s"} chosen — press “Upload and detect contours”.`
    : "No images chosen yet.";
}

fileInput.addEventListener("change", () => select([...fileInput.files]));

const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");

for (const type of ["dragenter", "dragover"]) {
  dropzone.addEventListener(type, (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    dropzone.classList.add("dragging");
  });
}
dropzone.addEventListener("dragleave", (event) => {
  if (!dropzone.contains(event.relatedTarget)) dropzone.classList.remove("dragging");
});
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropzone.classList.remove("dragging");
  const files = [...event.dataTransfer.files];
  if (files.length) select(files);
});
// A file dropped next to the zone would otherwise make the browser leave the page to show it.
for (const type of ["dragover", "drop"]) {
  document.addEventListener(type, (event) => {
    if (!carriesFiles(event) || dropzone.contains(event.target)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "none";
  });
}

// ---- options ----

function syncThresholdFields() {
  const mode = form.elements.threshold.value;
  for (const group of form.querySelectorAll("[data-when-threshold]")) {
    const on = group.dataset.whenThreshold === mode;
    group.hidden = !on;
    // Disabled fields stay out of FormData, so only the chosen method's parameters are sent.
    group.disabled = !on;
  }
}

function clearInvalid() {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function markInvalid(name) {
  const el = form.elements[name];
  if (el instanceof HTMLElement) el.setAttribute("aria-invalid", "true");
}

form.elements.threshold.addEventListener("change", syncThresholdFields);
form.addEventListener("input", (event) => event.target.removeAttribute?.("aria-invalid"));
// The reset event fires before the fields change back.
form.addEventListener("reset", () =>
  setTimeout(() => {
    syncThresholdFields();
    clearInvalid();
    formStatus.textContent = "Options reset to the defaults.";
  }));
syncThresholdFields();

function optionEntries() {
  // An empty field means "the API's default" (max_contours), which is said by leaving it out.
  return [...new FormData(form)].filter(([, value]) => value !== "");
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearInvalid();
  if (!selected.length) {
    formStatus.textContent = "Choose at least one image first.";
    fileInput.focus();
    return;
  }
  const invalid = [...form.elements].find((el) => el.willValidate && !el.checkValidity());
  if (invalid) {
    invalid.setAttribute("aria-invalid", "true");
    formStatus.textContent = `Check the option “${fieldLabel(invalid.name)}”: ${invalid.validationMessage}`;
    invalid.focus();
    return;
  }
  const options = optionEntries();
  const n = selected.length;
  formStatus.textContent = `Sending ${n} image${n === 1 ? "" : "s"}…`;
  Promise.all(selected.map((file) => startJob(file, options))).then((sent) => {
    const ok = sent.filter(Boolean).length;
    formStatus.textContent = ok === n ? "" : `${n - ok} of ${n} could not be sent — see the cards below.`;
  });
});

// ---- jobs ----

const isFinal = (status) => status.state === "completed" || status.state === "failed";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Uploads one file under a new card, then follows the job in the background; resolves whether the upload worked. */
async function startJob(file, options) {
  const card = new JobCard(file);
  if (limits.maxFileSize && file.size > limits.maxFileSize) {
    // Refused here rather than after sending megabytes the server would cut off anyway.
    card.fail(friendlyError(new ApiError(413, "file_too_large", ""), errorContext()));
    return false;
  }
  let accepted;
  try {
    const body = new FormData();
    body.append("file", file, file.name);
    for (const [name, value] of options) body.append(name, value);
    accepted = await (await apiFetch("/api/v1/images/upload", { method: "POST", body })).json();
  } catch (err) {
    if (err.code === "validation_error") markInvalid(/^([\w.]+):/.exec(err.message)?.[1]);
    if (err.code === "unauthorized") document.getElementById("api-key-box").open = true;
    card.fail(friendlyError(err, errorContext()));
    return false;
  }
  card.accepted(accepted.task_id);
  follow(card, accepted.task_id);
  return true;
}

async function follow(card, taskId) {
  try {
    const status = await watch(taskId, (s) => card.update(s));
    if (status.state === "completed") await card.complete(status.result);
    else card.fail(friendlyError(status.error ?? { code: "processing_error", message: "no reason given" }));
  } catch (err) {
    card.fail(friendlyError(err, errorContext()));
  }
}

/** Follows a task to its final status, calling `onStatus` on every change. */
function watch(taskId, onStatus) {
  // EventSource cannot send an X-API-Key header, so with a key set the status is polled instead.
  if (hasApiKey()) return poll(taskId, onStatus);
  return new Promise((resolve, reject) => {
    const source = new EventSource(`/api/v1/images/status/${encodeURIComponent(taskId)}/events`);
    let settled = false;
    source.addEventListener("status", (event) => {
      let status;
      try {
        status = JSON.parse(event.data);
      } catch {
        return;
      }
      onStatus(status);
      if (isFinal(status)) {
        // The server ends the stream here; closing first stops EventSource from reconnecting.
        settled = true;
        source.close();
        resolve(status);
      }
    });
    source.addEventListener("error", () => {
      if (settled) return;
      settled = true;
      // The stream broke before the end (restart, proxy, 404): polling carries on, and reports the real error.
      source.close();
      poll(taskId, onStatus).then(resolve, reject);
    });
  });
}

async function poll(taskId, onStatus) {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  for (;;) {
    try {
      const status = await (await apiFetch(`/api/v1/images/status/${encodeURIComponent(taskId)}`)).json();
      onStatus(status);
      if (isFinal(status)) return status;
    } catch (err) {
      // A network blip or a busy service is worth waiting out; anything else is the answer.
      if (!(err instanceof ApiError) || ![0, 429, 503].includes(err.status)) throw err;
    }
    if (Date.now() > deadline) throw new ApiError(0, "timeout", "no final state before the deadline");
    await sleep(POLL_INTERVAL_MS);
  }
}

const STATE_WORDS = { queued: "Waiting in the queue", active: "Processing", completed: "Done", failed: "Failed" };

const number = (n, digits = 2) =>
  typeof n === "number" ? n.toLocaleString(undefined, { maximumFractionDigits: digits }) : "–";

/** One upload's card: state, progress, then the result with its overlay, measurements and downloads. */
class JobCard {
  constructor(file) {
    this.file = file;
    const n = ++cardCount;
    const el = template.content.firstElementChild.cloneNode(true);
    this.el = el;
    const q = (selector) => el.querySelector(selector);
    this.title = q(".card-title");
    this.title.textContent = file.name;
    this.title.id = `job-${n}-title`;
    el.setAttribute("aria-labelledby", this.title.id);
    this.stateEl = q(".state");
    this.progress = q(".progress");
    this.progress.setAttribute("aria-label", `Progress of ${file.name}`);
    this.errorEl = q(".error");
    this.resultEl = q(".result");
    this.note = q(".note");
    this.toggle = q(".overlay-toggle");
    this.toggle.id = `job-${n}-overlay`;
    q(".overlay-toggle-label").htmlFor = this.toggle.id;
    this.measurements = q(".measurements");
    this.hintText = this.measurements.textContent.trim();
    this.setState("uploading", "Uploading…");
    jobsEmpty.hidden = true;
    jobs.prepend(el);
  }

  setState(kind, text, progress) {
    this.el.dataset.state = kind;
    this.stateEl.textContent = text;
    // No value: the bar shows activity without claiming a percentage.
    if (progress === undefined) this.progress.removeAttribute("value");
    else this.progress.value = progress;
  }

  accepted(taskId) {
    this.taskId = taskId;
    this.el.dataset.taskId = taskId;
    this.setState("queued", STATE_WORDS.queued, 0);
  }

  update(status) {
    if (status.state === "completed" || status.state === "failed") return;
    const words = status.state === "active"
      ? `${STATE_WORDS.active} — ${Math.round(status.progress)} %`
      : STATE_WORDS.queued;
    this.setState(status.state, words, status.progress);
  }

  fail(text) {
    this.setState("failed", STATE_WORDS.failed, 0);
    this.progress.hidden = true;
    this.showError(text);
    this.el.setAttribute("aria-busy", "false");
  }

  showError(text) {
    this.errorEl.textContent = text;
    this.errorEl.hidden = false;
  }

  async complete(result) {
    const count = result.contour_count;
    this.setState("completed", `${STATE_WORDS.completed} — ${count} contour${count === 1 ? "" : "s"} found`, 100);
    this.el.querySelector("[data-testid=contour-count]").textContent = String(count);
    this.el.querySelector(".count-label").textContent = count === 1 ? "contour" : "contours";
    const threshold = result.threshold === null
      ? `${result.options.threshold} threshold`
      : `threshold ${result.threshold}`;
    this.el.querySelector(".facts").textContent = ` · ${result.width} × ${result.height} px · ${threshold} · ${
      Math.round(result.timings_ms.total)
    } ms`;

    const originalStage = this.el.querySelector(".original .stage");
    const annotatedStage = this.el.querySelector(".annotated .stage");
    annotatedStage.append(this.image(result.result_url, `${this.file.name} with its contours drawn`, result));
    this.objectUrl = URL.createObjectURL(this.file);
    const original = this.image(this.objectUrl, `${this.file.name} as uploaded`, result);
    originalStage.append(original);
    this.setDownloads(result);
    this.resultEl.hidden = false;

    // Browsers decode PNG and JPEG, but not TIFF (and not every BMP variant): then the annotated image carries the
    // overlay alone.
    const shown = await original.decode().then(() => true, () => false);
    let base = originalStage;
    if (!shown) {
      this.el.querySelector(".original").remove();
      URL.revokeObjectURL(this.objectUrl);
      base = annotatedStage;
      this.note.textContent =
        `Your browser cannot display the original ${result.format.toUpperCase()} file, so only the annotated image is shown; the contour overlay is drawn over it.`;
      this.note.hidden = false;
      this.el.querySelector(".overlay-toggle-label").textContent = "Show the interactive contour overlay";
    }
    this.toggle.addEventListener("change", () => base.classList.toggle("overlay-off", !this.toggle.checked));

    try {
      const data = await (await apiFetch(`/api/v1/images/${encodeURIComponent(result.task_id)}/contours`)).json();
      base.append(this.overlay(data, result.options.color));
    } catch (err) {
      this.showError(`The contour data could not be loaded for the overlay. ${friendlyError(err, errorContext())}`);
    }
    this.el.setAttribute("aria-busy", "false");
  }

  image(src, alt, result) {
    const img = element("img");
    img.src = src;
    img.alt = alt;
    img.width = result.width;
    img.height = result.height;
    return img;
  }

  setDownloads(result) {
    const stem = this.file.name.replace(/\.[^.]+$/, "") || "image";
    const contours = `/api/v1/images/${encodeURIComponent(result.task_id)}/contours`;
    const ext = result.result_url.split(".").pop();
    const links = [
      [".dl-image", result.result_url, `${stem}-contours.${ext}`, `Annotated ${ext === "jpg" ? "JPEG" : "PNG"}`],
      [".dl-json", contours, `${stem}-contours.json`, "Contours (JSON)"],
      [".dl-svg", `${contours}?format=svg`, `${stem}-contours.svg`, "SVG"],
      [".dl-geojson", `${contours}?format=geojson`, `${stem}-contours.geojson`, "GeoJSON"],
    ];
    for (const [selector, href, name, text] of links) {
      const a = this.el.querySelector(selector);
      a.href = href;
      a.download = name;
      a.textContent = text;
      keyAwareLink(a, (message) => this.showError(message));
    }
    this.el.querySelector(".downloads").setAttribute("aria-label", `Downloads for ${this.file.name}`);
  }

  /** An SVG of one path per contour (from the JSON, so each can be picked and measured), over the image's pixels. */
  overlay(data, color) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.classList.add("overlay");
    svg.setAttribute("viewBox", `0 0 ${data.width} ${data.height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("tabindex", "0");
    svg.setAttribute("role", "group");
    svg.setAttribute(
      "aria-label",
      `${data.contours.length} contours over ${this.file.name}. Arrow keys step through them, Escape clears.`,
    );
    svg.style.setProperty("--contour", color.startsWith("#") ? color : `#${color}`);
    const group = document.createElementNS(SVG_NS, "g");
    // Contour points are pixel indices; +0.5 puts the line through the pixels' centres, where OpenCV draws it.
    group.setAttribute("transform", "translate(0.5 0.5)");
    const byId = new Map(data.contours.map((c) => [c.id, c]));
    // Largest first, so a hole or an inner contour lies on top of its parent and gets the pointer there.
    for (const c of [...data.contours].sort((a, b) => b.area - a.area)) {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", pathData(c.points ?? []));
      path.dataset.id = String(c.id);
      group.append(path);
    }
    svg.append(group);

    const ids = data.contours.map((c) => c.id).sort((a, b) => a - b);
    let pinned = null;
    const pathOf = (id) => svg.querySelector(`path[data-id="${id}"]`);
    const show = (id) => {
      for (const p of svg.querySelectorAll("path.hover")) p.classList.remove("hover");
      if (id === null) {
        this.showMeasurements(null);
        return;
      }
      pathOf(id)?.classList.add("hover");
      this.showMeasurements(byId.get(id), id === pinned);
    };
    const pin = (id) => {
      svg.querySelector("path.pinned")?.classList.remove("pinned");
      pinned = id;
      if (id !== null) pathOf(id)?.classList.add("pinned");
      show(id);
    };
    const idAt = (target) => {
      const path = target.closest?.("path[data-id]");
      return path ? Number(path.dataset.id) : null;
    };
    svg.addEventListener("pointerover", (event) => {
      const id = idAt(event.target);
      if (id !== null) show(id);
    });
    svg.addEventListener("pointerleave", () => show(pinned));
    svg.addEventListener("click", (event) => {
      const id = idAt(event.target);
      pin(id === pinned ? null : id);
    });
    svg.addEventListener("keydown", (event) => {
      const at = pinned === null ? -1 : ids.indexOf(pinned);
      const moves = {
        ArrowRight: at + 1,
        ArrowDown: at + 1,
        ArrowLeft: at <= 0 ? ids.length - 1 : at - 1,
        ArrowUp: at <= 0 ? ids.length - 1 : at - 1,
        Home: 0,
        End: ids.length - 1,
      };
      if (event.key === "Escape") pin(null);
      else if (event.key in moves && ids.length) pin(ids[moves[event.key] % ids.length]);
      else return;
      event.preventDefault();
    });
    return svg;
  }

  showMeasurements(c, pinned = false) {
    if (!c) {
      const hint = element("p", "hint", this.hintText);
      this.measurements.replaceChildren(hint);
      return;
    }
    const heading = element("h4", "", "Contour ");
    heading.append(element("span", "", `#${c.id}`), pinned ? element("span", "pin", " (selected)") : "");
    heading.querySelector("span").dataset.field = "id";
    const rows = [
      ["area", "Area", `${number(c.area)} px²`],
      ["perimeter", "Perimeter", `${number(c.perimeter)} px`],
      ["bbox", "Bounding box", `${c.bbox.width} × ${c.bbox.height} px at (${c.bbox.x}, ${c.bbox.y})`],
      ["centroid", "Centroid", `(${number(c.centroid.x, 1)}, ${number(c.centroid.y, 1)})`],
      ["circularity", "Circularity", number(c.circularity, 3)],
      ["convex", "Convex", c.convex ? "yes" : "no"],
      ["depth", "Depth", String(c.depth)],
      ["parent", "Parent", c.parent < 0 ? "none (top level)" : `#${c.parent}`],
      ["point_count", "Points", String(c.point_count)],
    ];
    const dl = element("dl");
    for (const [field, label, value] of rows) {
      const dd = element("dd", "", value);
      dd.dataset.field = field;
      const row = element("div");
      row.append(element("dt", "", label), dd);
      dl.append(row);
    }
    this.measurements.replaceChildren(heading, dl);
  }
}

function pathData(points) {
  if (!points.length) return "";
  return `M${points.map(([x, y]) => `${x} ${y}`).join("L")}Z`;
}
