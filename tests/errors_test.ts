import assert from "node:assert/strict";
import { jpegBomb, pngBomb, pngWithBrokenData } from "./bombs.ts";
import { fixture } from "./fixtures.ts";
import { listUploads, startTestService, upload, uploadChunkedUntilAnswered, waitForTask } from "./harness.ts";
import { closeRedis, connectRedis, createRedis } from "../queue/connection.ts";

async function expectError(res: Response, status: number, code: string): Promise<void> {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error?.code, code, JSON.stringify(body));
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 0);
}

Deno.test("bad uploads get a clear JSON error and leave nothing on disk", async (t) => {
  const svc = await startTestService({ MAX_FILE_SIZE: String(200 * 1024) });
  try {
    await t.step("no file field → 400 missing_file", async () => {
      await expectError(await upload(svc.base, await fixture("coins.png"), "coins.png", "image"), 400, "missing_file");
    });
    await t.step("not multipart at all → 415 unsupported_media_type", async () => {
      const res = await fetch(`${svc.base}/api/v1/images/upload`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ file: "coins.png" }),
      });
      await expectError(res, 415, "unsupported_media_type");
    });
    await t.step("empty file → 400 empty_file", async () => {
      await expectError(await upload(svc.base, new Uint8Array(0), "empty.png"), 400, "empty_file");
    });
    await t.step("text named .png → 400 not_an_image", async () => {
      await expectError(
        await upload(svc.base, new TextEncoder().encode("just some text"), "x.png"),
        400,
        "not_an_image",
      );
    });
    await t.step("GIF → 415 unsupported_image", async () => {
      const gif = new TextEncoder().encode("GIF89a\u0001\u0000\u0001\u0000\u0000\u0000\u0000;");
      await expectError(await upload(svc.base, gif, "x.gif"), 415, "unsupported_image");
    });
    await t.step("over MAX_FILE_SIZE → 413 file_too_large", async () => {
      await expectError(
        await upload(svc.base, await fixture("hubble_deep_field.jpg"), "big.jpg"),
        413,
        "file_too_large",
      );
    });
    await t.step("a 2 GB chunked body (no Content-Length) → 413 early; memory does not grow with it", async () => {
      const enc = new TextEncoder();
      const chunk = new Uint8Array(64 * 1024).fill(0x41);
      const total = 2 * 1024 * 1024 * 1024;
      function* body() {
        yield enc.encode('--x\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n');
        for (let sent = 0; sent < total; sent += chunk.length) yield chunk;
      }
      const rssBefore = Deno.memoryUsage().rss;
      const { text, sent } = await uploadChunkedUntilAnswered(svc.service.port, body());
      assert.match(text, /^HTTP\/1\.1 413/, text);
      assert.match(text, /file_too_large/);
      assert.ok(sent < 64 * 1024 * 1024, `the client got ${sent} bytes out before the server answered`);
      // Server and client share this process: neither may have buffered the body.
      const grown = Deno.memoryUsage().rss - rssBefore;
      assert.ok(grown < 64 * 1024 * 1024, `memory grew by ${grown} bytes`);
    });
    await t.step("a declared Content-Length over the limit → 413 without reading the body", async () => {
      // Raw socket: fetch would correct the header to the body's real length.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: svc.service.port });
      try {
        await conn.write(new TextEncoder().encode(
          "POST /api/v1/images/upload HTTP/1.1\r\nHost: localhost\r\n" +
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1073741824\r\n\r\n--x\r\n",
        ));
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf);
        const text = new TextDecoder().decode(buf.subarray(0, n ?? 0));
        assert.match(text, /^HTTP\/1\.1 413/, text);
        assert.match(text, /file_too_large/);
      } finally {
        conn.close();
      }
    });
    await t.step("truncated PNG, JPEG and TIFF files → 400 corrupt_image at upload, nothing stored", async () => {
      for (const name of ["page.png", "rocket.jpg", "camera.tif"]) {
        const bytes = await fixture(name);
        // Cut within this test's 200 KiB MAX_FILE_SIZE.
        const cut = bytes.subarray(0, Math.floor(Math.min(bytes.length, 150_000) / 2));
        await expectError(await upload(svc.base, cut, name), 400, "corrupt_image");
      }
    });
    await t.step(
      "decompression bombs (a PNG declaring 50000×50000, a JPEG 65500×65500) → 400 image_too_large",
      async () => {
        await expectError(await upload(svc.base, pngBomb(), "bomb.png"), 400, "image_too_large");
        await expectError(
          await upload(svc.base, jpegBomb(await fixture("rocket.jpg")), "bomb.jpg"),
          400,
          "image_too_large",
        );
      },
    );
    await t.step("two files, a file under another name, or a huge text field → 400", async () => {
      const coins = await fixture("page.png");
      const two = new FormData();
      two.append("file", new File([coins as Uint8Array<ArrayBuffer>], "a.png"));
      two.append("file", new File([coins as Uint8Array<ArrayBuffer>], "b.png"));
      await expectError(
        await fetch(`${svc.base}/api/v1/images/upload`, { method: "POST", body: two }),
        400,
        "too_many_files",
      );
      const other = new FormData();
      other.append("file", new File([coins as Uint8Array<ArrayBuffer>], "a.png"));
      other.append("extra", new File([coins as Uint8Array<ArrayBuffer>], "b.png"));
      await expectError(
        await fetch(`${svc.base}/api/v1/images/upload`, { method: "POST", body: other }),
        400,
        "validation_error",
      );
      const huge = new FormData();
      huge.append("file", new File([coins as Uint8Array<ArrayBuffer>], "a.png"));
      huge.append("color", "#".padEnd(100_000, "0"));
      const res = await fetch(`${svc.base}/api/v1/images/upload`, { method: "POST", body: huge });
      const body = await res.json();
      assert.equal(res.status, 400);
      assert.match(body.error.message, /^color: longer than/);
    });
    await t.step("HTML, SVG and a GIF/JavaScript polyglot named .png → refused by content", async () => {
      const enc = new TextEncoder();
      await expectError(
        await upload(svc.base, enc.encode("<!doctype html><script>alert(1)</script>"), "x.png"),
        400,
        "not_an_image",
      );
      await expectError(
        await upload(svc.base, enc.encode('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'), "x.png"),
        400,
        "not_an_image",
      );
      await expectError(
        await upload(svc.base, enc.encode("GIF89a/*\x00\x00*/=alert(1)//;"), "x.png"),
        415,
        "unsupported_image",
      );
    });
    await t.step("the name and Content-Type do not decide the format; the content does", async () => {
      const form = new FormData();
      form.append(
        "file",
        new File([await fixture("page.png") as Uint8Array<ArrayBuffer>], "photo.jpg", { type: "image/gif" }),
      );
      const res = await fetch(`${svc.base}/api/v1/images/upload`, { method: "POST", body: form });
      const body = await res.json();
      assert.equal(res.status, 202);
      assert.match(body.file_path, /\.png$/);
      const status = await waitForTask(svc.base, body.task_id);
      assert.equal((status.result as { format: string }).format, "png");
      const img = await fetch(`${svc.base}${(status.result as { result_url: string }).result_url}`);
      await img.body?.cancel();
      assert.equal(img.headers.get("content-type"), "image/png");
      assert.equal(img.headers.get("x-content-type-options"), "nosniff");
      assert.match(img.headers.get("content-security-policy") ?? "", /sandbox/);
    });
    await t.step("unknown task → 404; malformed id → 400", async () => {
      await expectError(await fetch(`${svc.base}/api/v1/images/status/${crypto.randomUUID()}`), 404, "not_found");
      await expectError(await fetch(`${svc.base}/api/v1/images/status/..%2f..%2fetc`), 400, "validation_error");
    });
    await t.step("static results cannot escape the result folder", async () => {
      for (const path of ["..%2f..%2fdeno.json", "%2e%2e%2fmain.ts", "x.png%00", "..", "/etc/passwd"]) {
        const res = await fetch(`${svc.base}/static/results/${path}`);
        assert.equal(res.status, 404, path);
        await res.body?.cancel();
      }
    });
    await t.step("nothing was written for any rejected upload", async () => {
      assert.deepEqual(await listUploads(svc.config.UPLOAD_DIR), []);
    });
    await t.step("a file that fails to decode ends as failed with a reason, without retries", async () => {
      // Well-formed chunks around garbage compressed data: the structure check passes, the decoder refuses it.
      const broken = pngWithBrokenData(await fixture("coins.png"));
      const res = await upload(svc.base, broken, "broken.png");
      assert.equal(res.status, 202);
      const { task_id } = await res.json();
      const status = await waitForTask(svc.base, task_id);
      assert.equal(status.state, "failed");
      assert.equal(status.attempts, 1, "an undecodable image must not be retried");
      const error = status.error as { code: string; message: string };
      assert.equal(error.code, "corrupt_image");
      assert.match(error.message, /PNG/);
    });
  } finally {
    await svc.close();
  }
});

Deno.test("errors say what happened: a job that changed state → 409, an unexpected error → 500 with the request id", async (t) => {
  // No workers: an uploaded task stays queued until the test changes it.
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  const redis = createRedis(svc.config, "producer");
  try {
    await connectRedis(redis);
    await t.step("DELETE of a task a worker takes up meanwhile → 409 task_state_changed, not 503", async () => {
      const res = await upload(svc.base, await fixture("coins.png"), "coins.png");
      const { task_id } = await res.json();
      // The lock a worker holds on the job it took: the DELETE still reads the task as queued, then BullMQ refuses to
      // remove a locked job, as when a worker takes it up between the two.
      const lock = `${svc.config.QUEUE_PREFIX}:${svc.config.QUEUE_NAME}:${task_id}:lock`;
      await redis.set(lock, "a-worker-token", "PX", 60_000);
      const conflict = await fetch(`${svc.base}/api/v1/images/${task_id}`, { method: "DELETE" });
      await expectError(conflict, 409, "task_state_changed");
      await redis.del(lock);
      const removed = await fetch(`${svc.base}/api/v1/images/${task_id}`, { method: "DELETE" });
      assert.equal(removed.status, 204);
    });
    await t.step("an unexpected error → 500 internal_error naming the request id, and one JSON log line", async () => {
      const taskId = crypto.randomUUID();
      // A result document cut off mid-write: reading it fails in a way no route expects.
      await Deno.writeTextFile(`${svc.config.RESULT_DIR}/${taskId}.json`, '{"contours": [');
      const requestId = `test-${crypto.randomUUID()}`;
      const lines: string[] = [];
      const consoleError = console.error;
      console.error = (...args: unknown[]) => lines.push(args.join(" "));
      let res: Response;
      let body: { error: { code: string; message: string; request_id?: string } };
      try {
        res = await fetch(`${svc.base}/api/v1/images/${taskId}/contours`, { headers: { "x-request-id": requestId } });
        body = await res.json();
      } finally {
        console.error = consoleError;
      }
      assert.equal(res.status, 500, JSON.stringify(body));
      assert.equal(body.error.code, "internal_error");
      assert.equal(body.error.request_id, requestId);
      assert.doesNotMatch(body.error.message, /JSON|position/, "no internals in the body");
      const logged = lines.filter((l) => l.includes('"unhandled error"'));
      assert.equal(logged.length, 1, lines.join("\n"));
      const line = JSON.parse(logged[0]);
      assert.equal(line.level, "error");
      assert.equal(line.request_id, requestId);
      assert.match(line.error, /SyntaxError/);
    });
  } finally {
    await closeRedis(redis);
    await svc.close();
  }
});
