/** Header carrying `sha256=<hex HMAC of the body>`. */
export const SIGNATURE_HEADER = "X-Signature-256";

/** HMAC-SHA256 of `body` with `secret`, as lowercase hex. */
export async function sign(secret: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body)));
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}
