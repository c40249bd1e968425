import type { Config } from "../config.ts";
import { resolveAll, type Resolver } from "../net/outbound.ts";
import { requestPinned } from "../net/pinned_request.ts";
import { traceHeaders } from "../tracing.ts";
import { assertDeliverable } from "./callback_url.ts";
import { sign, SIGNATURE_HEADER } from "./signature.ts";

const TIMEOUT_MS = 10_000;

/**
 * Sends one notification: the send-time address check, then the signed POST to exactly the addresses checked (never
 * a second lookup), within TIMEOUT_MS; resolves to the answer's status (its body is not read). `resolve` looks the
 * host up (a stub in tests).
 */
export async function deliverCallback(
  config: Config,
  url: URL,
  body: string,
  requestId: string,
  resolve: Resolver = resolveAll,
): Promise<number> {
  const addresses = await assertDeliverable(config, url, resolve);
  const signature = await sign(config.CALLBACK_SECRET ?? "", body);
  // A timer of our own rather than AbortSignal.timeout(), whose timer outlives a quick answer.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`callback timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  try {
    const answer = await requestPinned(url, addresses, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [SIGNATURE_HEADER]: `sha256=${signature}`,
        "x-request-id": requestId,
        "user-agent": "background-image-processor-callback",
        // The receiver may continue the upload's trace (none with tracing off).
        ...traceHeaders(config),
      },
      body,
    }, abort.signal);
    await answer.body.cancel();
    return answer.status;
  } finally {
    clearTimeout(timer);
  }
}
