import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { PAGE_BYTES } from "../imaging/byte_source.ts";
import { receiveMultipart, SPILL_BYTES } from "../routes/multipart.ts";
import { encodePng } from "../imaging/encode.ts";
import { fixture } from "./fixtures.ts";
import { listDir, startTestService, testTempDir, upload, uploadChunkedUntilAnswered, waitForTask } from "./harness.ts";

/** A request whose body arrives in chunks of `size` bytes (1 = every boundary split across reads). */
function chunked(body: Uint8Array, contentType: string, size: number): Request {
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= body.length) return controller.close();
      controller.enqueue(body.slice(offset, offset + size));
      offset += size;
    },
  });
  return new Request("http://localhost/upload", {
    method: "POST",
    body: stream,
    headers: { "content-type": contentType },
  });
}

async function encoded(form: FormData): Promise<{ body: Uint8Array; type: string }> {
  const request = new Request("http://localhost/upload", { method: "POST", body: form });
  return { body: new Uint8Array(await request.arrayBuffer()), type: request.headers.get("content-type")! };
}

Deno.test("receiveMultipart streams the file to disk and keeps the text fields", async (t) => {
  const dir = testTempDir();
  try {
    // Bytes that look like the start of a boundary ("\r\n--") inside the file must stay file data.
    const file = new Uint8Array(70_000).map((_, i) => i % 251);
    file.set(new TextEncoder().encode("\r\n--\r\n--x\r\n"), 1000);
    const form = new FormData();
    form.append("threshold", "binary");
    form.append("file", new File([file], 'a b".png'));
    form.append("color", "#ff0000");
    const { body, type } = await encoded(form);
    for (const size of [1, 7, 4096, body.length]) {
      await t.step(`read in chunks of ${size} bytes`, async () => {
        const tempPath = `${dir}/part-${size}`;
        const got = await receiveMultipart(chunked(body, type, size), {
          tempPath,
          maxFileBytes: 100_000,
          maxBodyBytes: 200_000,
        });
        assert.deepEqual(got.fields, { threshold: "binary", color: "#ff0000" });
        assert.deepEqual(got.file, { name: 'a b".png', size: file.length, bytes: file });
        // Under SPILL_BYTES: kept in memory, nothing written.
        assert.equal(await Deno.stat(tempPath).then(() => true, () => false), false);
      });
    }

    await t.step(
      "with a Content-Length, a kept file's buffer is sized once, and a batch keeps no more than its files",
      async () => {
        const withLength = (body: Uint8Array, type: string) => {
          const request = chunked(body, type, 4096);
          return new Request(request, { headers: { "content-type": type, "content-length": String(body.length) } });
        };
        const big = new Uint8Array(300_000).map((_, i) => (i * 13) % 256);
        const single = new FormData();
        single.append("file", new File([big], "big.png"));
        const one = await encoded(single);
        const got = await receiveMultipart(withLength(one.body, one.type), {
          tempPath: `${dir}/sized`,
          maxFileBytes: 400_000,
          maxBodyBytes: 400_000,
        });
        assert.deepEqual(got.file!.bytes, big);
        // Grown by doubling from 64 KiB it would be 512 KiB; sized from the body, it is the body's size at most.
        assert.ok(got.file!.bytes!.buffer.byteLength <= one.body.length, `${got.file!.bytes!.buffer.byteLength}`);

        const small = new Uint8Array(1000).map((_, i) => i % 7);
        const batch = new FormData();
        batch.append("file", new File([small], "small.png"));
        batch.append("file", new File([big], "big.png"));
        const two = await encoded(batch);
        const both = await receiveMultipart(withLength(two.body, two.type), {
          tempPath: `${dir}/batch`,
          maxFileBytes: 400_000,
          maxBodyBytes: 400_000,
          maxFiles: 2,
        });
        assert.deepEqual(both.files.map((f) => f.bytes), [small, big]);
        // The first file's buffer was sized from the whole body: its bytes were copied out of it.
        assert.equal(both.files[0].bytes!.buffer.byteLength, small.length);
      },
    );

    await t.step("a file over SPILL_BYTES streams to the temp path instead of memory", async () => {
      const big = new Uint8Array(SPILL_BYTES + 100_000).map((_, i) => (i * 7) % 256);
      const large = new FormData();
      large.append("file", new File([big], "big.png"));
      const { body, type } = await encoded(large);
      const got = await receiveMultipart(chunked(body, type, 16 * 1024), {
        tempPath: `${dir}/spilled`,
        maxFileBytes: 2 * SPILL_BYTES,
        maxBodyBytes: 3 * SPILL_BYTES,
      });
      assert.deepEqual(got.file, { name: "big.png", size: big.length, bytes: null });
      assert.deepEqual(await Deno.readFile(`${dir}/spilled`), big);
    });

    await t.step("a quoted boundary, a preamble and an epilogue", async () => {
      const raw = 'ignored preamble\r\n--b;1\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n' +
        "Content-Type: image/png\r\n\r\nPNGDATA\r\n--b;1--\r\nepilogue";
      const got = await receiveMultipart(
        chunked(new TextEncoder().encode(raw), 'multipart/form-data; boundary="b;1"', 3),
        { tempPath: `${dir}/quoted`, maxFileBytes: 100, maxBodyBytes: 1000 },
      );
      assert.deepEqual(got.file, { name: "x.png", size: 7, bytes: new TextEncoder().encode("PNGDATA") });
    });

    const refuse = async (raw: string, type: string, status: number, code: string, limits = [100, 1000]) => {
      await assert.rejects(
        () =>
          receiveMultipart(chunked(new TextEncoder().encode(raw), type, 5), {
            tempPath: `${dir}/${crypto.randomUUID()}`,
            maxFileBytes: limits[0],
            maxBodyBytes: limits[1],
          }),
        (e) => e instanceof AppError && e.status === status && e.code === code,
      );
    };
    const part = (name: string, data: string, filename?: string) =>
      `--x\r\nContent-Disposition: form-data; name="${name}"${
        filename === undefined ? "" : `; filename="${filename}"`
      }\r\n\r\n${data}\r\n`;

    await t.step(
      "no closing boundary → malformed_form",
      () => refuse(part("file", "abc", "a.png"), "multipart/form-data; boundary=x", 400, "malformed_form"),
    );
    await t.step(
      "no boundary parameter → malformed_form",
      () => refuse("--x--", "multipart/form-data", 400, "malformed_form"),
    );
    await t.step("not multipart → 415", () => refuse("{}", "application/json", 415, "unsupported_media_type"));
    await t.step(
      "a file over the limit → 413 while streaming",
      () =>
        refuse(
          part("file", "x".repeat(101), "a.png") + "--x--",
          "multipart/form-data; boundary=x",
          413,
          "file_too_large",
        ),
    );
    await t.step(
      "a body over the limit → 413",
      () => refuse(part("color", "x".repeat(2000)) + "--x--", "multipart/form-data; boundary=x", 413, "file_too_large"),
    );
    await t.step(
      "two files → too_many_files",
      () =>
        refuse(
          part("file", "a", "a.png") + part("file", "b", "b.png") + "--x--",
          "multipart/form-data; boundary=x",
          400,
          "too_many_files",
        ),
    );
    await t.step(
      "a part without a name → malformed_form",
      () =>
        refuse(
          "--x\r\nContent-Disposition: form-data\r\n\r\nz\r\n--x--",
          "multipart/form-data; boundary=x",
          400,
          "malformed_form",
        ),
    );
    await t.step(
      "a text field given twice → validation_error (which value was meant is unclear)",
      () =>
        refuse(
          part("blur", "3") + part("blur", "abc") + part("file", "a", "a.png") + "--x--",
          "multipart/form-data; boundary=x",
          400,
          "validation_error",
        ),
    );
    const accept = (raw: string) =>
      receiveMultipart(chunked(new TextEncoder().encode(raw), "multipart/form-data; boundary=x", 5), {
        tempPath: `${dir}/${crypto.randomUUID()}`,
        maxFileBytes: 10_000,
        maxBodyBytes: 20_000,
      });
    await t.step("the 'file' part without a filename is still the file (curl -F 'file=<photo.png')", async () => {
      const got = await accept(part("file", "x".repeat(5000)) + "--x--");
      assert.deepEqual(got.fields, {});
      assert.equal(got.file?.name, "");
      assert.equal(got.file?.size, 5000);
    });
    await t.step("an RFC 5987 filename* is decoded and preferred", async () => {
      const raw = '--x\r\nContent-Disposition: form-data; name="file"; filename="fallback.png"; ' +
        "filename*=UTF-8''na%C3%AFve%20%E2%82%AC.png\r\n\r\nPNG\r\n--x--";
      assert.equal((await accept(raw)).file?.name, "naïve €.png");
      const only =
        "--x\r\nContent-Disposition: form-data; name=\"file\"; filename*=utf-8''a%2Fb.png\r\n\r\nPNG\r\n--x--";
      assert.equal((await accept(only)).file?.name, "a/b.png");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an upload over SPILL_BYTES is streamed to disk, stored under its task id and processed", async () => {
  const svc = await startTestService({ WORKER_CONCURRENCY: "1" });
  try {
    // Noise does not compress: a 900×600 RGB PNG is about 1.6 MB.
    const width = 900, height = 600;
    const data = new Uint8Array(width * height * 3);
    let seed = 1;
    for (let i = 0; i < data.length; i++) data[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const png = encodePng({ width, height, channels: 3, data });
    assert.ok(png.length > SPILL_BYTES, `${png.length} bytes`);
    const res = await upload(svc.base, png, "noise.png");
    assert.equal(res.status, 202);
    const { task_id, file_path } = await res.json();
    assert.deepEqual(await Deno.readFile(file_path), png);
    assert.deepEqual((await listDir(svc.config.UPLOAD_DIR)).filter((f) => f.startsWith(".incoming")), []);
    const status = await waitForTask(svc.base, task_id);
    assert.equal(status.state, "completed", JSON.stringify(status));
  } finally {
    await svc.close();
  }
});

const MIB = 1024 * 1024;

/** A multipart body holding `file`, its closing boundary, then `epilogue` bytes of filler produced as they are read. */
function withEpilogue(file: Uint8Array, epilogue: number) {
  const head = new TextEncoder().encode(
    '--x\r\nContent-Disposition: form-data; name="file"; filename="coins.png"\r\n\r\n',
  );
  const tail = new TextEncoder().encode("\r\n--x--\r\n");
  const filler = new Uint8Array(64 * 1024).fill(0x41);
  let pulled = 0;
  const pieces = [head, file, tail];
  return {
    stream: new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = pieces.shift();
        if (next) return controller.enqueue(next);
        if (pulled >= epilogue) return controller.close();
        pulled += filler.length;
        controller.enqueue(filler);
      },
    }),
    pulled: () => pulled,
  };
}

Deno.test("bytes after the closing boundary count against the body limit: 413, not read to the end", async (t) => {
  const coins = await fixture("coins.png");
  await t.step("receiveMultipart stops reading an epilogue once the body passes its limit", async () => {
    const dir = testTempDir();
    try {
      const body = withEpilogue(coins, 200 * MIB);
      const request = new Request("http://localhost/upload", {
        method: "POST",
        body: body.stream,
        headers: { "content-type": "multipart/form-data; boundary=x" },
      });
      await assert.rejects(
        () => receiveMultipart(request, { tempPath: `${dir}/f`, maxFileBytes: MIB, maxBodyBytes: MIB + 65536 }),
        (e) => e instanceof AppError && e.status === 413 && e.code === "file_too_large",
      );
      assert.ok(body.pulled() < 2 * MIB, `read ${body.pulled()} bytes of the epilogue`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("through the API: coins.png + 200 MiB after the boundary, chunked → 413 early", async () => {
    const svc = await startTestService({ MAX_FILE_SIZE: String(MIB), EMBEDDED_WORKER: "false" });
    try {
      const stream = withEpilogue(coins, 200 * MIB).stream;
      const { text, sent } = await uploadChunkedUntilAnswered(svc.service.port, stream);
      assert.match(text, /^HTTP\/1\.1 413/, text);
      assert.ok(sent < 32 * MIB, `the client got ${sent} bytes out before the server answered`);
      assert.deepEqual(await listDir(svc.config.UPLOAD_DIR), []);
    } finally {
      await svc.close();
    }
  });
});

/** A PNG of random pixels (noise does not compress: about 3 bytes per pixel). */
function noisePng(width: number, height: number, seed = 1): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  return encodePng({ width, height, channels: 3, data });
}

Deno.test("a spilled upload is checked and hashed from disk a page at a time, never read back whole", async (t) => {
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  // Spies on every way this process could read the spilled file: whole-file reads, and reads of files opened on it.
  const { readFile, readFileSync, open } = Deno;
  const wholeReads: string[] = [];
  const opened = new WeakSet<Deno.FsFile>();
  let largestRead = 0;
  let bytesRead = 0;
  const incoming = (path: string | URL) => String(path).includes(".incoming-");
  Object.assign(Deno, {
    readFile: (path: string | URL, options?: Deno.ReadFileOptions) => {
      if (incoming(path)) wholeReads.push(String(path));
      return readFile(path, options);
    },
    readFileSync: (path: string | URL) => {
      if (incoming(path)) wholeReads.push(String(path));
      return readFileSync(path);
    },
    open: async (path: string | URL, options?: Deno.OpenOptions) => {
      const file = await open(path, options);
      if (incoming(path) && !options?.write) opened.add(file);
      return file;
    },
  });
  const proto = Deno.FsFile.prototype;
  const { read, readSync } = proto;
  const count = (file: Deno.FsFile, n: number | null) => {
    if (opened.has(file) && n !== null) {
      largestRead = Math.max(largestRead, n);
      bytesRead += n;
    }
    return n;
  };
  proto.read = async function (this: Deno.FsFile, p: Uint8Array) {
    return count(this, await read.call(this, p));
  };
  proto.readSync = function (this: Deno.FsFile, p: Uint8Array) {
    return count(this, readSync.call(this, p));
  };
  try {
    const png = noisePng(1800, 1500);
    assert.ok(png.length > 7 * SPILL_BYTES && png.length < svc.config.MAX_FILE_SIZE, `${png.length} bytes`);
    await t.step("accepted, with every read of it at most one page", async () => {
      const res = await upload(svc.base, png, "noise.png");
      assert.equal(res.status, 202, await res.clone().text());
      await res.body?.cancel();
      assert.deepEqual(wholeReads, []);
      assert.ok(largestRead > 0 && largestRead <= PAGE_BYTES, `largest read ${largestRead} bytes`);
      // The structure walk reads the file once (it checks every critical chunk's CRC), not twice over.
      assert.ok(bytesRead <= png.length + PAGE_BYTES, `${bytesRead} bytes read of ${png.length}`);
    });
    await t.step(
      "its digest (Idempotency-Key) is taken while it streams in: a retry is replayed, another file is not",
      async () => {
        const send = (bytes: Uint8Array, key: string) => {
          const form = new FormData();
          form.append("file", new File([bytes as Uint8Array<ArrayBuffer>], "noise.png"));
          return fetch(`${svc.base}/api/v1/images/upload`, {
            method: "POST",
            body: form,
            headers: { "idempotency-key": key },
          });
        };
        const key = crypto.randomUUID();
        const first = await send(png, key);
        assert.equal(first.status, 202);
        const { task_id } = await first.json();
        const again = await send(png, key);
        assert.equal(again.headers.get("idempotent-replayed"), "true");
        assert.equal((await again.json()).task_id, task_id);
        const other = noisePng(1800, 1500, 2);
        const reused = await send(other, key);
        assert.equal(reused.status, 422);
        await reused.body?.cancel();
        assert.deepEqual(wholeReads, []);
      },
    );
    await t.step("a truncated spilled file is refused from disk as well", async () => {
      const res = await upload(svc.base, png.slice(0, png.length - 5000), "cut.png");
      const body = await res.json();
      assert.equal(body.error?.code, "corrupt_image", JSON.stringify(body));
      assert.deepEqual(wholeReads, []);
    });
  } finally {
    Object.assign(Deno, { readFile, readFileSync, open });
    Object.assign(proto, { read, readSync });
    await svc.close();
  }
});
