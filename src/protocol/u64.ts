// Arithmetic and parsing for U64 values (number up to 2^53, bigint above),
// so that no uint64 is rounded on its way through the daemon.
import type { U64 } from './types.ts';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The U64 form of an exact integer: a number when a double holds it exactly. */
export function u64(v: bigint): U64 {
  return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v;
}

export function toBigInt(v: U64): bigint {
  return typeof v === 'bigint' ? v : BigInt(v);
}

/** An unsigned decimal integer as written by the kernel (cgroup files); undefined when it is not one. */
export function parseU64(text: string): U64 | undefined {
  const t = text.trim();
  return /^\d+$/.test(t) ? u64(BigInt(t)) : undefined;
}

/** The value as a number when it is a safe integer (the only kind host tools here take), else undefined. */
export function safeNumber(v: U64): number | undefined {
  return typeof v === 'number' ? (Number.isSafeInteger(v) ? v : undefined) : v <= MAX_SAFE ? Number(v) : undefined;
}
