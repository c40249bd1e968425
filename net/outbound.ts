// The SSRF guard shared by every request this service makes to a URL a client chose (callbacks, source_url
// downloads): which URLs are acceptable at all, which hosts are internal, and the one DNS lookup whose answer the
// connection is then pinned to (net/pinned_request.ts).
import { lookup } from "node:dns/promises";
import { isInternalAddress, isIpLiteral } from "./address.ts";

/** Longest URL accepted from a client (what most servers and proxies accept in a request line). */
export const MAX_URL_LENGTH = 2048;

/**
 * Reads a client's URL for an outbound request: http(s), no credentials, at most MAX_URL_LENGTH characters. Returns
 * the URL, or the reason it is refused (to be prefixed with the field's name by the caller).
 */
export function parseOutboundUrl(raw: string): URL | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "not a valid URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return "only http and https URLs are allowed";
  if (url.username || url.password) return "must not carry credentials";
  if (raw.length > MAX_URL_LENGTH) return `longer than ${MAX_URL_LENGTH} characters`;
  return url;
}

/** Whether a URL's hostname names loopback or is an internal IP literal (names are resolved at request time). */
export function isInternalHost(hostname: string): boolean {
  // "localhost." is the same name as "localhost" to any resolver.
  const name = hostname.replace(/\.+$/, "");
  return name === "localhost" || name.endsWith(".localhost") || (isIpLiteral(hostname) && isInternalAddress(hostname));
}

/**
 * A host as the URL parser writes it, without brackets, so that "::1", "[::1]" and "[0:0::1]" in a list of hosts all
 * match the same URL, at upload and at request time alike.
 */
export function canonicalHost(host: string): string {
  const name = bare(host);
  try {
    return bare(new URL(`http://${name.includes(":") ? `[${name}]` : name}/`).hostname);
  } catch {
    return name;
  }
}

/** Whether `list` (hosts an operator configured) names a URL's hostname exactly, in any spelling. */
export function listsHost(list: readonly string[], hostname: string): boolean {
  const host = canonicalHost(hostname);
  return list.some((entry) => canonicalHost(entry) === host);
}

/** A host without the brackets of an IPv6 literal. */
export function bare(host: string): string {
  return host.replace(/^\[|\]$/g, "");
}

/** Looks up a host's addresses (empty when it has none). */
export type Resolver = (host: string) => Promise<string[]>;

/** The system's resolver (hosts file, search domains), as a connection by name would use. */
export const resolveAll: Resolver = async (host) => {
  try {
    return (await lookup(host, { all: true })).map((entry) => entry.address);
  } catch (err) {
    // Deno reports a lookup --allow-net forbids as EPERM: not a name that does not resolve.
    if ((err as { code?: string }).code === "EPERM") {
      throw new Error(`--allow-net does not let this process look up ${host}`);
    }
    return [];
  }
};

/** Why {@link resolveChecked} refused a host: it is internal (by name or address), or it has no address. */
export class OutboundRefused extends Error {
  constructor(readonly reason: "internal_host" | "internal_address" | "unresolvable", message: string) {
    super(message);
    this.name = "OutboundRefused";
  }
}

/**
 * Resolves a URL's host once and returns the addresses checked: the request connects to these and resolves nothing
 * again. Unless `mayBeInternal` (an operator named the host), a host that is internal by name or literal, or that
 * resolves to any internal address, is refused. Messages name the host, never the URL's path.
 */
export async function resolveChecked(
  url: URL,
  mayBeInternal: boolean,
  resolve: Resolver = resolveAll,
): Promise<string[]> {
  const host = bare(url.hostname);
  if (!mayBeInternal && isInternalHost(url.hostname)) {
    throw new OutboundRefused("internal_host", `${host} is an internal address`);
  }
  if (isIpLiteral(url.hostname)) return [host];
  const addresses = await resolve(host);
  if (addresses.length === 0) throw new OutboundRefused("unresolvable", `${host} does not resolve`);
  const internal = addresses.find(isInternalAddress);
  if (!mayBeInternal && internal) {
    throw new OutboundRefused("internal_address", `${host} resolves to internal address ${internal}`);
  }
  return addresses;
}
