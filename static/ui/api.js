// Shared by both pages: the optional API key, fetch with it, and the API's errors put into words.

const KEY_STORAGE = "bip.apiKey";

/** The stored API key, or "" when none is set (or storage is blocked). */
export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return "";
  }
}

/** Stores the API key ("" forgets it). */
export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Private modes may refuse storage: the key then lasts for this page only.
  }
  sessionKey = key;
}

let sessionKey = getApiKey();

/** Whether requests carry a key (then EventSource, which cannot send headers, is not used). */
export function hasApiKey() {
  return Boolean(sessionKey);
}

/** An error the API (or the network) reported, with the machine code the API sent. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** fetch() with the API key header; throws ApiError for network failures and non-2xx answers. */
export async function apiFetch(path, init = {}) {
  const headers = new Headers(init.headers);
  if (sessionKey) headers.set("X-API-Key", sessionKey);
  let res;
  try {
    res = await fetch(path, { ...init, headers });
  } catch (err) {
    throw new ApiError(0, "network_error", err instanceof Error ? err.message : String(err));
  }
  if (res.ok) return res;
  let code = `http_${res.status}`;
  let message = res.statusText;
  try {
    const body = await res.json();
    if (body?.error?.code) ({ code, message } = body.error);
  } catch {
    // Not the API's JSON (a proxy's error page): the status alone decides the wording.
  }
  throw new ApiError(res.status, code, message, res.headers.get("retry-after"));
}

/** Public limits from /info (no key needed), or {} when it cannot be read. */
export async function loadLimits() {
  try {
    const res = await fetch("/info");
    if (!res.ok) return {};
    const { config } = await res.json();
    return {
      maxFileSize: config?.max_file_size,
      maxPixels: config?.max_pixels,
      keysRequired: config?.api_keys_set > 0,
    };
  } catch {
    return {};
  }
}

/** 10485760 → "10 MiB". */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return "";
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : Number(n.toFixed(1))} ${units[i]}`;
}

const sentence = (text, { capital = true } = {}) => {
  const t = String(text ?? "").trim();
  if (!t) return "";
  return (capital ? t[0].toUpperCase() : t[0]) + t.slice(1) + (/[.!?…]$/.test(t) ? "" : ".");
};

/**
 * Puts the form's labels in place of the API's field names inside a message ("must not exceed canny_high" → "must not
 * exceed “Canny high”"). Only snake_case words are looked up: a plain word like "threshold" may just be English.
 */
const withLabels = (text, fieldLabel) =>
  String(text ?? "").replace(/\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b/g, (word) => {
    const label = fieldLabel(word);
    return label && label !== word ? `“${label}”` : word;
  });

/** Retry-After (seconds or an HTTP date) in milliseconds; 0 when absent or unreadable. */
export function retryAfterMs(retryAfter) {
  if (!retryAfter) return 0;
  let seconds = Number(retryAfter);
  if (!Number.isFinite(seconds)) seconds = (Date.parse(retryAfter) - Date.now()) / 1000;
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

function retryWords(retryAfter) {
  if (!retryAfter) return "in a moment";
  let seconds = Number(retryAfter);
  // Retry-After may also be an HTTP date.
  if (!Number.isFinite(seconds)) seconds = Math.round((Date.parse(retryAfter) - Date.now()) / 1000);
  if (!Number.isFinite(seconds) || seconds <= 0) return "in a moment";
  if (seconds < 90) return `in ${seconds} second${seconds === 1 ? "" : "s"}`;
  return `in about ${Math.round(seconds / 60)} minutes`;
}

/**
 * What went wrong, in words a person can act on. `ctx.limits` holds /info's limits, `ctx.fieldLabel(name)` names a
 * form field.
 */
export function friendlyError(err, ctx = {}) {
  const { limits = {}, fieldLabel = (n) => n } = ctx;
  const code = err?.code ?? "unknown";
  const message = err?.message ?? "";
  if (err?.status === 429 || code === "rate_limited" || code === "too_many_requests") {
    return `Too many requests right now — try again ${retryWords(err?.retryAfter)}.`;
  }
  switch (code) {
    case "network_error":
      return "Could not reach the service — check your connection and that the server is running, then try again.";
    case "file_too_large": {
      const limit = limits.maxFileSize ?? Number(/limit of (\d+) bytes/.exec(message)?.[1]);
      return Number.isFinite(limit) ? `File too large — the limit is ${formatBytes(limit)}.` : "File too large.";
    }
    case "not_an_image":
      return "This file is not an image — choose a JPEG, PNG, BMP or TIFF picture.";
    case "unsupported_image":
      return `This kind of image cannot be processed: ${sentence(message)} JPEG, PNG, BMP and TIFF work.`;
    case "corrupt_image":
      return `The file looks damaged and could not be read: ${sentence(message)}`;
    case "empty_file":
      return "The file is empty (0 bytes) — choose another one.";
    case "missing_file":
      return "No file was sent — choose an image first.";
    case "image_too_large": {
      const mp = limits.maxPixels ? ` — the limit is ${Number((limits.maxPixels / 1e6).toFixed(1))} megapixels` : "";
      return `The image has too many pixels to process${mp}. Try a smaller version.`;
    }
    case "service_unavailable":
      return "The service is busy or restarting — try again in a moment.";
    case "validation_error": {
      // The API names the field first: "blur: must be 0 (off) or odd".
      const m = /^([\w.]+):\s*(.*)$/.exec(message);
      if (!m) return `One of the options is not valid: ${sentence(withLabels(message, fieldLabel))}`;
      return `Check the option “${fieldLabel(m[1])}”: ${sentence(withLabels(m[2], fieldLabel), { capital: false })}`;
    }
    case "unauthorized":
      return sessionKey
        ? "The API key was not accepted — check it under “API key” at the top of the page."
        : "This server needs an API key — enter it under “API key” at the top of the page.";
    case "unsupported_media_type":
      return "The upload did not arrive as a form — reload the page and try again.";
    case "not_found":
      return "The service no longer knows this job — it may have been deleted.";
    case "poll_timeout":
      return "Still not finished — it may be waiting for a free worker. Look for it under Recent results later.";
    case "timeout":
      return "Processing took too long and was stopped — try a smaller version of the image.";
    case "processing_error":
      return `Processing failed: ${sentence(message)}`;
    case "cancelled":
      return "You cancelled this job; it will not be processed.";
    case "task_finished":
      return "This job had already finished, so there was nothing left to cancel.";
    default:
      if (err?.status >= 500) {
        return "The server ran into a problem — try again; if it keeps happening, tell its operator.";
      }
      return message ? `Something went wrong: ${sentence(message)}` : "Something went wrong — try again.";
  }
}

/**
 * Makes the link follow through apiFetch when an API key is set: a plain navigation cannot carry the header. Links with
 * `download` are saved, others opened in a new tab. `onError` shows what went wrong (an alert without it).
 */
export function keyAwareLink(link, onError = (text) => alert(text)) {
  link.addEventListener("click", async (event) => {
    if (!sessionKey || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    try {
      const blob = await (await apiFetch(link.href)).blob();
      const url = URL.createObjectURL(blob);
      if (link.hasAttribute("download")) {
        const a = document.createElement("a");
        a.href = url;
        a.download = link.getAttribute("download") || "";
        a.click();
      } else {
        globalThis.open(url, "_blank", "noopener");
      }
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      link.title = friendlyError(err);
      onError(friendlyError(err));
    }
  });
}

/** Wires the "API key" box of a page; `onChange` runs after the key is saved or forgotten. */
export function bindApiKeyBox(onChange = () => {}, keysRequired = false) {
  const box = document.getElementById("api-key-box");
  const input = document.getElementById("api-key");
  const state = document.getElementById("api-key-state");
  const show = () => {
    state.textContent = sessionKey ? "set" : keysRequired ? "required by this server" : "not set";
    state.classList.toggle("warn", !sessionKey && keysRequired);
  };
  input.value = sessionKey;
  if (keysRequired && !sessionKey) box.open = true;
  show();
  document.getElementById("api-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    show();
    onChange();
  });
  document.getElementById("api-key-clear").addEventListener("click", () => {
    input.value = "";
    setApiKey("");
    show();
    onChange();
  });
  return {
    setRequired(required) {
      keysRequired = required;
      if (required && !sessionKey) box.open = true;
      show();
    },
  };
}

/** Creates an element with an optional class and text (text, never HTML: API data is not markup). */
export function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}
