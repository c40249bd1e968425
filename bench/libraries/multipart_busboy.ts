// receiveMultipart on @fastify/busboy, for bench/libraries/matrix.ts and bench/libraries/multipart.ts: the same
// options, limits, errors and result as routes/multipart.ts (as committed: one file part), with busboy finding the
// boundaries and parsing the part headers.
// deno-lint-ignore no-import-prefix -- a library tried, not a dependency (run with its own lock file)
import { Busboy } from "npm:@fastify/busboy@3.2.6";
import { Buffer } from "node:buffer";
import { createHash, type Hash } from "node:crypto";
import { TIMED_OUT, withDeadline } from "../../deadline.ts";
import { AppError, BadRequest, TooLarge } from "../../errors.ts";
import type { Readable } from "node:stream";

// The interface of routes/multipart.ts with one file part, as the matrix (tests/multipart_test.ts) expects it.
export interface ReceivedForm {
  fields: Record<string, string>;
  file: { name: string; size: number; bytes: Uint8Array | null; sha256?: string } | null;
}
export interface ReceiveOptions {
  tempPath: string;
  maxFileBytes: number;
  maxBodyBytes: number;
  sha256?: boolean;
  idleTimeoutMs?: number;
}
export const SPILL_BYTES = 1024 * 1024;
const MAX_FIELD_BYTES = 4096;
const MAX_FIELDS = 64;
const SPILL = SPILL_BYTES;

function malformed(why: string): BadRequest {
  return new BadRequest("malformed_form", `the multipart body could not be parsed: ${why}`);
}

export async function receiveMultipart(request: Request, options: ReceiveOptions): Promise<ReceivedForm> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^multipart\/form-data/i.test(type)) {
    await request.body?.cancel().catch(() => {});
    throw new AppError("unsupported_media_type", "send the image as multipart/form-data with a 'file' field");
  }
  const declared = request.headers.get("content-length");
  if (declared !== null && !request.headers.has("transfer-encoding") && Number(declared) > options.maxBodyBytes) {
    await request.body?.cancel().catch(() => {});
    throw new TooLarge(options.maxFileBytes);
  }
  let bb: InstanceType<typeof Busboy>;
  try {
    bb = new Busboy({
      headers: { "content-type": type },
      // The 'file' part is the image even without a filename (curl -F 'file=<photo.png').
      isPartAFile: (name, _type, filename) => filename !== undefined || name === "file",
      limits: { fileSize: options.maxFileBytes, fieldSize: MAX_FIELD_BYTES, fields: MAX_FIELDS, files: 1 },
    });
  } catch (err) {
    await request.body?.cancel().catch(() => {});
    throw malformed(err instanceof Error ? err.message : String(err));
  }
  const reader = request.body?.getReader();
  if (!reader) throw malformed("the body is empty");

  const fields: Record<string, string> = {};
  let file: ReceivedForm["file"] = null;
  const misplaced: string[] = [];
  let failure: unknown = null;
  const fail = (err: unknown) => {
    failure ??= err;
  };
  const pending: Promise<void>[] = [];
  let sinkToClose: Deno.FsFile | null = null;

  bb.on("field", (name: string | undefined, value: string, _nameTruncated: boolean, truncated: boolean) => {
    if (name === undefined) return fail(malformed("a part has no form-data Content-Disposition with a name"));
    if (truncated) return fail(new BadRequest("validation_error", `${name}: longer than ${MAX_FIELD_BYTES} bytes`));
    if (Object.hasOwn(fields, name)) return fail(new BadRequest("validation_error", `${name}: given more than once`));
    fields[name] = value;
  });
  bb.on("fieldsLimit", () => fail(new BadRequest("validation_error", "too many form fields")));
  bb.on("filesLimit", () => {
    fail(new BadRequest("too_many_files", "send one image per upload (got more than one file)"));
  });
  bb.on("file", (name: string, stream: Readable, filename?: string) => {
    if (name !== "file") {
      misplaced.push(name);
      stream.resume();
      return;
    }
    // Browsers send ", CR and LF in names as %22, %0D and %0A (the HTML spec); busboy leaves them encoded.
    const name_ = (filename ?? "").replace(/%(22|0D|0A)/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
    const entry: NonNullable<ReceivedForm["file"]> = { name: name_, size: 0, bytes: null };
    file = entry;
    const hash: Hash | null = options.sha256 ? createHash("sha256") : null;
    stream.on("limit", () => fail(new TooLarge(options.maxFileBytes)));
    pending.push(
      (async () => {
        const held: Buffer[] = [];
        let sink: Deno.FsFile | null = null;
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          entry.size += chunk.length;
          hash?.update(chunk);
          if (!sink && entry.size <= SPILL) {
            held.push(chunk);
            continue;
          }
          if (!sink) {
            sink = sinkToClose = await Deno.open(options.tempPath, { write: true, createNew: true });
            for (const h of held) await writeAll(sink, h);
            held.length = 0;
          }
          await writeAll(sink, chunk);
        }
        if (!sink) entry.bytes = new Uint8Array(Buffer.concat(held));
        if (hash) entry.sha256 = hash.digest("hex");
      })().catch(fail),
    );
  });
  const finished = new Promise<void>((resolve) => {
    bb.on("finish", resolve);
    bb.on("error", (err: Error) => {
      fail(malformed(/Unexpected end/i.test(err.message) ? "it ends before its closing boundary" : err.message));
      resolve();
    });
  });

  let received = 0;
  try {
    while (!failure) {
      const next = options.idleTimeoutMs
        ? await withDeadline(reader.read(), options.idleTimeoutMs)
        : await reader.read();
      if (next === TIMED_OUT) {
        throw new AppError("request_timeout", `the upload's body sent nothing for ${options.idleTimeoutMs} ms`);
      }
      if (next.done) break;
      received += next.value.length;
      if (received > options.maxBodyBytes) throw new TooLarge(options.maxFileBytes);
      if (!bb.write(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.length))) {
        await new Promise((resolve) => bb.once("drain", resolve));
      }
    }
    if (failure) throw failure;
    bb.end();
    await finished;
    await Promise.all(pending);
    if (failure) throw failure;
  } catch (err) {
    await reader.cancel().catch(() => {});
    bb.destroy?.();
    throw err;
  } finally {
    (sinkToClose as Deno.FsFile | null)?.close();
  }
  if (misplaced.length && !file) {
    throw new BadRequest(
      "missing_file",
      `file: the form needs a 'file' field holding the image (found a file under '${misplaced[0]}')`,
    );
  }
  if (misplaced.length) {
    throw new BadRequest("validation_error", `${misplaced[0]}: only the field 'file' may hold a file`);
  }
  return { fields, file };
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await file.write(data.subarray(off));
}
