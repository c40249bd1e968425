import type { MiddlewareHandler } from "hono";
import { canonicalAddress as canonical, inNetwork, type Network, parseNetwork } from "../net/address.ts";

declare module "hono" {
  interface ContextVariableMap {
    /** The client's address: the socket's peer, or what trusted proxies say it is (see clientAddress). */
    clientAddress: string;
  }
}

/**
 * Whose forwarding headers are believed: `hops` proxies in front of the service (0: none, the socket's peer is the
 * client), or any proxy whose address lies in one of `networks`.
 */
export type TrustProxy = { hops: number } | { networks: Network[] };

/**
 * Reads TRUST_PROXY: `off` (or false, no, 0), a number of proxies, or a comma-separated list of their addresses or
 * CIDR networks; throws with the reason for anything else.
 *
 * ```ts
 * parseTrustProxy("1"); // { hops: 1 }: one load balancer in front
 * parseTrustProxy("10.0.0.0/8, fd00::/8"); // { networks: [...] }
 * ```
 */
export function parseTrustProxy(text: string): TrustProxy {
  const value = text.trim().toLowerCase();
  if (["off", "false", "no", "0", ""].includes(value)) return { hops: 0 };
  if (/^\d+$/.test(value)) return { hops: Number(value) };
  if (["on", "true", "yes"].includes(value)) {
    // Believing every sender would let any client name its own address (and pick a fresh rate-limit bucket each time).
    throw new Error("give the number of proxies in front of the service, or their addresses or CIDR networks");
  }
  const networks = value.split(",").map((part) => part.trim()).filter(Boolean).map((part) => {
    const network = parseNetwork(part);
    if (!network) throw new Error(`${part} is neither a number of proxies nor an IP address or CIDR network`);
    return network;
  });
  return { networks };
}

/**
 * The client of a request that came from `peer` (the socket's address): the address the trusted proxies forwarded,
 * read from X-Forwarded-For, or from Forwarded when there is none. Walking from the peer towards the client, each
 * trusted hop's word is taken for the address before it; the first address not vouched for is the client. What an
 * untrusted sender puts in the headers is never read, so it cannot choose its own address.
 */
export function clientAddress(headers: Headers, peer: string, trust: TrustProxy): string {
  const hops = "hops" in trust ? trust.hops : Infinity;
  if (hops === 0) return canonical(peer) ?? peer;
  const xff = headers.get("x-forwarded-for");
  const forwarded = xff !== null ? xff.split(",") : forwardedFor(headers.get("forwarded"));
  // The nearest hop last: each proxy appends the address it received the request from.
  const path = [...forwarded.map((entry) => canonical(unwrap(entry))), canonical(peer) ?? peer];
  let i = path.length - 1;
  for (let vouched = 0; i > 0 && vouched < hops; vouched++, i--) {
    const hop = path[i];
    if ("networks" in trust && !(hop !== null && trust.networks.some((n) => inNetwork(n, hop)))) break;
  }
  // An entry that is not an address (a proxy's "unknown" or an obfuscated name) leaves the nearest one that is.
  while (path[i] === null) i++;
  return path[i]!;
}

/** Sets `clientAddress` for the routes and the request log. */
export function identifyClient(trust: TrustProxy): MiddlewareHandler {
  return async (c, next) => {
    const peer = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr?.hostname ?? "unknown";
    c.set("clientAddress", clientAddress(c.req.raw.headers, peer, trust));
    await next();
  };
}

/** The `for=` values of a Forwarded header (RFC 7239), in order. */
function forwardedFor(header: string | null): string[] {
  if (header === null) return [];
  // Commas and semicolons inside quoted values (an IPv6 address with a port) do not split elements.
  const elements = header.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? [];
  return elements.map((element) => {
    const m = /(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)/i.exec(element);
    return m ? m[1] : "";
  });
}

/** An address without quotes, brackets or port: `"[2001:db8::1]:4711"` → `2001:db8::1`, `1.2.3.4:80` → `1.2.3.4`. */
function unwrap(entry: string): string {
  const text = entry.trim().replace(/^"(.*)"$/, "$1");
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed) return bracketed[1];
  return /^[\d.]+:\d+$/.test(text) ? text.slice(0, text.lastIndexOf(":")) : text;
}
