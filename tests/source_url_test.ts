import assert from "node:assert/strict";
import { createContourClient } from "../client/mod.ts";
import { parseConfig } from "../config.ts";
import { permissionFlags } from "../launcher.ts";
import { DEFAULT_OPTIONS } from "../imaging/options.ts";
import { closeRedis, createRedis } from "../queue/connection.ts";
import { createContourQueue, enqueueContourJob } from "../queue/contour_queue.ts";
import { downloadSource, SourceError } from "../sources/fetch_source.ts";
import { matchSourceHost, validateSourceUrl } from "../sources/source_url.ts";
import { createObjectStore } from "../storage/object_store.ts";
import { pngBomb } from "./bombs.ts";
import { fixture } from "./fixtures.ts";
import { startTestService, waitForTask, waitUntil } from "./harness.ts";
import { startS3rver } from "./s3rver.ts";

/** A loopback server of test images, with routes that misbehave on purpose; counts what it was asked for. */
function imageServer(files: Record<string, Uint8Array>) {
  const requests: { path: string; host: string | null }[] = [];
  // Stalled and endless answers are released here, so that the server can shut down.
  const release = Promise.withResolvers<void>();
  let streamed = 0;
  let streamCancelled = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    requests.push({ path: url.pathname, host: req.headers.get("host") });
    const file = files[url.pathname.slice(1)];
    if (file) return new Response(file as Uint8Array<ArrayBuffer>, { headers: { "content-type": "image/png" } });
    if (url.pathname === "/redirect") {
      return new Response(null, { status: 302, headers: { location: url.searchParams.get("to") ?? "/" } });
    }
    if (url.pathname === "/loop") return new Response(null, { status: 301, headers: { location: "/loop" } });
    if (url.pathname === "/page.html") {
      return new Response("<!doctype html><title>not here</title>" + " ".repeat(400), {
        headers: { "content-type": "text/html" },
      });
    }
    if (url.pathname === "/stall") {
      // Accepts the connection and never answers.
      await release.promise;
      return new Response("too late");
    }
    if (url.pathname === "/endless" || url.pathname === "/bomb") {
      // An image's first bytes, then more without end (no Content-Length: only the reader can stop it).
      const head = url.pathname === "/bomb" ? pngBomb() : files["coins.png"].subarray(0, 4096);
      const chunk = new Uint8Array(64 * 1024).fill(7);
      let first = true;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (first) {
              first = false;
              controller.enqueue(head);
              return;
            }
            // Paced a little, so that a download that never stops cannot flood the machine.
            await new Promise((r) => setTimeout(r, 1));
            streamed += chunk.length;
            controller.enqueue(chunk);
          },
          cancel() {
            streamCancelled = true;
          },
        }),
        { headers: { "content-type": "image/png" } },
      );
    }
    return new Response("no such image", { status: 404 });
  });
  const port = server.addr.port;
  return {
    port,
    url: (path: string, host = "127.0.0.1") => `http://${host}:${port}${path}`,
    requests,
    streamed: () => streamed,
    streamCancelled: () => streamCancelled,
    async close() {
      release.resolve();
      await server.shutdown();
    },
  };
}

async function upload(base: string, fields: Record<string, string>, file?: Uint8Array): Promise<Response> {
  const form = new FormData();
  if (file) form.append("file", new File([file as Uint8Array<ArrayBuffer>], "coins.png"));
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  return await fetch(`${base}/api/v1/images/upload`, { method: "POST", body: form });
}

/** Uploads a source_url, expects 202, and waits for the task to end. */
async function runSource(base: string, sourceUrl: string, timeoutMs = 30_000) {
  const res = await upload(base, { source_url: sourceUrl });
  const accepted = await res.json();
  assert.equal(res.status, 202, JSON.stringify(accepted));
  return { accepted, status: await waitForTask(base, accepted.task_id, timeoutMs) };
}

Deno.test("source_url: downloaded by the worker, guarded, limited while it streams, every failure a failed task", async (t) => {
  const png = await fixture("coins.png");
  const images = imageServer({ "coins.png": png, "samples/coins%20copy.png": png });
  // Loopback must be listed by address, explicitly: a wildcard never reaches an internal address.
  const svc = await startTestService({
    SOURCE_ALLOWED_HOSTS: "127.0.0.1",
    SOURCE_TIMEOUT_MS: "1500",
    MAX_FILE_SIZE: String(1024 * 1024),
    // Transient failures (timeouts) are retried JOB_ATTEMPTS times; one attempt keeps each case to its own cause.
    JOB_ATTEMPTS: "1",
  });
  try {
    await t.step("completed: status and result show the source_url; contours equal the uploaded file's", async () => {
      const { accepted, status } = await runSource(svc.base, images.url("/coins.png"));
      assert.equal(accepted.filename, "coins.png");
      assert.equal(accepted.source_url, images.url("/coins.png"));
      assert.equal(accepted.file_path, undefined);
      assert.equal(status.state, "completed", JSON.stringify(status));
      assert.equal(status.source_url, images.url("/coins.png"));
      const result = status.result as Record<string, unknown>;
      assert.equal(result.source_url, images.url("/coins.png"));
      assert.equal(result.format, "png");

      const res = await upload(svc.base, {}, png);
      assert.equal(res.status, 202);
      const direct = await waitForTask(svc.base, (await res.json()).task_id);
      const directResult = direct.result as Record<string, unknown>;
      for (const key of ["width", "height", "contour_count", "total_area", "total_points", "threshold"]) {
        assert.equal(result[key], directResult[key], key);
      }
      const fromUrl = await (await fetch(svc.base + result.data_url)).json();
      const fromFile = await (await fetch(svc.base + directResult.data_url)).json();
      assert.deepEqual(fromUrl.contours, fromFile.contours);
    });

    await t.step("the filename is the URL's last path segment, decoded; redirects are followed", async () => {
      const target = "/samples/coins%20copy.png";
      const { accepted, status } = await runSource(svc.base, images.url(`/redirect?to=${encodeURIComponent(target)}`));
      assert.equal(accepted.filename, "redirect");
      assert.equal(status.state, "completed", JSON.stringify(status));
      const { filename } = (await runSource(svc.base, images.url(target))).accepted;
      assert.equal(filename, "coins copy.png");
    });

    await t.step("the typed client: uploadFromUrl, then waitForCompletion", async () => {
      const api = createContourClient({ baseUrl: svc.base });
      const accepted = await api.uploadFromUrl(images.url("/coins.png"), { min_area: 50 });
      assert.equal(accepted.source_url, images.url("/coins.png"));
      const status = await api.waitForCompletion(accepted.task_id, { timeoutMs: 30_000 });
      assert.equal(status.state, "completed");
      assert.equal(status.result?.options.min_area, 50);
    });

    await t.step("both a file and a source_url, or neither → 400", async () => {
      const both = await upload(svc.base, { source_url: images.url("/coins.png") }, png);
      assert.equal(both.status, 400);
      assert.deepEqual((await both.json()).error, {
        code: "validation_error",
        message: "source_url: send either a file or a source_url, not both",
      });
      const neither = await upload(svc.base, { render: "lazy" });
      assert.equal(neither.status, 400);
      assert.deepEqual((await neither.json()).error, {
        code: "missing_file",
        message: "file: the form needs a 'file' field holding the image (or a source_url)",
      });
    });

    await t.step("a host not in SOURCE_ALLOWED_HOSTS → 400, and bad URLs → 400", async () => {
      const cases: [string, RegExp][] = [
        [images.url("/coins.png", "localhost"), /^source_url: localhost is not in SOURCE_ALLOWED_HOSTS$/],
        ["ftp://127.0.0.1/coins.png", /only http and https/],
        ["http://user:pw@127.0.0.1/coins.png", /credentials/],
        ["not a url", /not a valid URL/],
      ];
      for (const [url, message] of cases) {
        const res = await upload(svc.base, { source_url: url });
        const body = await res.json();
        assert.equal(res.status, 400, url);
        assert.equal(body.error.code, "validation_error");
        assert.match(body.error.message, message);
      }
    });

    await t.step("the worker checks again: a redirect to a host not in the list fails, never requested", async () => {
      const before = images.requests.length;
      const elsewhere = images.url("/coins.png", "localhost");
      const { status } = await runSource(svc.base, images.url(`/redirect?to=${encodeURIComponent(elsewhere)}`));
      assert.equal(status.state, "failed");
      assert.deepEqual(status.error, {
        code: "source_refused",
        message: "a redirect to localhost is not in SOURCE_ALLOWED_HOSTS",
      });
      assert.deepEqual(images.requests.slice(before).map((r) => r.path), ["/redirect"]);
    });

    await t.step("a job queued with a host the list does not allow fails at the worker without a request", async () => {
      const before = images.requests.length;
      const redis = createRedis(svc.config, "producer");
      const queue = createContourQueue(svc.config, redis);
      const taskId = crypto.randomUUID();
      try {
        // As a job queued before SOURCE_ALLOWED_HOSTS was narrowed would be.
        await enqueueContourJob(queue, svc.config, {
          task_id: taskId,
          source_url: images.url("/coins.png", "[::ffff:127.0.0.1]"),
          filename: "coins.png",
          submitted_at: new Date().toISOString(),
          options: DEFAULT_OPTIONS,
        });
      } finally {
        await queue.close();
        await closeRedis(redis);
      }
      const status = await waitForTask(svc.base, taskId);
      assert.equal(status.state, "failed");
      assert.deepEqual(status.error, {
        code: "source_refused",
        message: "[::ffff:7f00:1] is not in SOURCE_ALLOWED_HOSTS",
      });
      assert.equal(images.requests.length, before);
    });

    await t.step("HTTP 404 → failed source_http_error", async () => {
      const { status } = await runSource(svc.base, images.url("/missing.png"));
      assert.equal(status.state, "failed");
      assert.deepEqual(status.error, { code: "source_http_error", message: "the source answered HTTP 404" });
    });

    await t.step("not an image → failed not_an_image", async () => {
      const { status } = await runSource(svc.base, images.url("/page.html"));
      assert.equal(status.state, "failed");
      assert.equal((status.error as { code: string }).code, "not_an_image");
    });

    await t.step("a redirect loop → failed source_too_many_redirects", async () => {
      const { status } = await runSource(svc.base, images.url("/loop"));
      assert.equal(status.state, "failed");
      assert.equal((status.error as { code: string }).code, "source_too_many_redirects");
    });

    await t.step(
      "a body that never ends → failed source_too_large once past MAX_FILE_SIZE, reading stopped",
      async () => {
        const { status } = await runSource(svc.base, images.url("/endless"));
        assert.equal(status.state, "failed");
        assert.deepEqual(status.error, {
          code: "source_too_large",
          message: "the source is larger than the limit of 1048576 bytes (MAX_FILE_SIZE)",
        });
        await waitUntil("the server's stream was cancelled", 5000, () => images.streamCancelled(), 20);
        // What the server could push before the connection closed: the limit plus the socket buffers, no more.
        assert.ok(images.streamed() < 8 * 1024 * 1024, `${images.streamed()} bytes streamed`);
      },
    );

    await t.step(
      "a header declaring more than MAX_PIXELS → failed image_too_large before the body is read",
      async () => {
        const { status } = await runSource(svc.base, images.url("/bomb"));
        assert.equal(status.state, "failed");
        assert.equal((status.error as { code: string }).code, "image_too_large");
        assert.match((status.error as { message: string }).message, /50000×50000/);
      },
    );

    await t.step("a server that never answers → failed source_timeout after SOURCE_TIMEOUT_MS", async () => {
      const started = Date.now();
      const { status } = await runSource(svc.base, images.url("/stall"));
      const took = Date.now() - started;
      assert.equal(status.state, "failed");
      assert.deepEqual(status.error, {
        code: "source_timeout",
        message: "the download took longer than SOURCE_TIMEOUT_MS (1500 ms)",
      });
      assert.ok(took >= 1500 && took < 10_000, `failed after ${took} ms`);
    });
  } finally {
    await svc.close();
    await images.close();
  }
});

Deno.test("source_url with STORAGE=s3: the download is stored in the bucket and processed from there", async () => {
  const png = await fixture("coins.png");
  const s3 = await startS3rver();
  const images = imageServer({ "coins.png": png });
  const svc = await startTestService({
    ...s3.env,
    SOURCE_ALLOWED_HOSTS: "127.0.0.1",
    // Kept after the task completes, so that the test can read what was stored.
    KEEP_UPLOADS: "true",
    WORKER_CONCURRENCY: "1",
  });
  try {
    const { accepted, status } = await runSource(svc.base, images.url("/coins.png"));
    assert.equal(status.state, "completed", JSON.stringify(status));
    const store = await createObjectStore(svc.config);
    assert.deepEqual(await store.read("uploads", `${accepted.task_id}.png`), png);
    const image = await fetch(`${svc.base}/static/results/${accepted.task_id}.png`);
    assert.equal(image.status, 200);
    assert.equal(image.headers.get("content-type"), "image/png");
    await image.body?.cancel();
  } finally {
    await svc.close();
    await images.close();
    await s3.close();
  }
});

Deno.test("source_url: refused with 400 source_urls_disabled while SOURCE_ALLOWED_HOSTS is empty", async () => {
  const svc = await startTestService({ EMBEDDED_WORKER: "false" });
  try {
    const res = await upload(svc.base, { source_url: "https://images.example.com/coins.png" });
    assert.equal(res.status, 400);
    assert.deepEqual((await res.json()).error, {
      code: "source_urls_disabled",
      message: "source_url: downloads from URLs are not enabled on this server (SOURCE_ALLOWED_HOSTS)",
    });
  } finally {
    await svc.close();
  }
});

Deno.test("source_url: hosts of SOURCE_ALLOWED_HOSTS; internal addresses only when listed exactly", async (t) => {
  await t.step("matching: *, *.domain, a name, an address in any spelling", () => {
    const config = parseConfig({ SOURCE_ALLOWED_HOSTS: "*.example.com,img.test,::1" });
    assert.equal(matchSourceHost(config, "a.example.com"), "wildcard");
    assert.equal(matchSourceHost(config, "a.b.example.com"), "wildcard");
    assert.equal(matchSourceHost(config, "example.com"), null);
    assert.equal(matchSourceHost(config, "badexample.com"), null);
    assert.equal(matchSourceHost(config, "IMG.test"), "exact");
    assert.equal(matchSourceHost(config, "[0:0::1]"), "exact");
    assert.equal(matchSourceHost(parseConfig({ SOURCE_ALLOWED_HOSTS: "*" }), "anything.example"), "wildcard");
  });

  await t.step("launcher: a worker may reach any host once SOURCE_ALLOWED_HOSTS is set, the API alone may not", () => {
    const net = (script: string, env: Record<string, string>) =>
      permissionFlags(["--no-prompt"], script, parseConfig(env)).find((f) => f.startsWith("--allow-net"));
    assert.equal(net("worker.ts", { SOURCE_ALLOWED_HOSTS: "*.example.com" }), "--allow-net");
    assert.equal(net("main.ts", { SOURCE_ALLOWED_HOSTS: "*.example.com" }), "--allow-net");
    assert.match(net("worker.ts", {})!, /^--allow-net=/);
    assert.match(net("main.ts", { SOURCE_ALLOWED_HOSTS: "*", EMBEDDED_WORKER: "false" })!, /^--allow-net=/);
  });

  await t.step("at upload: with *, loopback and private literals and localhost are refused", () => {
    const config = parseConfig({ SOURCE_ALLOWED_HOSTS: "*" });
    for (const url of ["http://127.0.0.1/a.png", "http://[::1]/a.png", "http://10.1.2.3/a.png", "http://localhost/a"]) {
      assert.throws(() => validateSourceUrl(config, url), /is an internal address/, url);
    }
    assert.equal(validateSourceUrl(config, "https://images.example.com/a.png"), "https://images.example.com/a.png");
  });

  await t.step("at download: a name resolving to an internal address is refused, with no request", async () => {
    const config = parseConfig({ SOURCE_ALLOWED_HOSTS: "*" });
    const images = imageServer({});
    try {
      const url = images.url("/coins.png", "images.example.com");
      await assert.rejects(
        downloadSource(config, url, { resolve: () => Promise.resolve(["93.184.215.14", "127.0.0.1"]) }),
        (err: SourceError) =>
          err.code === "source_refused" && err.message === "images.example.com resolves to internal address 127.0.0.1",
      );
      assert.equal(images.requests.length, 0);
    } finally {
      await images.close();
    }
  });

  await t.step("DNS: no address → source_unresolvable (retried); a lookup that hangs → timeout", async () => {
    const config = parseConfig({ SOURCE_ALLOWED_HOSTS: "*", SOURCE_TIMEOUT_MS: "300" });
    await assert.rejects(
      downloadSource(config, "https://nowhere.example.com/a.png", { resolve: () => Promise.resolve([]) }),
      (err: SourceError) =>
        err.code === "source_unresolvable" && err.transient && err.message === "nowhere.example.com does not resolve",
    );
    const hanging = Promise.withResolvers<string[]>();
    const started = Date.now();
    try {
      await assert.rejects(
        downloadSource(config, "https://slow.example.com/a.png", { resolve: () => hanging.promise }),
        (err: SourceError) => err.code === "source_timeout",
      );
      assert.ok(Date.now() - started < 5000, `gave up after ${Date.now() - started} ms`);
    } finally {
      hanging.resolve([]);
    }
  });

  await t.step("DNS rebinding: the connection goes to the address checked, never a second lookup", async () => {
    const config = parseConfig({ SOURCE_ALLOWED_HOSTS: "*" });
    const images = imageServer({ "coins.png": await fixture("coins.png") });
    let lookups = 0;
    // What a rebinding DNS server does: a public address for the first question, loopback for the next.
    const rebinding = () => Promise.resolve(lookups++ === 0 ? ["93.184.215.14"] : ["127.0.0.1"]);
    try {
      const url = images.url("/coins.png", "rebind.example.com");
      // The test may not connect to 93.184.215.14 (--allow-net), so the download fails; what matters is where it went.
      await assert.rejects(
        downloadSource(config, url, { resolve: rebinding }),
        (err: SourceError) => err.code === "source_unreachable" && /93\.184\.215\.14/.test(err.message),
      );
      assert.equal(lookups, 1, "looked up once, for the check");
      assert.equal(images.requests.length, 0);
    } finally {
      await images.close();
    }
  });

  await t.step("a host listed by name may be internal: pinned to its address, Host header kept", async () => {
    const png = await fixture("coins.png");
    const images = imageServer({ "coins.png": png });
    const config = parseConfig({ SOURCE_ALLOWED_HOSTS: "images.internal" });
    try {
      // images.internal exists in no DNS: the download can only have gone to the address the resolver gave.
      const got = await downloadSource(config, images.url("/coins.png", "images.internal"), {
        resolve: () => Promise.resolve(["127.0.0.1"]),
      });
      assert.equal(got.format, "png");
      assert.deepEqual(got.bytes, png);
      assert.deepEqual(images.requests, [{ path: "/coins.png", host: `images.internal:${images.port}` }]);
    } finally {
      await images.close();
    }
  });

  await t.step("a body that breaks off before its Content-Length → source_unreachable (retried)", async () => {
    const png = await fixture("coins.png");
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const served = (async () => {
      const conn = await listener.accept();
      await conn.read(new Uint8Array(16 * 1024));
      const head = `HTTP/1.1 200 OK\r\nContent-Length: ${png.length}\r\nConnection: close\r\n\r\n`;
      await conn.write(new TextEncoder().encode(head));
      await conn.write(png.subarray(0, 1000));
      conn.close();
    })();
    try {
      const config = parseConfig({ SOURCE_ALLOWED_HOSTS: "127.0.0.1" });
      const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/coins.png`;
      await assert.rejects(
        downloadSource(config, url),
        (err: SourceError) => err.code === "source_unreachable" && err.transient && /broke off/.test(err.message),
      );
      await served;
    } finally {
      listener.close();
    }
  });

  await t.step("a Content-Length over MAX_FILE_SIZE is refused before the body is read", async () => {
    const config = parseConfig({ SOURCE_ALLOWED_HOSTS: "127.0.0.1", MAX_FILE_SIZE: "1000" });
    const images = imageServer({ "coins.png": await fixture("coins.png") });
    try {
      await assert.rejects(
        downloadSource(config, images.url("/coins.png")),
        (err: SourceError) => err.code === "source_too_large",
      );
    } finally {
      await images.close();
    }
  });
});
