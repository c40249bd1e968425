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
  retryAfterMs,
} from "./api.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const POLL_INTERVAL_MS = 500;
// Unreachable or unavailable (503), the service is asked again after 1, 2, 4, then every 5 seconds.
const RETRY_MAX_MS = 5_000;
// Long enough to wait behind a busy queue, short enough that a lost job does not spin forever.
const POLL_DEADLINE_MS = 10 * 60_000;
// This tab's tasks (sessionStorage), so a reload brings their cards back; the newest ones only.
const SESSION_KEY = "bip.tasks";
const SESSION_MAX = 50;
const LOST_CONTACT = "Lost contact with the service — retrying…";

const form = document.getElementById("upload-form");
const fileInput = document.getElementById("file-input");
const dropzone = document.getElementById("dropzone");
const selectionSummary = document.getElementById("selection-summary");
const selectionList = document.getElementById("selection-list");
const formStatus = document.getElementById("form-status");
const jobs = document.getElementById("jobs");
const jobsEmpty = document.getElementById("jobs-empty");
const jobsStatus = document.getElementById("jobs-status");
const clearButton = document.getElementById("clear-jobs");
const batchDownloads = document.getElementById("batch-downloads");
const template = document.getElementById("job-template");

let limits = {};
let selected = [];
let cardCount = 0;
/** Every card on the page. */
const cards = new Set();

const keyBox = bindApiKeyBox();
loadLimits().then((found) => {
  limits = found;
  if (found.maxFileSize) {
    document.getElementById("size-limit").textContent = `, up to ${formatBytes(found.maxFileSize)} each`;
    // Files chosen before the limit was known are checked against it now.
    if (selected.length) select(selected);
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

const tooLarge = (file) => Boolean(limits.maxFileSize) && file.size > limits.maxFileSize;

/** Shows the chosen files in their order, flagging any over the size limit before they are sent. */
function select(files) {
  selected = files;
  const limit = formatBytes(limits.maxFileSize);
  selectionList.replaceChildren(
    ...files.map((f) => {
      const li = element("li", "", `${f.name} — ${formatBytes(f.size)}`);
      if (tooLarge(f)) {
        li.classList.add("too-large");
        li.append(element("strong", "", ` — over the ${limit} limit, so it will not be sent`));
      }
      return li;
    }),
  );
  const n = files.length;
  const over = files.filter(tooLarge).length;
  const chosen = `${n} image${n === 1 ? "" : "s"} chosen`;
  selectionSummary.textContent = !n
    ? "No images chosen yet."
    : over === n
    ? `${chosen}, but ${n === 1 ? "it is" : "all are"} over the ${limit} limit — choose smaller files.`
    : over
    ? `${chosen} (${over} over the ${limit} limit) — press “Upload and detect contours”.`
    : `${chosen} — press “Upload and detect contours”.`;
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
  // The newest batch goes above the older cards, its own cards in the order the files were chosen.
  const batch = { before: jobs.firstElementChild, time: Date.now() };
  // Several files go as one batch, whose results can then be downloaded together as a ZIP.
  const sending = n > 1
    ? startBatch(selected, options, batch)
    : Promise.all(selected.map((file, seq) => startJob(file, options, { ...batch, seq })))
      .then((sent) => sent.filter(Boolean).length);
  sending.then((ok) => {
    formStatus.textContent = ok === n ? "" : `${n - ok} of ${n} could not be sent — see the cards below.`;
  });
});

// ---- jobs ----

const isFinal = (status) => status.state === "completed" || status.state === "failed";

/** This tab's tasks, oldest first: `{ id, name, batch, seq }` (batch: when it was sent; seq: its place in it). */
function storedTasks() {
  try {
    const list = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "[]");
    return Array.isArray(list) ? list.filter((t) => typeof t?.id === "string" && typeof t.name === "string") : [];
  } catch {
    return [];
  }
}

function storeTasks(list) {
  try {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(list.slice(-SESSION_MAX)));
  } catch {
    // Storage blocked or full: the cards just do not outlive a reload.
  }
}

const rememberTask = (task) => storeTasks([...storedTasks().filter((t) => t.id !== task.id), task]);
const forgetTasks = (ids) => storeTasks(storedTasks().filter((t) => !ids.includes(t.id)));

/**
 * Whether the cards can reach the service. A card that cannot shows a line saying so (the page announces it once), and
 * retries at longer and longer intervals; the first card to get through again wakes the others at once.
 */
const contact = {
  lost: new Set(),
  retries: new Set(),

  report(card, reached) {
    const before = this.lost.size;
    if (reached) {
      if (!this.lost.delete(card)) return;
      for (const wake of this.retries) wake();
    } else {
      if (this.lost.has(card)) return;
      this.lost.add(card);
    }
    card.showContactLost(!reached);
    this.announce(before);
  },

  /** A card that stops following its job (failed, cleared) no longer counts. */
  drop(card) {
    const before = this.lost.size;
    if (!this.lost.delete(card)) return;
    card.showContactLost(false);
    this.announce(before);
  },

  announce(before) {
    if (!before && this.lost.size) jobsStatus.textContent = LOST_CONTACT;
    else if (before && !this.lost.size) jobsStatus.textContent = "Back in contact with the service.";
  },

  /** Waits `ms`; a wait before a retry ends early once contact is back. */
  sleep(ms, retrying) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.retries.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (retrying) this.retries.add(done);
    });
  },
};
// The browser noticing the network is back is a good moment to try again.
globalThis.addEventListener("online", () => {
  for (const wake of contact.retries) wake();
});

/** How long to wait before asking again after `failures` failed tries in a row. */
function retryDelay(failures, err) {
  const backoff = Math.min(RETRY_MAX_MS, POLL_INTERVAL_MS * 2 ** failures);
  // Spread out, so cards that lost contact together do not all ask again in the same instant.
  const spread = backoff * (0.75 + Math.random() * 0.25);
  // The service's own Retry-After wins when it asks for longer (within reason).
  return Math.max(spread, Math.min(retryAfterMs(err.retryAfter), 60_000));
}

/** Uploads one file under a new card, then follows the job in the background; resolves whether the upload worked. */
async function startJob(file, options, batch) {
  const card = new JobCard(file.name, { file, before: batch.before });
  if (tooLarge(file)) {
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
  rememberTask({ id: accepted.task_id, name: file.name, batch: batch.time, seq: batch.seq });
  follow(card, accepted.task_id);
  return true;
}

/**
 * Uploads several files as one batch (POST /api/v1/images/batch), a card each, then follows each task and offers the
 * batch's ZIP of results; resolves how many files were accepted.
 */
async function startBatch(files, options, batch) {
  const made = files.map((file) => new JobCard(file.name, { file, before: batch.before }));
  const body = new FormData();
  for (const [name, value] of options) body.append(name, value);
  // The form's file parts, by their place in it (the answer's `index`): the files not refused here.
  const sent = [];
  files.forEach((file, seq) => {
    if (tooLarge(file)) made[seq].fail(friendlyError(new ApiError(413, "file_too_large", ""), errorContext()));
    else {
      body.append("file", file, file.name);
      sent.push(seq);
    }
  });
  if (!sent.length) return 0;
  let accepted;
  try {
    accepted = await (await apiFetch("/api/v1/images/batch", { method: "POST", body })).json();
  } catch (err) {
    if (err.code === "validation_error") markInvalid(/^([\w.]+):/.exec(err.message)?.[1]);
    if (err.code === "unauthorized") document.getElementById("api-key-box").open = true;
    for (const seq of sent) made[seq].fail(friendlyError(err, errorContext()));
    return 0;
  }
  for (const task of accepted.tasks) {
    const seq = sent[task.index];
    made[seq].accepted(task.task_id);
    rememberTask({ id: task.task_id, name: files[seq].name, batch: batch.time, seq });
    follow(made[seq], task.task_id);
  }
  for (const refused of accepted.errors) {
    made[sent[refused.index]].fail(
      friendlyError(new ApiError(400, refused.error.code, refused.error.message), errorContext()),
    );
  }
  if (accepted.tasks.length) offerBatchZip(accepted);
  return accepted.tasks.length;
}

/** A link to a batch's results as one ZIP, above the cards. */
function offerBatchZip(accepted) {
  const item = element("p", "batch-download");
  const link = element("a", "", `Download the ${accepted.tasks.length} results of this batch (ZIP)`);
  link.href = accepted.results_url;
  link.download = `batch-${accepted.batch_id}.zip`;
  keyAwareLink(link, (message) => (jobsStatus.textContent = message));
  item.append(
    link,
    element("span", "hint", " — the finished ones at the time you click; its manifest.json lists the rest."),
  );
  batchDownloads.prepend(item);
}

/** Follows a task to its end on its card; `resumed`: a card brought back, whose task may be long finished (or gone). */
async function follow(card, taskId, { resumed = false } = {}) {
  try {
    const status = await watch(card, taskId, resumed);
    if (status.state === "completed") await card.complete(status.result);
    else if (status.error?.code === "cancelled") card.cancelled();
    else card.fail(friendlyError(status.error ?? { code: "processing_error", message: "no reason given" }));
  } catch (err) {
    // 404: deleted or expired; 400: not a task id at all (a mangled ?task= link).
    if (err instanceof ApiError && (err.status === 404 || err.status === 400)) {
      card.gone(err.status === 400 ? "This link does not name a task." : undefined);
      forgetTasks([taskId]);
    } else {
      card.fail(friendlyError(err, errorContext()));
    }
  }
}

/** Follows a task to its final status, updating the card on every change. */
async function watch(card, taskId, resumed) {
  const onStatus = (status) => card.update(status);
  if (resumed) {
    // One plain read first: a finished task needs no stream, and a gone one is told at once.
    const status = await poll(card, taskId, onStatus, { once: true });
    if (isFinal(status)) return status;
  }
  // EventSource cannot send an X-API-Key header, so with a key set the status is polled instead.
  if (hasApiKey()) return poll(card, taskId, onStatus);
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
    // The task was deleted or expired while followed.
    source.addEventListener("gone", (event) => {
      settled = true;
      source.close();
      let message = "";
      try {
        message = JSON.parse(event.data).error.message;
      } catch {
        // The code alone says enough.
      }
      reject(new ApiError(404, "not_found", message));
    });
    source.addEventListener("error", () => {
      if (settled) return;
      settled = true;
      // The stream broke before the end (restart, proxy, 404): polling carries on, and reports the real error.
      source.close();
      poll(card, taskId, onStatus).then(resolve, reject);
    });
  });
}

/**
 * Reads the status until it is final (or, with `once`, until one read succeeds). Unreachable, 503 and 429 are waited
 * out with a growing delay, the card saying contact is lost; any other error is the answer.
 */
async function poll(card, taskId, onStatus, { once = false } = {}) {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  let failures = 0;
  for (;;) {
    let wait = POLL_INTERVAL_MS;
    try {
      const status = await (await apiFetch(`/api/v1/images/status/${encodeURIComponent(taskId)}`)).json();
      failures = 0;
      contact.report(card, true);
      onStatus(status);
      if (once || isFinal(status)) return status;
    } catch (err) {
      const unreachable = err instanceof ApiError && (err.status === 0 || err.status === 503);
      if (!unreachable && !(err instanceof ApiError && err.status === 429)) {
        if (err instanceof ApiError) contact.report(card, true);
        throw err;
      }
      // 429 is an answer: the service is there, just asking for patience.
      contact.report(card, !unreachable);
      wait = retryDelay(++failures, err);
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new ApiError(0, "poll_timeout", "no final state before the deadline");
    await contact.sleep(wait, failures > 0);
  }
}

/** Brings back this tab's cards after a reload, and shows the task a link names (/ui?task=<id>, from Recent results). */
function restoreCards() {
  // Newest batch first, each batch in the order its files were chosen, as before the reload.
  const tasks = storedTasks().sort((a, b) => (b.batch ?? 0) - (a.batch ?? 0) || (a.seq ?? 0) - (b.seq ?? 0));
  for (const task of tasks) {
    const card = new JobCard(task.name);
    card.accepted(task.id, { checking: true });
    follow(card, task.id, { resumed: true });
  }
  const linked = new URLSearchParams(location.search).get("task")?.trim().toLowerCase();
  if (!linked) return;
  let card = [...cards].find((c) => c.taskId === linked);
  if (!card) {
    card = new JobCard(null, { before: jobs.firstElementChild });
    card.setName(`Task ${linked.slice(0, 8)}…`);
    card.accepted(linked, { checking: true });
    follow(card, linked, { resumed: true });
  }
  // Straight to the card asked for, keyboard and screen-reader focus included.
  card.el.classList.add("linked");
  card.title.tabIndex = -1;
  card.title.focus();
}

/** Removes the cards whose jobs have ended (their tasks stay on the service, under Recent results). */
function clearFinished() {
  const done = [...cards].filter((c) => c.finished);
  for (const card of done) card.remove();
  forgetTasks(done.map((c) => c.taskId).filter(Boolean));
  jobsStatus.textContent = `Cleared ${done.length} finished card${done.length === 1 ? "" : "s"}.`;
  syncJobsList();
  // The button may have gone with the cards: focus moves back to the section's heading.
  if (clearButton.hidden) document.getElementById("jobs-title").focus();
}
clearButton.addEventListener("click", clearFinished);

function syncJobsList() {
  jobsEmpty.hidden = cards.size > 0;
  clearButton.hidden = ![...cards].some((c) => c.finished);
}

const STATE_WORDS = {
  checking: "Checking…",
  queued: "Waiting in the queue",
  active: "Processing",
  completed: "Done",
  failed: "Failed",
  gone: "No longer available",
  cancelled: "Cancelled",
  cancelling: "Cancelling…",
};

const number = (n, digits = 2) =>
  typeof n === "number" ? n.toLocaleString(undefined, { maximumFractionDigits: digits }) : "–";

/**
 * One task's card: state, progress, then the result with its overlay, measurements and downloads. `file` is the picked
 * file when the card was made by an upload (a card brought back after a reload has only the name); `name` is null when
 * not known yet (a /ui?task= link). `before`: the card it goes above, else it goes last.
 */
class JobCard {
  constructor(name, { file, before = null } = {}) {
    this.file = file;
    this.name = name;
    this.finished = false;
    const n = ++cardCount;
    const el = template.content.firstElementChild.cloneNode(true);
    this.el = el;
    const q = (selector) => el.querySelector(selector);
    this.title = q(".card-title");
    this.title.id = `job-${n}-title`;
    el.setAttribute("aria-labelledby", this.title.id);
    this.stateEl = q(".state");
    this.progress = q(".progress");
    this.contactEl = q(".contact-lost");
    this.contactEl.textContent = LOST_CONTACT;
    this.errorEl = q(".error");
    this.resultEl = q(".result");
    this.note = q(".note");
    this.toggle = q(".overlay-toggle");
    this.toggle.id = `job-${n}-overlay`;
    q(".overlay-toggle-label").htmlFor = this.toggle.id;
    this.measurements = q(".measurements");
    this.hintText = this.measurements.textContent.trim();
    this.cancelButton = q(".cancel");
    this.cancelButton.addEventListener("click", () => this.cancel());
    this.setName(name ?? "Task");
    this.setState("uploading", "Uploading…");
    jobs.insertBefore(el, before);
    cards.add(this);
    syncJobsList();
  }

  setName(name) {
    this.title.textContent = name;
    this.progress.setAttribute("aria-label", `Progress of ${name}`);
    this.cancelButton.setAttribute("aria-label", `Cancel ${name}`);
  }

  setState(kind, text, progress) {
    this.el.dataset.state = kind;
    this.stateEl.textContent = text;
    // Only a task the service holds and has not finished can be cancelled; a request under way is not asked twice.
    this.cancelButton.hidden = !(kind === "queued" || kind === "active") || this.cancelling === true;
    // No value: the bar shows activity without claiming a percentage.
    if (progress === undefined) this.progress.removeAttribute("value");
    else this.progress.value = progress;
  }

  /** The upload was accepted, or (`checking`) the card stands for a known task whose state is not read yet. */
  accepted(taskId, { checking = false } = {}) {
    this.taskId = taskId;
    this.el.dataset.taskId = taskId;
    if (checking) this.setState("checking", STATE_WORDS.checking);
    else this.setState("queued", STATE_WORDS.queued, 0);
  }

  update(status) {
    if (!this.name && status.filename) {
      this.name = status.filename;
      this.setName(status.filename);
    }
    if (status.state === "completed" || status.state === "failed") return;
    const words = this.cancelling
      ? STATE_WORDS.cancelling
      : status.state === "active"
      ? `${STATE_WORDS.active} — ${Math.round(status.progress)} %`
      : STATE_WORDS.queued;
    this.setState(status.state, words, status.progress);
  }

  /**
   * Asks the service to cancel the task; the status being followed then ends it (a queued task at once, a running one
   * when its worker has stopped it).
   */
  async cancel() {
    if (!this.taskId || this.cancelling) return;
    this.cancelling = true;
    this.cancelButton.hidden = true;
    this.stateEl.textContent = STATE_WORDS.cancelling;
    try {
      await apiFetch(`/api/v1/images/cancel/${encodeURIComponent(this.taskId)}`, { method: "POST" });
    } catch (err) {
      this.cancelling = false;
      // Finished meanwhile (409): the status being followed shows how; anything else can be tried again.
      if (!(err instanceof ApiError && err.status === 409)) this.cancelButton.hidden = this.finished;
      this.showError(friendlyError(err, errorContext()));
    }
  }

  /** The task was cancelled (here or by another client). */
  cancelled() {
    this.setState("cancelled", STATE_WORDS.cancelled, 0);
    this.progress.hidden = true;
    this.showError(friendlyError({ code: "cancelled" }));
    this.end();
  }

  showContactLost(lost) {
    this.contactEl.hidden = !lost;
  }

  end() {
    contact.drop(this);
    this.finished = true;
    this.el.setAttribute("aria-busy", "false");
    syncJobsList();
  }

  fail(text) {
    this.setState("failed", STATE_WORDS.failed, 0);
    this.progress.hidden = true;
    this.showError(text);
    this.end();
  }

  /** The service no longer has the task (deleted, expired), or never had it. */
  gone(text = "The service no longer has this job — it was deleted, or its results expired.") {
    this.setState("gone", STATE_WORDS.gone);
    this.progress.hidden = true;
    this.showError(text);
    this.end();
  }

  showError(text) {
    this.errorEl.textContent = text;
    this.errorEl.hidden = false;
  }

  remove() {
    this.el.remove();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    cards.delete(this);
  }

  async complete(result) {
    if (!this.name) {
      this.name = result.filename;
      this.setName(result.filename);
    }
    const name = this.name;
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
    annotatedStage.append(this.image(result.result_url, `${name} with its contours drawn`, result));
    let original = null;
    if (this.file) {
      this.objectUrl = URL.createObjectURL(this.file);
      original = this.image(this.objectUrl, `${name} as uploaded`, result);
      originalStage.append(original);
    }
    this.setDownloads(result);
    this.resultEl.hidden = false;

    // Browsers decode PNG and JPEG, but not TIFF (and not every BMP variant): then the annotated image carries the
    // overlay alone. So it does when the picked file is not at hand: a card brought back after a reload, or opened
    // from Recent results.
    const shown = original ? await original.decode().then(() => true, () => false) : false;
    let base = originalStage;
    if (!shown) {
      this.el.querySelector(".original").remove();
      if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
      base = annotatedStage;
      this.note.textContent = original
        ? `Your browser cannot display the original ${result.format.toUpperCase()} file, so only the annotated image is shown; the contour overlay is drawn over it.`
        : "The original picture is shown only on the page it was chosen on (it is not kept after a reload), so the contour overlay is drawn over the annotated image.";
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
    this.end();
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
    const stem = this.name.replace(/\.[^.]+$/, "") || "image";
    const contours = `/api/v1/images/${encodeURIComponent(result.task_id)}/contours`;
    const ext = result.result_url.split(".").pop();
    const links = [
      [".dl-image", result.result_url, `${stem}-contours.${ext}`, `Annotated ${ext === "jpg" ? "JPEG" : "PNG"}`],
      [".dl-json", contours, `${stem}-contours.json`, "Contours (JSON)"],
      [".dl-svg", `${contours}?format=svg`, `${stem}-contours.svg`, "SVG"],
      [".dl-geojson", `${contours}?format=geojson`, `${stem}-contours.geojson`, "GeoJSON"],
      [".dl-csv", `${contours}?format=csv`, `${stem}-contours.csv`, "CSV"],
    ];
    for (const [selector, href, name, text] of links) {
      const a = this.el.querySelector(selector);
      a.href = href;
      a.download = name;
      a.textContent = text;
      keyAwareLink(a, (message) => this.showError(message));
    }
    this.el.querySelector(".downloads").setAttribute("aria-label", `Downloads for ${this.name}`);
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
      `${data.contours.length} contours over ${this.name}. Arrow keys step through them, Escape clears.`,
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
      ...shapeRows(c),
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

/** The shape, intensity and calibrated measurements of a contour, as rows (none for results that lack them). */
function shapeRows(c) {
  if (c.solidity === undefined) return [];
  const px = (v) => `${number(v)} px`;
  const deg = (v) => `${number(v, 1)}°`;
  const rows = [
    ["solidity", "Solidity", number(c.solidity, 3)],
    ["extent", "Extent", number(c.extent, 3)],
    ["aspect_ratio", "Aspect ratio", number(c.aspect_ratio, 3)],
    ["equivalent_diameter", "Equivalent diameter", px(c.equivalent_diameter)],
    [
      "feret",
      "Feret diameter",
      `max ${px(c.feret.max)} at ${deg(c.feret.max_angle)}, min ${px(c.feret.min)} at ${deg(c.feret.min_angle)}`,
    ],
    [
      "min_area_rect",
      "Minimum rectangle",
      `${number(c.min_area_rect.size.width)} × ${px(c.min_area_rect.size.height)} at ${deg(c.min_area_rect.angle)}`,
    ],
    [
      "enclosing_circle",
      "Enclosing circle",
      `radius ${px(c.enclosing_circle.radius)} at (${number(c.enclosing_circle.center.x, 1)}, ${
        number(c.enclosing_circle.center.y, 1)
      })`,
    ],
    [
      "ellipse",
      "Fitted ellipse",
      c.ellipse
        ? `${number(c.ellipse.size.height)} × ${px(c.ellipse.size.width)} at ${deg(c.ellipse.angle)}, eccentricity ${
          number(c.eccentricity, 3)
        }`
        : "none (fewer than 5 points)",
    ],
    ["hu_moments", "Hu moments", c.hu_moments.map((v) => v.toPrecision(3)).join(", ")],
    [
      "intensity",
      "Intensity",
      c.mean_intensity === null
        ? "no pixels of its own"
        : `${number(c.mean_intensity, 1)} ± ${number(c.std_intensity, 1)} (gray level)`,
    ],
  ];
  const k = c.calibrated;
  if (k) {
    rows.push(
      ["calibrated_area", `Area (${k.unit}²)`, number(k.area, 4)],
      ["calibrated_perimeter", `Perimeter (${k.unit})`, number(k.perimeter, 4)],
      ["calibrated_feret", `Feret max / min (${k.unit})`, `${number(k.feret_max, 4)} / ${number(k.feret_min, 4)}`],
    );
  }
  return rows;
}

function pathData(points) {
  if (!points.length) return "";
  return `M${points.map(([x, y]) => `${x} ${y}`).join("L")}Z`;
}

restoreCards();
