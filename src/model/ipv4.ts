// IPv4 addresses as unsigned 32-bit numbers, CIDR blocks and ranges: the one
// parser for the config, the network pool, NetOut rules and the host's iptables
// and ip command lines. Printed forms are the canonical ones `iptables -S`
// uses, so rules we generate compare equal to rules we read back.

export interface Cidr {
  /** Network address (host bits cleared), unsigned. */
  address: number;
  prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Parses a dotted quad ("10.254.0.1"); undefined when it is not one. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function isIpv4(text: string): boolean {
  return parseIpv4(text) !== undefined;
}

/** Mask with the top `prefix` bits set, unsigned. */
export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Clears the host bits of `address` for a block of `prefix` bits. */
export function networkOf(address: number, prefix: number): number {
  return (address & prefixMask(prefix)) >>> 0;
}

/**
 * Parses "a.b.c.d/n" (or a bare address, as /32). `hostBits` tells whether host bits
 * were set (e.g. 10.0.0.5/24); the returned address has them cleared.
 */
export function parseCidr(text: string): (Cidr & { hostBits: boolean }) | undefined {
  const [addr, len, ...rest] = text.split('/');
  if (rest.length > 0 || addr === undefined) return undefined;
  const address = parseIpv4(addr);
  if (address === undefined) return undefined;
  let prefix = 32;
  if (len !== undefined) {
    if (!/^\d{1,2}$/.test(len) || Number(len) > 32) return undefined;
    prefix = Number(len);
  }
  const network = networkOf(address, prefix);
  return { address: network, prefix, hostBits: network !== address };
}

/** Canonical `a.b.c.d/n`, as iptables prints it. */
export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.address)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return networkOf(ip, c.prefix) === c.address;
}

/** The smallest CIDR block that contains every address in [first, last]. */
export function coveringCidr(first: number, last: number): Cidr {
  let prefix = 32;
  while (prefix > 0 && networkOf(first, prefix) !== networkOf(last, prefix)) prefix--;
  return { address: networkOf(first, prefix), prefix };
}

/** `a.b.c.d-e.f.g.h` with start <= end, as iptables' iprange match takes it. */
export function parseIpRange(text: string): { start: number; end: number } | undefined {
  const [a, b, ...rest] = text.split('-');
  if (rest.length > 0 || a === undefined || b === undefined) return undefined;
  const start = parseIpv4(a.trim());
  const end = parseIpv4(b.trim());
  if (start === undefined || end === undefined || start > end) return undefined;
  return { start, end };
}
