import assert from "node:assert/strict";
import { constantTimeEqual, presentedKey } from "../routes/auth.ts";

Deno.test("API keys compare equal only when identical, whatever their lengths", () => {
  assert.equal(constantTimeEqual("s3cret-key", "s3cret-key"), true);
  assert.equal(constantTimeEqual("s3cret-key", "s3cret-kez"), false);
  assert.equal(constantTimeEqual("s3cret-key", "s3cret-key-longer"), false);
  assert.equal(constantTimeEqual("", "x"), false);
  assert.equal(constantTimeEqual("", ""), true);
  assert.equal(constantTimeEqual("clé-ü", "clé-ü"), true);
  assert.equal(constantTimeEqual("clé-ü", "cle-u"), false);
});

Deno.test("the key is read from X-API-Key, a Bearer token, or a Basic password", () => {
  assert.equal(presentedKey(new Headers({ "x-api-key": "k1" })), "k1");
  assert.equal(presentedKey(new Headers({ authorization: "Bearer k2" })), "k2");
  assert.equal(presentedKey(new Headers({ authorization: `Basic ${btoa("anyone:k3")}` })), "k3");
  assert.equal(presentedKey(new Headers({ authorization: "Basic !!!" })), undefined);
  assert.equal(presentedKey(new Headers()), undefined);
});
