import { UnrecoverableError } from "bullmq";
import type { Config } from "../config.ts";
import { BadRequest } from "../errors.ts";
import {
  isInternalHost,
  listsHost,
  OutboundRefused,
  parseOutboundUrl,
  resolveAll,
  resolveChecked,
  type Resolver,
} from "../net/outbound.ts";

/** Checks a client's callback_url at upload: http(s), no credentials, and not an internal address unless allowed. */
export function validateCallbackUrl(config: Config, raw: string): string {
  if (!config.CALLBACK_SECRET) {
    throw new BadRequest(
      "callbacks_disabled",
      "callback_url: callbacks are not enabled on this server (CALLBACK_SECRET)",
    );
  }
  const url = parseOutboundUrl(raw);
  if (typeof url === "string") throw new BadRequest("validation_error", `callback_url: ${url}`);
  const host = url.hostname;
  if (!listsHost(config.CALLBACK_ALLOWED_HOSTS, host) && isInternalHost(host)) {
    throw new BadRequest(
      "validation_error",
      `callback_url: ${host} is an internal address (not in CALLBACK_ALLOWED_HOSTS)`,
    );
  }
  return url.href;
}

/**
 * Resolves a callback's host and refuses it when any address is internal (re-checked at send time: DNS can change),
 * then returns the addresses checked: the delivery connects to these and resolves nothing again. Hosts in
 * CALLBACK_ALLOWED_HOSTS are resolved without the check. A refused host is final (UnrecoverableError); one that does
 * not resolve is retried.
 */
export async function assertDeliverable(
  config: Config,
  url: URL,
  resolve: Resolver = resolveAll,
): Promise<string[]> {
  try {
    // Jobs queued before the upload check was tightened carry URLs it would now refuse: checked again here.
    return await resolveChecked(url, listsHost(config.CALLBACK_ALLOWED_HOSTS, url.hostname), resolve);
  } catch (err) {
    if (!(err instanceof OutboundRefused)) throw err;
    const message = `callback host ${err.message}`;
    throw err.reason === "unresolvable" ? new Error(message) : new UnrecoverableError(message);
  }
}
