/**
 * Client network prefixes: the /24 of an IPv4 address and the /48 of an IPv6 address (the usual
 * allocation to one site), so that accounts behind one office or one proxy host share a key.
 */

function ipv4Prefix(ip: string): string | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (match === null) return null;
  const parts = match.slice(1, 5).map(Number);
  if (parts.some((part) => part > 255)) return null;
  return `${parts[0]}.${parts[1]}.${parts[2]}.0/24`;
}

function expandIpv6(ip: string): number[] | null {
  let text = ip.toLowerCase().replace(/%.*$/, '');
  const embedded = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (embedded !== null) {
    const v4 = embedded[1]!.split('.').map(Number);
    if (v4.some((part) => part > 255)) return null;
    const high = ((v4[0]! << 8) | v4[1]!).toString(16);
    const low = ((v4[2]! << 8) | v4[3]!).toString(16);
    text = `${text.slice(0, text.length - embedded[1]!.length)}${high}:${low}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const groups = part.split(':');
    if (groups.some((group) => !/^[0-9a-f]{1,4}$/.test(group))) return null;
    return groups.map((group) => Number.parseInt(group, 16));
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/**
 * The network prefix of a client address: `a.b.c.0/24` for IPv4 (also IPv4-mapped IPv6), `x:y:z::/48`
 * for IPv6; null for anything else.
 */
export function clientSubnet(ip: string): string | null {
  if (typeof ip !== 'string') return null;
  const trimmed = ip.trim();
  const v4 = ipv4Prefix(trimmed);
  if (v4 !== null) return v4;
  const groups = expandIpv6(trimmed);
  if (groups === null) return null;
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.0/24`;
  }
  return `${groups
    .slice(0, 3)
    .map((group) => group.toString(16))
    .join(':')}::/48`;
}
