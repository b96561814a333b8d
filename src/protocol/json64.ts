// JSON for records that hold uint64 values (protocol U64: number or bigint).
// Plain JSON.stringify throws on a bigint and JSON.parse rounds integers above
// 2^53; these write a bigint as the bare number and read such an integer back
// as a bigint, so a limit like 9223372036854771712 survives a snapshot exactly.

type Reviver = (key: string, value: unknown, context?: { source?: string }) => unknown;

const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? rawJSON(value.toString()) : value;
}

const reviver: Reviver = (_key, value, context) => {
  if (typeof value !== 'number' || Number.isSafeInteger(value)) return value;
  const source = context?.source;
  return source !== undefined && /^-?\d+$/.test(source) ? BigInt(source) : value;
};

/**
 * A replacer turns off JSON.stringify's fast path (half the speed on a snapshot with
 * a few hundred jobs), and a bigint is rare (a limit above 2^53): plain first, and
 * with the replacer only when plain met a bigint.
 */
export function stringify64(value: unknown, space?: number): string {
  try {
    return JSON.stringify(value, null, space);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    return JSON.stringify(value, replacer, space);
  }
}

export function parse64(text: string): unknown {
  return JSON.parse(text, reviver as (this: unknown, key: string, value: unknown) => unknown);
}
