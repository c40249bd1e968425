/** Whether an IP address (v4, or v6 with or without brackets) is one a callback must never reach by default. */
export function isInternalAddress(ip: string): boolean {
  const v4 = parseIPv4(ip);
  if (v4) return isInternalIPv4(v4);
  const v6 = parseIPv6(ip.replace(/^\[|\]$/g, ""));
  // Whatever cannot be read as an address cannot be shown to be public.
  if (!v6) return true;
  return isInternalIPv6(v6);
}

/**
 * An IP address (v4, or v6 with or without brackets) as eight 16-bit groups, IPv4 in its IPv4-mapped form
 * (::ffff:a.b.c.d) so that both spellings of one address compare equal; null when the text is not an address.
 */
export function addressGroups(ip: string): number[] | null {
  const v4 = parseIPv4(ip);
  if (v4) return [0, 0, 0, 0, 0, 0xffff, (v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
  return parseIPv6(ip.replace(/^\[|\]$/g, ""));
}

/** A network: the groups of its address and the length of its prefix, in bits of the 128-bit (IPv6) form. */
export interface Network {
  groups: number[];
  bits: number;
}

/** Reads `a.b.c.d/n`, `v6/n` or a bare address (a network of one address); null when the text is none of these. */
export function parseNetwork(text: string): Network | null {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  const groups = m && addressGroups(m[1]);
  if (!m || !groups) return null;
  const v4 = parseIPv4(m[1]) !== null;
  const prefix = m[2] === undefined ? (v4 ? 32 : 128) : Number(m[2]);
  if (prefix > (v4 ? 32 : 128)) return null;
  return { groups, bits: v4 ? 96 + prefix : prefix };
}

/** Whether an address lies in a network (an IPv4 network also holds the IPv4-mapped IPv6 forms of its addresses). */
export function inNetwork(network: Network, ip: string): boolean {
  const groups = addressGroups(ip);
  if (!groups) return false;
  for (let bit = 0; bit < network.bits; bit += 16) {
    const width = Math.min(16, network.bits - bit);
    const mask = (0xffff << (16 - width)) & 0xffff;
    if ((groups[bit / 16] & mask) !== (network.groups[bit / 16] & mask)) return false;
  }
  return true;
}

/** Whether a URL host is an IP literal (v4 or bracketed v6). */
export function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith("[");
}

function isInternalIPv4([a, b, c]: number[]): boolean {
  return a === 0 || a === 10 || a === 127 || a >= 224 || // this network, private, loopback, multicast/reserved
    (a === 100 && b >= 64 && b <= 127) || // carrier-grade NAT
    (a === 169 && b === 254) || // link-local (cloud metadata lives here)
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 192 && b === 0 && (c === 0 || c === 2)) || // IETF protocol assignments, documentation (192.0.78.x is public)
    (a === 198 && (b === 18 || b === 19)); // benchmarking
}

/**
 * The kernel, a NAT64 gateway or a 6to4 relay turns these IPv6 forms into IPv4 traffic to the embedded address, so
 * they are judged by it: a ::ffff:127.0.0.1 must be refused exactly like 127.0.0.1.
 */
function isInternalIPv6(h: number[]): boolean {
  const embedded = embeddedIPv4(h);
  if (embedded) return isInternalIPv4(embedded);
  // Only 2000::/3 is handed out as global unicast; everything else (unique-local, link-local, site-local, multicast,
  // discard-only 100::/64, NAT64 local-use 64:ff9b:1::/48, …) reaches no public host.
  if (h[0] < 0x2000 || h[0] > 0x3fff) return true;
  // 2001::/23 holds Teredo 2001::/32, whose client address is obfuscated and which a relay carries anywhere, then
  // benchmarking and ORCHID: no callback receiver lives there.
  return (h[0] === 0x2001 && h[1] < 0x200) ||
    (h[0] === 0x2001 && h[1] === 0xdb8) || // documentation
    (h[0] === 0x3fff && h[1] < 0x1000); // documentation 3fff::/20
}

/** The IPv4 address an IPv6 address carries, for the forms that deliver to it; null for the rest. */
function embeddedIPv4(h: number[]): number[] | null {
  const low = [h[6] >> 8, h[6] & 0xff, h[7] >> 8, h[7] & 0xff];
  const zero = (from: number, to: number) => h.slice(from, to).every((x) => x === 0);
  if (zero(0, 5) && h[5] === 0xffff) return low; // IPv4-mapped ::ffff:0:0/96
  if (zero(0, 4) && h[4] === 0xffff && h[5] === 0) return low; // IPv4-translated ::ffff:0:0:0/96 (SIIT)
  // IPv4-compatible ::/96 (deprecated); also covers :: and ::1, which land in 0.0.0.0/8.
  if (zero(0, 6)) return low;
  if (h[0] === 0x64 && h[1] === 0xff9b && zero(2, 6)) return low; // NAT64 well-known prefix 64:ff9b::/96
  if (h[0] === 0x2002) return [h[1] >> 8, h[1] & 0xff, h[2] >> 8, h[2] & 0xff]; // 6to4 2002::/16
  return null;
}

function parseIPv4(s: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const bytes = m.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? bytes : null;
}

/** Eight 16-bit groups, from any RFC 4291 text form (`::`, a trailing dotted IPv4); null when it is not one. */
function parseIPv6(s: string): number[] | null {
  let text = s.toLowerCase();
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = parseIPv4(dotted[2]);
    if (!v4) return null;
    text = `${dotted[1]}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return all.map((g) => parseInt(g, 16));
}
