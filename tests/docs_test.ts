import assert from "node:assert/strict";
import { ERROR_CODES, JOB_FAILURE_CODES } from "../errors.ts";
import { IMAGE_ERROR_CODES } from "../imaging/image_error.ts";
import { runBrowserScript, startTestService, testTempDir } from "./harness.ts";

/** One operation of the OpenAPI document, as far as these tests read it. */
type Operation = { responses: Record<string, { content?: Record<string, { examples?: Record<string, unknown> }> }> };

/** What tests/browser/render_docs.mjs saw. */
interface DocsReport {
  pages: Record<string, string>;
  outside: string[];
  errors: string[];
  hosted_features: string[];
}

Deno.test("OpenAPI document, /info and the docs pages' own scripts", async (t) => {
  const svc = await startTestService();
  try {
    await t.step("/ redirects to /docs", async () => {
      const res = await fetch(`${svc.base}/`, { redirect: "manual" });
      assert.equal(res.status, 302);
      assert.equal(res.headers.get("location"), "/docs");
      await res.body?.cancel();
    });
    await t.step("/openapi.json documents every route with the shared schemas", async () => {
      const doc = await (await fetch(`${svc.base}/openapi.json`)).json();
      for (
        const path of [
          "/api/v1/images/upload",
          "/api/v1/images/status/{task_id}",
          "/api/v1/images/results",
          "/api/v1/health",
          "/api/v1/health/redis",
          "/api/v1/health/celery",
          "/api/v1/health/worker",
          "/api/v1/health/full",
          "/info",
          "/metrics",
          "/static/results/{name}",
        ]
      ) assert.ok(doc.paths[path], `missing ${path}`);
      // Every route API_KEYS protects says so.
      for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, { responses: object }>>)) {
        if (!path.startsWith("/api/v1/images") && path !== "/api/v1/health/full") continue;
        for (const [method, op] of Object.entries(item)) assert.ok("401" in op.responses, `${method} ${path} 401`);
      }
      assert.match(doc.info.description, /\(\/ui\)/, "the reference links the try-it page");
      const upload = doc.paths["/api/v1/images/upload"].post;
      assert.ok(upload.requestBody.content["multipart/form-data"]);
      for (const s of ["202", "400", "409", "413", "422", "503"]) assert.ok(upload.responses[s], `upload ${s}`);
      assert.ok(upload.responses["202"].headers.Location, "the 202 documents its Location");
      assert.ok(
        upload.parameters.some((p: { in: string; name: string }) => p.in === "header" && p.name === "idempotency-key"),
        "the upload documents Idempotency-Key",
      );
      const examples = upload.responses["400"].content["application/json"].examples;
      for (const code of ["missing_file", "empty_file", "not_an_image", "image_too_large"]) {
        assert.equal(examples[code]?.value.error.code, code, `upload 400 example ${code}`);
      }
      const refused = upload.responses["415"].content["application/json"].examples;
      assert.equal(refused.unsupported_image?.value.error.code, "unsupported_image", "upload 415 example");
      // Every documented error response shows at least one example of its body.
      for (
        const [path, item] of Object.entries(
          doc.paths as Record<
            string,
            Record<string, { responses: Record<string, { content?: Record<string, { examples?: unknown }> }> }>
          >,
        )
      ) {
        for (const [method, op] of Object.entries(item)) {
          for (const [status, r] of Object.entries(op.responses)) {
            const json = r.content?.["application/json"];
            if (Number(status) >= 400 && json && !path.startsWith("/api/v1/health")) {
              assert.ok(json.examples, `${method} ${path} ${status} has no example`);
            }
          }
        }
      }
      for (const name of ["Error", "TaskStatus", "UploadAccepted", "ContourSummary", "ResultsPage"]) {
        assert.ok(doc.components.schemas[name], `schema ${name}`);
      }
    });
    await t.step(
      "the error codes the document lists are the registry's (errors.ts), for answers and failed tasks",
      async () => {
        const doc = await (await fetch(`${svc.base}/openapi.json`)).json();
        const schemas = doc.components.schemas;
        assert.deepEqual(schemas.Error.properties.error.properties.code.enum, Object.keys(ERROR_CODES));
        assert.deepEqual(schemas.TaskStatus.properties.error.properties.code.enum, [...JOB_FAILURE_CODES]);
        for (const code of IMAGE_ERROR_CODES) {
          const status = code === "unsupported_image" ? 415 : 400;
          assert.equal(ERROR_CODES[code], status, `${code} answers an upload with ${status}`);
          assert.ok(JOB_FAILURE_CODES.includes(code), `${code} can end a task too`);
        }
        // Every example of an error response shows a code under the status the registry gives it (a success's examples
        // may show a failed task's status, whose `error.code` is a job failure code).
        for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Operation>>)) {
          for (const [method, op] of Object.entries(item)) {
            for (const [status, r] of Object.entries(op.responses)) {
              if (!/^[45]/.test(status)) continue;
              for (const example of Object.values(r.content?.["application/json"]?.examples ?? {})) {
                const code = (example as { value: { error?: { code: keyof typeof ERROR_CODES } } }).value.error?.code;
                if (code) assert.equal(ERROR_CODES[code], Number(status), `${method} ${path}: ${code} under ${status}`);
              }
            }
          }
        }
      },
    );
    await t.step("/api/v1/health paths answer other methods with 405 and Allow: GET, HEAD", async () => {
      for (const path of ["/api/v1/health/", "/api/v1/health", "/api/v1/health/redis", "/api/v1/health/full"]) {
        for (const method of ["PUT", "POST", "DELETE", "PATCH"]) {
          const res = await fetch(`${svc.base}${path}`, { method });
          const body = await res.json();
          assert.equal(res.status, 405, `${method} ${path}: ${JSON.stringify(body)}`);
          assert.equal(res.headers.get("allow"), "GET, HEAD");
          assert.equal(body.error.code, "method_not_allowed");
        }
      }
      const head = await fetch(`${svc.base}/api/v1/health/`, { method: "HEAD" });
      assert.equal(head.status, 200, "HEAD is answered as GET");
    });
    await t.step("/info: versions and config, no secrets", async () => {
      const info = await (await fetch(`${svc.base}/info`)).json();
      assert.equal(info.name, svc.config.APP_NAME);
      assert.ok(info.runtime.deno && info.runtime.opencv);
      assert.equal(info.config.max_file_size, svc.config.MAX_FILE_SIZE);
      assert.equal(info.config.render, svc.config.RENDER);
      assert.equal(info.config.retention.result_ttl_hours, svc.config.RESULT_TTL_HOURS);
      assert.equal(info.docs.ui, "/ui");
      assert.equal(JSON.stringify(info).includes('password":"'), false);
    });
    await t.step("the docs pages load scripts only from this server", async () => {
      for (const page of ["/docs", "/redoc"]) {
        const html = await (await fetch(svc.base + page)).text();
        const srcs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
        assert.ok(srcs.length > 0);
        for (const src of srcs) assert.ok(src.startsWith("/"), `${page} loads ${src} from elsewhere`);
        for (const src of srcs) {
          const res = await fetch(svc.base + src);
          assert.equal(res.status, 200, src);
          assert.match(res.headers.get("content-type") ?? "", /javascript/);
          await res.body?.cancel();
        }
      }
    });
    await t.step("/docs allows its one inline script by a nonce drawn for each answer", async () => {
      const nonces = [];
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${svc.base}/docs`);
        const html = await res.text();
        const policy = res.headers.get("content-security-policy") ?? "";
        const nonce = /script-src 'self' 'nonce-([A-Za-z0-9+/=]+)'/.exec(policy)?.[1];
        assert.ok(nonce, policy);
        const scripts = [...html.matchAll(/<script([^>]*)>/g)].map((m) => m[1]);
        assert.equal(scripts.length, 2, html);
        for (const attrs of scripts) assert.match(attrs, new RegExp(`nonce="${nonce.replace(/[+/=]/g, "\\$&")}"`));
        assert.match(html, /src="\/static\/vendor\/scalar\.js"/);
        nonces.push(nonce);
      }
      assert.notEqual(nonces[0], nonces[1]);
      const redoc = await fetch(`${svc.base}/redoc`);
      await redoc.body?.cancel();
      assert.doesNotMatch(redoc.headers.get("content-security-policy") ?? "", /nonce|unsafe-inline'[^;]*script/);
    });
    await t.step({
      name: "Scalar and ReDoc render in headless Chromium with every outside request blocked",
      fn: async () => {
        const shots = testTempDir();
        const report = await runBrowserScript<DocsReport>("render_docs.mjs", [svc.base, shots]);
        if (!report) return;
        assert.deepEqual(report.pages, { "/docs": "rendered", "/redoc": "rendered" }, JSON.stringify(report));
        // Nothing was even attempted elsewhere (ReDoc's CDN logo is rewritten away as its bundle is served), no script
        // error or refused load, and none of Scalar's hosted extras is offered.
        assert.deepEqual(report.outside, [], "requests to other hosts");
        assert.deepEqual(report.errors, [], "console errors");
        assert.deepEqual(report.hosted_features, [], "Scalar's hosted features");
        assert.ok(Deno.statSync(`${shots}/docs.png`).size > 10_000, "screenshot of /docs");
      },
    });
  } finally {
    await svc.close();
  }
});
