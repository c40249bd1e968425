import { type Job, UnrecoverableError } from "bullmq";
import type { Config } from "../config.ts";
import type { JobFailureCode } from "../errors.ts";
import { assertPixelCount, readImageSize } from "../imaging/decode.ts";
import { type ImageFormat, sniffFormat } from "../imaging/format.ts";
import { ImageError } from "../imaging/image_error.ts";
import { checkStructure } from "../imaging/structure.ts";
import { OutboundRefused, parseOutboundUrl, resolveAll, resolveChecked, type Resolver } from "../net/outbound.ts";
import { type PinnedResponse, requestPinned } from "../net/pinned_request.ts";
import { formatFailure } from "../queue/contour_queue.ts";
import type { ContourJob } from "../queue/job.ts";
import { uploadName } from "../storage/files.ts";
import type { ObjectStore } from "../storage/object_store.ts";
import { matchSourceHost, sourceHostRefusal } from "./source_url.ts";

// Image hosts commonly redirect (http → https, a CDN's signed URL); each hop is checked like the first URL, and a
// chain longer than this is a loop or an abuse, not an image.
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// More than the format sniffer needs (BMP's header is 26 bytes), as checkStructure reads it.
const HEAD_BYTES = 256;
// How often (in bytes received) the declared size is looked for again in a JPEG or TIFF whose header is not in yet:
// an EXIF block before a JPEG's frame header is usually a few KB to 64 KB.
const SIZE_RETRY_BYTES = 64 * 1024;

/** A download that failed: the job failure code, and whether another attempt might succeed. */
export class SourceError extends Error {
  constructor(readonly code: JobFailureCode, message: string, readonly transient = false) {
    super(message);
    this.name = "SourceError";
  }
}

/** How a download looks hosts up (a stub in tests) and what stops it early (the task's cancellation). */
export interface DownloadOptions {
  resolve?: Resolver;
  signal?: AbortSignal;
}

/** A downloaded image: its bytes (the structure already checked) and its format. */
export interface DownloadedImage {
  bytes: Uint8Array;
  format: ImageFormat;
}

/**
 * Downloads a source_url with the SSRF guard of every outbound request: each URL (the first and every redirect's) must
 * pass SOURCE_ALLOWED_HOSTS, its host is resolved once and refused if internal (unless listed exactly), and the
 * connection is pinned to the addresses checked. The whole download is bounded by SOURCE_TIMEOUT_MS; the body is read
 * only while it stays within MAX_FILE_SIZE and, once its header is in, MAX_PIXELS, and must then pass the upload's
 * structure check. Throws SourceError or ImageError, or `signal`'s reason once it is aborted.
 */
export async function downloadSource(
  config: Config,
  href: string,
  { resolve = resolveAll, signal }: DownloadOptions = {},
): Promise<DownloadedImage> {
  const abort = new AbortController();
  const stop = () => abort.abort(signal?.reason);
  if (signal?.aborted) stop();
  signal?.addEventListener("abort", stop, { once: true });
  // A timer of our own rather than AbortSignal.timeout(), whose timer outlives a quick download.
  const timer = setTimeout(() => {
    const message = `the download took longer than SOURCE_TIMEOUT_MS (${config.SOURCE_TIMEOUT_MS} ms)`;
    abort.abort(new SourceError("source_timeout", message, true));
  }, config.SOURCE_TIMEOUT_MS);
  try {
    let url = new URL(href);
    for (let redirects = 0;; redirects++) {
      const answer = await requestOnce(config, url, redirects > 0, resolve, abort.signal);
      const location = answer.headers.get("location");
      if (REDIRECT_STATUSES.has(answer.status) && location !== null) {
        await answer.body.cancel();
        if (redirects === MAX_REDIRECTS) {
          throw new SourceError("source_too_many_redirects", `the source redirected more than ${MAX_REDIRECTS} times`);
        }
        url = nextUrl(url, location);
        continue;
      }
      if (answer.status < 200 || answer.status > 299) {
        await answer.body.cancel();
        // A server error, a timeout or a rate limit may pass; a 404 or a 403 will not.
        const transient = answer.status >= 500 || answer.status === 408 || answer.status === 429;
        throw new SourceError("source_http_error", `the source answered HTTP ${answer.status}`, transient);
      }
      return await readImage(config, answer);
    }
  } catch (err) {
    throw abort.signal.aborted ? abort.signal.reason : err;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", stop);
  }
}

/** One request of a download: the host checks, one lookup, and a GET pinned to the addresses checked. */
async function requestOnce(
  config: Config,
  url: URL,
  redirected: boolean,
  resolve: Resolver,
  signal: AbortSignal,
): Promise<PinnedResponse> {
  const where = redirected ? "a redirect to " : "";
  const refusal = sourceHostRefusal(config, url);
  if (refusal) throw new SourceError("source_refused", `${where}${refusal}`);
  let addresses: string[];
  try {
    // A lookup cannot be aborted, and a resolver may take its own retries' time: the deadline does not wait for it.
    addresses = await untilAborted(
      resolveChecked(url, matchSourceHost(config, url.hostname) === "exact", resolve),
      signal,
    );
  } catch (err) {
    if (!(err instanceof OutboundRefused)) throw err;
    // A name with no address may be a resolver's passing failure; an internal address is the host's answer.
    if (err.reason === "unresolvable") throw new SourceError("source_unresolvable", `${where}${err.message}`, true);
    throw new SourceError("source_refused", `${where}${err.message}`);
  }
  try {
    return await requestPinned(url, addresses, {
      method: "GET",
      headers: {
        accept: "image/jpeg, image/png, image/tiff, image/bmp, image/*;q=0.8",
        "user-agent": "background-image-processor",
      },
    }, signal);
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    const reason = err instanceof Error ? err.message : String(err);
    throw new SourceError(
      "source_unreachable",
      `${where}${url.hostname} could not be downloaded from: ${reason}`,
      true,
    );
  }
}

/** `work`'s outcome, or `signal`'s reason as soon as it is aborted (the work itself then ends unobserved). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** The URL a redirect's Location names (relative to the current one), read by the same rules as a client's URL. */
function nextUrl(current: URL, location: string): URL {
  let next: URL | string;
  try {
    next = parseOutboundUrl(new URL(location, current).href);
  } catch {
    next = "not a valid URL";
  }
  if (typeof next === "string") {
    throw new SourceError("source_refused", `the source redirected to a URL that is ${next}`);
  }
  return next;
}

/**
 * Reads an answer's body while it stays within MAX_FILE_SIZE (a larger Content-Length is refused before reading), is
 * an image by its first bytes, and, once its header declares a size, within MAX_PIXELS: past any of these it stops
 * reading and closes the connection. The whole body must then pass checkStructure, as an uploaded file does.
 */
async function readImage(config: Config, answer: PinnedResponse): Promise<DownloadedImage> {
  const max = config.MAX_FILE_SIZE;
  const tooLarge = () =>
    new SourceError("source_too_large", `the source is larger than the limit of ${max} bytes (MAX_FILE_SIZE)`);
  const declared = Number(answer.headers.get("content-length") ?? NaN);
  if (declared > max) {
    await answer.body.cancel();
    throw tooLarge();
  }
  let buffer = new Uint8Array(Number.isInteger(declared) && declared > 0 ? declared : 64 * 1024);
  let length = 0;
  let format: ImageFormat | undefined;
  let sizeKnown = false;
  let nextSizeTry = 0;
  const reader = answer.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read().catch((err) => {
        // A connection that broke off, or a body that is not valid HTTP/1.1 framing (the timeout's abort is its own).
        if (err instanceof SourceError) throw err;
        const reason = err instanceof Error ? err.message : String(err);
        throw new SourceError("source_unreachable", `the download broke off: ${reason}`, true);
      });
      if (done) break;
      if (length + value.length > max) throw tooLarge();
      if (length + value.length > buffer.length) {
        const grown = new Uint8Array(Math.min(max, Math.max(buffer.length * 2, length + value.length)));
        grown.set(buffer.subarray(0, length));
        buffer = grown;
      }
      buffer.set(value, length);
      length += value.length;
      // Not an image (an HTML error page, say): known from the first bytes, so the rest is not read.
      if (!format && length >= HEAD_BYTES) format = sniffFormat(buffer.subarray(0, length));
      if (format && !sizeKnown && length >= nextSizeTry) {
        sizeKnown = checkDeclaredSize(format, buffer.subarray(0, length), config.MAX_PIXELS);
        nextSizeTry = length + SIZE_RETRY_BYTES;
      }
    }
  } finally {
    // Closes the connection when the body was not read to its end; nothing to do (or report) otherwise.
    await reader.cancel().catch(() => {});
  }
  if (length === 0) throw new ImageError("not_an_image", "the source answered with an empty body");
  const bytes = buffer.slice(0, length);
  return { bytes, format: checkStructure(bytes, config.MAX_PIXELS) };
}

/**
 * Throws image_too_large when the header in `head` (the body so far) declares more than `maxPixels`; false while the
 * header is not complete yet, true once the size has been read and is within the limit.
 */
function checkDeclaredSize(format: ImageFormat, head: Uint8Array, maxPixels: number): boolean {
  let size: { width: number; height: number };
  try {
    size = readImageSize(head);
  } catch {
    // A header cut off where the body has got to so far; the whole file is judged once it is in.
    return false;
  }
  assertPixelCount(format, size.width, size.height, maxPixels);
  return true;
}

/**
 * The upload of a job that named a source_url: downloaded (downloadSource), stored where an uploaded file of its
 * format would be, and written into the job (upload_path, format, size), so that a retry reads the stored file rather
 * than downloading it again. Failures become the job's: final ones (refused, too large, not an image, a 4xx) an
 * UnrecoverableError, the others retried.
 */
export async function storeSource(
  config: Config,
  store: ObjectStore,
  job: Job<ContourJob>,
  data: ContourJob,
  options: DownloadOptions = {},
): Promise<{ data: ContourJob; bytes: Uint8Array }> {
  if (!data.source_url) {
    throw new UnrecoverableError(formatFailure("invalid_job", "the job names neither an upload nor a source_url"));
  }
  let image: DownloadedImage;
  try {
    image = await downloadSource(config, data.source_url, options);
  } catch (err) {
    if (err instanceof ImageError) throw new UnrecoverableError(formatFailure(err.code, err.message));
    if (!(err instanceof SourceError)) throw err;
    const reason = formatFailure(err.code, err.message);
    throw err.transient ? new Error(reason) : new UnrecoverableError(reason);
  }
  const name = uploadName(data.task_id, image.format);
  await store.write("uploads", name, image.bytes);
  const stored: ContourJob = {
    ...data,
    upload_path: store.locate("uploads", name),
    format: image.format,
    size: image.bytes.length,
  };
  await job.updateData(stored);
  return { data: stored, bytes: image.bytes };
}
