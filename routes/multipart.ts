import { Buffer } from "node:buffer";
import { createHash, type Hash } from "node:crypto";
import { TIMED_OUT, withDeadline } from "../deadline.ts";
import { AppError, BadRequest, TooLarge } from "../errors.ts";

/**
 * One `file` part. Up to SPILL_BYTES it is kept in `bytes`; a larger one was streamed to its {@link spillPath} instead
 * (`bytes` null), so no upload holds more than that much memory while it arrives. `sha256` (hex) is there when the
 * options asked for it. `tooLarge`: the part passed maxFileBytes and was dropped as it streamed (only with
 * `oversized: "mark"`).
 */
export interface ReceivedFile {
  name: string;
  size: number;
  bytes: Uint8Array | null;
  sha256?: string;
  tooLarge?: boolean;
}

/** Where the `index`th file part of a form is spilled: the temp path itself for the first, `${tempPath}-i` after. */
export function spillPath(tempPath: string, index: number): string {
  return index === 0 ? tempPath : `${tempPath}-${index}`;
}

/** What a streamed multipart upload held: its text fields, and its file parts in the order they came. */
export interface ReceivedForm {
  fields: Record<string, string>;
  /** The first `file` part; null when the form had none. */
  file: ReceivedFile | null;
  /** Every `file` part (at most `maxFiles`). */
  files: ReceivedFile[];
}

/** Limits and destination for one upload. */
export interface ReceiveOptions {
  /**
   * Where a `file` part over SPILL_BYTES is written (created; the caller renames or removes it); the second and later
   * parts of a form taking several go to {@link spillPath}.
   */
  tempPath: string;
  /** Largest file part; the limit reported in the 413. */
  maxFileBytes: number;
  /** How many `file` parts the form may hold (1 unless given); one more is refused with too_many_files. */
  maxFiles?: number;
  /**
   * What a file part over maxFileBytes does: "refuse" (the default) ends the upload with 413; "mark" drops that part's
   * bytes as they stream, flags it `tooLarge` and goes on with the next part (a batch, whose other files stand).
   */
  oversized?: "refuse" | "mark";
  /** Most bytes of file parts held in memory at once over the whole form (SPILL_BYTES unless given). */
  maxHeldBytes?: number;
  /** Largest whole body (the file plus fields, boundaries and part headers). */
  maxBodyBytes: number;
  /** Hash the file part as it streams past, so that a spilled file need not be read back for it. */
  sha256?: boolean;
  /**
   * Longest wait for the next piece of the body, in ms; past it the upload fails with 408 request_timeout (a client
   * trickling its body would otherwise hold a connection and a partial file for as long as it likes).
   */
  idleTimeoutMs?: number;
}

// Option values are short words and numbers; a callback URL is the longest legitimate field.
const MAX_FIELD_BYTES = 4096;
const MAX_FIELDS = 64;
const MAX_HEADER_BYTES = 8192;
const CRLF2 = Buffer.from("\r\n\r\n");
const WRITE_BYTES = 64 * 1024;
/** A file part up to this size stays in memory (one write later, no read back); a larger one streams to disk. */
export const SPILL_BYTES = 1024 * 1024;

/**
 * Reads a multipart/form-data body as it streams in, writing the `file` part straight to disk: memory stays bounded
 * whatever the upload's size, and boundaries are found by a skip search that looks at a fraction of the bytes (Deno's
 * own form parser scans byte by byte in JavaScript, the largest cost of an upload in the bench's profile). Refuses what the form schema
 * alone would accept silently: a second file, files under other names, oversized or too many text fields.
 */
export async function receiveMultipart(request: Request, options: ReceiveOptions): Promise<ReceivedForm> {
  const type = request.headers.get("content-type") ?? "";
  const boundary = /^multipart\/form-data\s*;.*?boundary=(?:"([^"]+)"|([^\s;]+))/i.exec(type);
  if (!boundary) {
    await request.body?.cancel().catch(() => {});
    if (/^multipart\/form-data/i.test(type)) throw malformed("no boundary in its Content-Type");
    throw new AppError("unsupported_media_type", "send the image as multipart/form-data with a 'file' field");
  }
  const declaredHeader = request.headers.get("content-length");
  const declared = declaredHeader !== null && !request.headers.has("transfer-encoding") ? Number(declaredHeader) : NaN;
  if (declared > options.maxBodyBytes) {
    await request.body?.cancel().catch(() => {});
    throw new TooLarge(options.maxFileBytes);
  }
  const delimiter = Buffer.from(`\r\n--${boundary[1] ?? boundary[2]}`);
  const findDelimiter = byteFinder(delimiter);
  const reader = request.body?.getReader();
  if (!reader) throw malformed("the body is empty");

  const fields: Record<string, string> = {};
  const files: ReceivedFile[] = [];
  const maxFiles = options.maxFiles ?? 1;
  const maxHeld = options.maxHeldBytes ?? SPILL_BYTES;
  // The current file part's state: its entry, hash, spill file and, while it is small enough to keep, its bytes
  // (appended once, never joined again at the end).
  let file: ReceivedFile | null = null;
  let hash: Hash | null = null;
  let sink: Deno.FsFile | null = null;
  let held: ByteQueue | null = null;
  let spilled: string | null = null;
  // Bytes of earlier file parts kept in memory.
  let heldTotal = 0;
  const misplaced: string[] = [];
  let received = 0;
  // A CRLF in front lets the first boundary be found like every later one.
  const queue = new ByteQueue(Buffer.from("\r\n"));
  let buf = queue.view();
  // Where the next boundary search starts: what was searched before holds none (its last bytes are searched again).
  let searched = 0;
  let state: "preamble" | "after-boundary" | "headers" | "body" | "done" = "preamble";
  let part: { name: string; kind: "file" | "text" | "skip"; text: Uint8Array[]; textBytes: number } | null = null;

  const consume = (n: number) => {
    queue.consume(n);
    buf = queue.view();
    searched = Math.max(0, searched - n);
  };
  const more = async (): Promise<boolean> => {
    const next = options.idleTimeoutMs ? await withDeadline(reader.read(), options.idleTimeoutMs) : await reader.read();
    if (next === TIMED_OUT) {
      throw new AppError(
        "request_timeout",
        `the upload's body sent nothing for ${options.idleTimeoutMs} ms (BODY_IDLE_TIMEOUT_MS)`,
      );
    }
    const { done, value } = next;
    if (done) return false;
    received += value.length;
    if (received > options.maxBodyBytes) throw new TooLarge(options.maxFileBytes);
    queue.append(value);
    buf = queue.view();
    return true;
  };
  const emit = async (data: Buffer) => {
    if (!part || data.length === 0) return;
    if (part.kind === "file") {
      file!.size += data.length;
      if (file!.size > options.maxFileBytes) {
        if (options.oversized !== "mark") throw new TooLarge(options.maxFileBytes);
        // The rest of this part is read and dropped; what was kept of it goes now.
        file!.tooLarge = true;
        await dropFile();
        part.kind = "skip";
        return;
      }
      hash?.update(data);
      if (!sink && file!.size <= SPILL_BYTES && heldTotal + file!.size <= maxHeld) {
        held!.append(data);
        return;
      }
      if (!sink) {
        spilled = spillPath(options.tempPath, files.length - 1);
        sink = await Deno.open(spilled, { write: true, createNew: true });
        await writeAll(sink, held!.view());
        held = null;
      }
      await writeAll(sink, data);
    } else if (part.kind === "text") {
      part.textBytes += data.length;
      if (part.textBytes > MAX_FIELD_BYTES) {
        throw new BadRequest("validation_error", `${part.name}: longer than ${MAX_FIELD_BYTES} bytes`);
      }
      part.text.push(Uint8Array.from(data));
    }
  };
  const dropFile = async () => {
    (sink as Deno.FsFile | null)?.close();
    sink = null;
    held = null;
    hash = null;
    if (spilled) await Deno.remove(spilled).catch(() => {});
    spilled = null;
  };
  const finishFile = () => {
    if (!file) return;
    if (sink) {
      (sink as Deno.FsFile).close();
      sink = null;
    } else if (held) {
      file.bytes = held.take();
      heldTotal += file.size;
    }
    if (hash) file.sha256 = (hash as Hash).digest("hex");
    file = null;
    hash = null;
    held = null;
    spilled = null;
  };
  const finishPart = () => {
    if (part?.kind === "file" || (part?.kind === "skip" && file)) finishFile();
    if (part?.kind === "text") {
      if (Object.keys(fields).length >= MAX_FIELDS) throw new BadRequest("validation_error", "too many form fields");
      // Two values for one option leave it unclear which the client meant (FormData.get would take the first).
      if (Object.hasOwn(fields, part.name)) {
        throw new BadRequest("validation_error", `${part.name}: given more than once`);
      }
      fields[part.name] = new TextDecoder().decode(Buffer.concat(part.text));
    }
    part = null;
  };

  try {
    while (state !== "done") {
      if (state === "preamble" || state === "body") {
        const at = findDelimiter(buf, searched);
        if (at < 0) {
          // Everything but a tail that could be the start of a boundary is part data (or preamble, dropped); part
          // data is written in pieces of at least WRITE_BYTES, so small network reads do not each cost a write.
          const keep = Math.min(buf.length, delimiter.length - 1);
          searched = buf.length - keep;
          if (state === "preamble" || buf.length - keep >= WRITE_BYTES) {
            if (state === "body") await emit(buf.subarray(0, buf.length - keep));
            consume(buf.length - keep);
          }
          if (!(await more())) throw malformed("it ends before its closing boundary");
          continue;
        }
        if (state === "body") {
          await emit(buf.subarray(0, at));
          finishPart();
        }
        consume(at + delimiter.length);
        state = "after-boundary";
      } else if (state === "after-boundary") {
        if (buf.length < 2 && !(await more())) throw malformed("it ends right after a boundary");
        if (buf.length < 2) continue;
        if (buf[0] === 0x2d && buf[1] === 0x2d) state = "done";
        else {
          // Transport padding (spaces, tabs) may follow a boundary before its CRLF.
          let i = 0;
          while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
          if (i + 2 > buf.length) {
            if (!(await more())) throw malformed("it ends right after a boundary");
            continue;
          }
          if (buf[i] !== 0x0d || buf[i + 1] !== 0x0a) throw malformed("a boundary is not followed by a line break");
          consume(i + 2);
          state = "headers";
        }
      } else if (state === "headers") {
        const end = buf.indexOf(CRLF2);
        if (end < 0) {
          if (buf.length > MAX_HEADER_BYTES) throw malformed("a part's headers are too long");
          if (!(await more())) throw malformed("it ends inside a part's headers");
          continue;
        }
        const disposition = parseDisposition(buf.subarray(0, end).toString("utf8"));
        consume(end + 4);
        if (!disposition) throw malformed("a part has no form-data Content-Disposition with a name");
        const { name, filename } = disposition;
        let kind: "file" | "text" | "skip" = "text";
        // The 'file' part is the image even without a filename (curl -F 'file=<photo.png' sends it as a text part).
        if (filename !== undefined || name === "file") {
          if (name !== "file") {
            misplaced.push(name);
            kind = "skip";
          } else if (files.length >= maxFiles) {
            throw new BadRequest(
              "too_many_files",
              maxFiles === 1
                ? "send one image per upload (got more than one file)"
                : `a batch takes at most ${maxFiles} files (MAX_BATCH_FILES); send the rest in another batch`,
            );
          } else {
            kind = "file";
            file = { name: filename ?? "", size: 0, bytes: null };
            files.push(file);
            // Sized once from the Content-Length where there is one: grown by doubling, a 500 KB file took 2 MB of
            // buffers, and every such byte brings the process's next full garbage collection closer.
            const room = Math.min(SPILL_BYTES, maxHeld - heldTotal, declared - received + buf.length);
            held = new ByteQueue(undefined, Number.isFinite(room) ? room : 0);
            if (options.sha256) hash = createHash("sha256");
          }
        }
        part = { name, kind, text: [], textBytes: 0 };
        state = "body";
      }
    }
    // An epilogue after the closing boundary is read and dropped, so the connection stays usable, but it counts
    // against the body limit like every other byte: a body that goes on past it is cut off with 413.
    consume(buf.length);
    while (await more()) consume(buf.length);
    if (misplaced.length && !files.length) {
      throw new BadRequest(
        "missing_file",
        `file: the form needs a 'file' field holding the image (found a file under '${misplaced[0]}')`,
      );
    }
    if (misplaced.length) {
      throw new BadRequest("validation_error", `${misplaced[0]}: only the field 'file' may hold a file`);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    // Assigned inside `emit`, which the compiler does not follow.
    (sink as Deno.FsFile | null)?.close();
    // The spilled parts would never be read: none is left behind.
    for (let i = 0; i < files.length; i++) await Deno.remove(spillPath(options.tempPath, i)).catch(() => {});
    throw err;
  }
  return { fields, file: files[0] ?? null, files };
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await file.write(data.subarray(off));
}

function malformed(why: string): BadRequest {
  return new BadRequest("malformed_form", `the multipart body could not be parsed: ${why}`);
}

/** The name (and filename, for file parts) from a part's Content-Disposition: form-data header. */
function parseDisposition(headers: string): { name: string; filename?: string } | null {
  const line = headers.split("\r\n").find((h) => /^content-disposition\s*:/i.test(h));
  if (!line || !/:\s*form-data\b/i.test(line)) return null;
  const param = (key: string) => {
    const m = new RegExp(`;\\s*${key}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, "i").exec(line);
    // Browsers (and the HTML spec) send ", CR and LF in names as %22, %0D and %0A; Fetch's parser decodes those.
    const value = m ? (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]) : undefined;
    return value?.replace(/%(22|0D|0A)/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  };
  const name = param("name");
  if (name === undefined) return null;
  return { name, filename: extendedValue(param("filename\\*")) ?? param("filename") };
}

/** Decodes an RFC 5987 value (`UTF-8''na%C3%AFve.png`), which some clients send as `filename*`; undefined if not one. */
function extendedValue(value: string | undefined): string | undefined {
  const m = value && /^(utf-8|iso-8859-1)'[^']*'(.*)$/i.exec(value);
  if (!m) return undefined;
  try {
    return m[1].toLowerCase() === "utf-8"
      ? decodeURIComponent(m[2])
      : m[2].replace(/%([0-9a-f]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  } catch {
    return undefined;
  }
}

/**
 * A Boyer–Moore–Horspool search for `needle`: it compares the byte under the needle's end and skips up to the
 * needle's length at once, so a 40-byte boundary costs about one look per 40 bytes of image data. Buffer.indexOf,
 * used before, is JavaScript in Deno that looks at every byte (0.8 ms per upload in the bench's API profile).
 */
function byteFinder(needle: Uint8Array): (haystack: Uint8Array, from: number) => number {
  const last = needle.length - 1;
  const skip = new Int32Array(256).fill(needle.length);
  for (let i = 0; i < last; i++) skip[needle[i]] = last - i;
  const tail = needle[last];
  return (haystack, from) => {
    const end = haystack.length - needle.length;
    for (let i = Math.max(0, from); i <= end; i += skip[haystack[i + last]]) {
      if (haystack[i + last] !== tail) continue;
      let j = last - 1;
      while (j >= 0 && haystack[i + j] === needle[j]) j--;
      if (j < 0) return i;
    }
    return -1;
  };
}

/** Bytes received but not yet consumed, in one growable buffer: appending is amortised O(1), unlike concatenation. */
class ByteQueue {
  #store: Uint8Array;
  #start = 0;
  #end: number;

  /** `capacity`: bytes to make room for at once (at least 64 KiB). */
  constructor(initial = new Uint8Array(), capacity = 0) {
    this.#store = new Uint8Array(Math.max(64 * 1024, initial.length, capacity));
    this.#store.set(initial);
    this.#end = initial.length;
  }

  append(chunk: Uint8Array): void {
    if (this.#end + chunk.length > this.#store.length) {
      const live = this.#end - this.#start;
      const store = live + chunk.length > this.#store.length / 2
        ? new Uint8Array(Math.max(this.#store.length * 2, live + chunk.length))
        : this.#store;
      if (store === this.#store) this.#store.copyWithin(0, this.#start, this.#end);
      else store.set(this.#store.subarray(this.#start, this.#end));
      this.#store = store;
      this.#start = 0;
      this.#end = live;
    }
    this.#store.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  consume(n: number): void {
    this.#start += n;
  }

  /**
   * The unconsumed bytes, to keep: a view, unless the buffer is more than twice their size (a batch's first file, sized
   * from the whole body), when they are copied out so the rest can go.
   */
  take(): Uint8Array {
    const bytes = this.#store.subarray(this.#start, this.#end);
    return this.#store.length > 2 * Math.max(64 * 1024, bytes.length) ? bytes.slice() : bytes;
  }

  /** The same view as a Buffer, for its native search. */
  view(): Buffer {
    return Buffer.from(this.#store.buffer, this.#store.byteOffset + this.#start, this.#end - this.#start);
  }
}
