import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { receiveMultipart, SPILL_BYTES } from "../routes/multipart.ts";
import { encodePng } from "../imaging/encode.ts";
import { listDir, startTestService, testTempDir, upload, waitForTask } from "./harness.ts";

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
