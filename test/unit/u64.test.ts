// uint64 values through the codec and the snapshot JSON: exact, numbers while safe.
import { describe, expect, it } from 'vitest';
import { decodeBody, encodeBody } from '../../src/protocol/codec.ts';
import { parseU64, safeNumber, u64 } from '../../src/protocol/u64.ts';
import { parse64, stringify64 } from '../../src/protocol/json64.ts';

describe('uint64 in the codec', () => {
  it('round-trips values above 2^53 exactly, as bigints', () => {
    for (const v of [9223372036854771712n, 2n ** 64n - 1n, 2n ** 53n + 1n]) {
      expect(decodeBody('LimitMemoryResponse', encodeBody('LimitMemoryResponse', { limit_in_bytes: v }))).toEqual({ limit_in_bytes: v });
    }
  });

  it('hands out safe values as numbers, whichever form they were encoded from', () => {
    expect(decodeBody('LimitCpuResponse', encodeBody('LimitCpuResponse', { limit_in_shares: 512n }))).toEqual({ limit_in_shares: 512 });
    const info = decodeBody('InfoResponse', encodeBody('InfoResponse', {
      job_ids: [3, 4],
      memory_stat: { rss: 4096, hierarchical_memory_limit: 9223372036854771712n },
    }));
    expect(info).toEqual({ job_ids: [3, 4], memory_stat: { rss: 4096, hierarchical_memory_limit: 9223372036854771712n } });
  });

  it('writes the same bytes for a number and the bigint of the same value', () => {
    expect(Buffer.from(encodeBody('LimitMemoryRequest', { handle: 'h', limit_in_bytes: 1 << 30 })))
      .toEqual(Buffer.from(encodeBody('LimitMemoryRequest', { handle: 'h', limit_in_bytes: 1n << 30n })));
  });

  it('leaves bytes fields alone', () => {
    const r = decodeBody<{ stdout: Uint8Array }>('RunResponse', encodeBody('RunResponse', { exit_status: 0, stdout: Buffer.from([0xff, 0]) }));
    expect(Buffer.from(r.stdout)).toEqual(Buffer.from([0xff, 0]));
  });
});

describe('u64 helpers', () => {
  it('parses kernel numbers exactly and refuses anything else', () => {
    expect(parseU64('9223372036854771712\n')).toBe(9223372036854771712n);
    expect(parseU64(' 1024 ')).toBe(1024);
    expect(parseU64('max')).toBeUndefined();
    expect(parseU64('-1')).toBeUndefined();
  });
  it('narrows to numbers only when exact', () => {
    expect(u64(2n ** 53n - 1n)).toBe(Number.MAX_SAFE_INTEGER);
    expect(u64(2n ** 53n)).toBe(2n ** 53n);
    expect(safeNumber(10n)).toBe(10);
    expect(safeNumber(2n ** 60n)).toBeUndefined();
    expect(safeNumber(2 ** 60)).toBeUndefined();
  });
});

describe('snapshot JSON', () => {
  it('keeps a bigint exact through write and read, and plain numbers as numbers', () => {
    const record = { limits: { memory_limit_in_bytes: 2n ** 60n + 1n, cpu_limit_in_shares: 512 }, name: 'x' };
    const text = stringify64(record, 1);
    expect(text).toContain('"memory_limit_in_bytes": 1152921504606846977');
    expect(parse64(text)).toEqual(record);
  });
});
