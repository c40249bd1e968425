import assert from "node:assert/strict";
import { sanitizeFilename } from "../routes/upload.ts";
import { startTestService } from "./harness.ts";

Deno.test("client filenames are kept only as sanitised metadata", () => {
  assert.equal(sanitizeFilename("coins.png"), "coins.png");
  assert.equal(sanitizeFilename("../../etc/passwd"), "passwd");
  assert.equal(sanitizeFilename("C:\\Users\\me\\photo.jpg"), "photo.jpg");
  assert.equal(sanitizeFilename("a\u0000b\u001f\u007fc.png"), "abc.png");
  // Bidirectional overrides and isolates would let "gnp.exe" display as "exe.png"; C1 controls go too.
  assert.equal(sanitizeFilename("evil\u202egnp.exe"), "evilgnp.exe");
  assert.equal(sanitizeFilename("a\u2066b\u2069\u200e\u200f\u061c\u0085c.png"), "abc.png");
  assert.equal(sanitizeFilename("naïve €.png"), "naïve €.png");
  assert.equal(sanitizeFilename(".."), "upload");
  assert.equal(sanitizeFilename(""), "upload");
  assert.equal(sanitizeFilename("x".repeat(1000) + ".png").length, 255);
});

Deno.test("CORS from config and secure headers", async (t) => {
  const svc = await startTestService({ CORS_ORIGINS: "https://app.example" });
  try {
    await t.step("an allowed origin is echoed, never '*'; another origin gets no CORS grant", async () => {
      const ok = await fetch(`${svc.base}/api/v1/health/`, { headers: { origin: "https://app.example" } });
      assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example");
      await ok.body?.cancel();
      const other = await fetch(`${svc.base}/api/v1/health/`, { headers: { origin: "https://evil.example" } });
      assert.notEqual(other.headers.get("access-control-allow-origin"), "https://evil.example");
      assert.notEqual(other.headers.get("access-control-allow-origin"), "*");
      await other.body?.cancel();
    });
    await t.step("security headers on every response", async () => {
      const res = await fetch(`${svc.base}/api/v1/health/`);
      await res.body?.cancel();
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.equal(res.headers.get("x-frame-options"), "SAMEORIGIN");
      assert.ok(res.headers.get("strict-transport-security"));
      assert.ok(res.headers.get("referrer-policy"));
    });
  } finally {
    await svc.close();
  }
});
