// Parsing, range names and CIDR matching come from ipaddr.js (the library behind Express's proxy-addr); what is ours
// is the policy: which ranges an outbound request (a callback, a source_url download) may reach, and which IPv6 forms
// deliver to an embedded IPv4 address.
import ipaddr from "ipaddr.js";

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * Reads an IP address (v4 in four decimal parts, or v6 with or without brackets), IPv4-mapped IPv6 (::ffff:a.b.c.d)
 * as the IPv4 address it is, so both spellings of one address compare equal; null when the text is not an address.
 * The lenient IPv4 forms (`127.1`, `0x7f.0.0.1`, octal) are refused: no resolver or URL parser hands them on.
 */
function parseAddress(text: string): Address | null {
  const ip = text.replace(/^\[|\]$/g, "");
  if (ipaddr.IPv4.isValidFourPartDecimal(ip)) return ipaddr.IPv4.parse(ip);
  if (!ip.includes(":") || !ipaddr.IPv6.isValid(ip)) return null;
  const v6 = ipaddr.IPv6.parse(ip);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
}

/** Whether an IP address (v4, or v6 with or without brackets) is one an outbound request must never reach by default. */
export function isInternalAddress(ip: string): boolean {
  const address = parseAddress(ip);
  // Whatever cannot be read as an address cannot be shown to be public.
  if (!address) return true;
  return address.kind() === "ipv4" ? isInternalIPv4(address as ipaddr.IPv4) : isInternalIPv6(address as ipaddr.IPv6);
}

/** A network: an address and the length of its prefix. */
export type Network = [Address, number];

/** Reads `a.b.c.d/n`, `v6/n` or a bare address (a network of one address); null when the text is none of these. */
export function parseNetwork(text: string): Network | null {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  const address = m && parseAddress(m[1]);
  if (!m || !address) return null;
  const max = address.kind() === "ipv4" ? 32 : 128;
  // An IPv4-mapped network (::ffff:10.0.0.0/104) is the IPv4 network it maps.
  const mapped = address.kind() === "ipv4" && m[1].includes(":");
  const prefix = m[2] === undefined ? max : Number(m[2]) - (mapped ? 96 : 0);
  if (prefix < 0 || prefix > max) return null;
  return [address, prefix];
}

/** Whether an address lies in a network (an IPv4 network also holds the IPv4-mapped IPv6 forms of its addresses). */
export function inNetwork(network: Network, ip: string): boolean {
  const address = parseAddress(ip);
  return address !== null && address.kind() === network[0].kind() && address.match(network);
}

/** One spelling per address (IPv4-mapped IPv6 as IPv4, IPv6 compressed); null when the text is not an address. */
export function canonicalAddress(ip: string): string | null {
  return parseAddress(ip)?.toString() ?? null;
}

/** Whether a URL host is an IP literal (v4 or bracketed v6). */
export function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith("[");
}

/**
 * Only ipaddr.js's "unicast" remains: private, loopback, link-local (cloud metadata lives there), carrier-grade NAT,
 * multicast, broadcast, "this network", documentation, benchmarking and the other special-purpose blocks reach no
 * public server a callback or a source_url is meant for.
 */
function isInternalIPv4(address: ipaddr.IPv4): boolean {
  return address.range() !== "unicast";
}

/**
 * The kernel, a NAT64 gateway or a 6to4 relay turns these IPv6 forms into IPv4 traffic to the embedded address, so
 * they are judged by it: a 64:ff9b::7f00:1 must be refused exactly like 127.0.0.1.
 */
function isInternalIPv6(address: ipaddr.IPv6): boolean {
  const embedded = embeddedIPv4(address);
  if (embedded) return isInternalIPv4(embedded);
  const [first, second] = address.parts;
  // Only 2000::/3 is handed out as global unicast; everything else (unique-local, link-local, site-local, multicast,
  // discard-only 100::/64, NAT64 local-use 64:ff9b:1::/48, …) reaches no public host. Within it, ipaddr.js names
  // Teredo (a relay carries it anywhere), documentation, benchmarking and ORCHID; 2001::/23 and 3fff::/20 hold the
  // rest of the IETF's special-purpose blocks and the newer documentation prefix.
  return first < 0x2000 || first > 0x3fff || address.range() !== "unicast" ||
    (first === 0x2001 && second < 0x200) || (first === 0x3fff && second < 0x1000);
}

/** The IPv4 address an IPv6 address carries, for the forms that deliver to it; null for the rest. */
function embeddedIPv4(address: ipaddr.IPv6): ipaddr.IPv4 | null {
  const h = address.parts;
  const low = new ipaddr.IPv4([h[6] >> 8, h[6] & 0xff, h[7] >> 8, h[7] & 0xff]);
  switch (address.range()) {
    case "rfc6145": // IPv4-translated ::ffff:0:0:0/96 (SIIT)
    case "rfc6052": // NAT64 well-known prefix 64:ff9b::/96
      return low;
    case "6to4": // 2002::/16
      return new ipaddr.IPv4([h[1] >> 8, h[1] & 0xff, h[2] >> 8, h[2] & 0xff]);
  }
  // IPv4-compatible ::/96 (deprecated); also covers :: and ::1, which land in 0.0.0.0/8.
  return h.slice(0, 6).every((x) => x === 0) ? low : null;
}
