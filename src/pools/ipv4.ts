// IPv4 addresses as unsigned 32-bit numbers, and CIDR blocks. Small and strict:
// the config and the network pool both need to parse, mask and print them.

export interface Cidr {
  /** Network address (host bits cleared), unsigned. */
  address: number;
  prefix: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** Parses dotted-quad IPv4 ("10.254.0.1"); undefined when it is not one. */
export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
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
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const address = parseIPv4(addrText);
  if (address === undefined) return undefined;
  let prefix = 32;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]?)$/.test(p)) return undefined;
    prefix = Number(p);
    if (prefix > 32) return undefined;
  }
  const network = networkOf(address, prefix);
  return { address: network, prefix, hostBits: network !== address };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.address)}/${c.prefix}`;
}

/** The smallest CIDR block that contains every address in [first, last]. */
export function coveringCidr(first: number, last: number): Cidr {
  let prefix = 32;
  while (prefix > 0 && networkOf(first, prefix) !== networkOf(last, prefix)) prefix--;
  return { address: networkOf(first, prefix), prefix };
}
