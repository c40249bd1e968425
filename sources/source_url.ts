import type { Config } from "../config.ts";
import { BadRequest } from "../errors.ts";
import { isIpLiteral } from "../net/address.ts";
import { canonicalHost, isInternalHost, listsHost, parseOutboundUrl } from "../net/outbound.ts";

/** How SOURCE_ALLOWED_HOSTS lets a URL's host in: named exactly, matched by a wildcard, or not at all. */
export type SourceHostMatch = "exact" | "wildcard" | null;

/**
 * Matches a hostname against SOURCE_ALLOWED_HOSTS: `*` matches any host, `*.example.com` any name below example.com
 * (not example.com itself), and any other entry the host itself, in any spelling of an IP address.
 */
export function matchSourceHost(config: Config, hostname: string): SourceHostMatch {
  const list = config.SOURCE_ALLOWED_HOSTS;
  if (listsHost(list.filter((entry) => !entry.startsWith("*")), hostname)) return "exact";
  const host = canonicalHost(hostname);
  // A domain wildcard is about names: it never matches an IP address that happens to end in the same digits.
  const below = (entry: string) => entry.startsWith("*.") && !isIpLiteral(hostname) && host.endsWith(entry.slice(1));
  const wildcard = list.some((entry) => entry === "*" || below(entry));
  return wildcard ? "wildcard" : null;
}

/**
 * Why a URL's host may not be downloaded from, or null when it may: not listed in SOURCE_ALLOWED_HOSTS, or internal
 * (loopback, private, link-local by literal or by name) without being listed exactly. Names are resolved, and their
 * addresses checked, by the worker at download time.
 */
export function sourceHostRefusal(config: Config, url: URL): string | null {
  const match = matchSourceHost(config, url.hostname);
  if (match === null) return `${url.hostname} is not in SOURCE_ALLOWED_HOSTS`;
  if (match === "wildcard" && isInternalHost(url.hostname)) {
    return `${url.hostname} is an internal address (only a host listed by name in SOURCE_ALLOWED_HOSTS may be one)`;
  }
  return null;
}

/**
 * Checks a client's source_url at upload: downloads enabled (SOURCE_ALLOWED_HOSTS), http(s), no credentials, and a
 * host the list allows; returns the URL as the worker will request it.
 */
export function validateSourceUrl(config: Config, raw: string): string {
  if (config.SOURCE_ALLOWED_HOSTS.length === 0) {
    throw new BadRequest(
      "source_urls_disabled",
      "source_url: downloads from URLs are not enabled on this server (SOURCE_ALLOWED_HOSTS)",
    );
  }
  const url = parseOutboundUrl(raw);
  if (typeof url === "string") throw new BadRequest("validation_error", `source_url: ${url}`);
  const refusal = sourceHostRefusal(config, url);
  if (refusal) throw new BadRequest("validation_error", `source_url: ${refusal}`);
  return url.href;
}

/**
 * The filename a source_url's task is shown with: the last segment of the URL's path, decoded, else the host; kept
 * to harmless characters by `sanitize` (the upload route's own filename rule).
 */
export function sourceFilename(href: string, sanitize: (name: string) => string): string {
  const url = new URL(href);
  const last = url.pathname.split("/").filter(Boolean).pop();
  let name = url.hostname;
  if (last) {
    try {
      name = decodeURIComponent(last);
    } catch {
      // A malformed escape: the segment as written is still a fine name.
      name = last;
    }
  }
  return sanitize(name);
}
