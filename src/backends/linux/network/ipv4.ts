// IPv4 parsing for everything that ends up in an iptables or ip command line:
// values are validated and printed in the canonical form `iptables -S` uses, so
// rules we generate can be compared with rules we read back.

export interface Cidr {
  /** Network address as an unsigned 32-bit integer (host bits cleared). */
  base: number;
  prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** The address as an unsigned integer, or undefined when s is not a dotted quad. */
export function parseIpv4(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function isIpv4(s: string): boolean {
  return parseIpv4(s) !== undefined;
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** `a.b.c.d/n` or a bare address (taken as /32); host bits are cleared. */
export function parseCidr(s: string): Cidr | undefined {
  const [addr, len, ...rest] = s.split('/');
  if (rest.length > 0 || addr === undefined) return undefined;
  const ip = parseIpv4(addr);
  if (ip === undefined) return undefined;
  let prefix = 32;
  if (len !== undefined) {
    if (!/^\d{1,2}$/.test(len) || Number(len) > 32) return undefined;
    prefix = Number(len);
  }
  return { base: (ip & mask(prefix)) >>> 0, prefix };
}

/** Canonical `a.b.c.d/n`, as iptables prints it. */
export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ((ip & mask(c.prefix)) >>> 0) === c.base;
}

/** `a.b.c.d-e.f.g.h` with start <= end, as iptables' iprange match takes it. */
export function parseIpRange(s: string): { start: number; end: number } | undefined {
  const [a, b, ...rest] = s.split('-');
  if (rest.length > 0 || a === undefined || b === undefined) return undefined;
  const start = parseIpv4(a.trim());
  const end = parseIpv4(b.trim());
  if (start === undefined || end === undefined || start > end) return undefined;
  return { start, end };
}
