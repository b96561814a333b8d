import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/protocol/codec.ts';
import { streamDataFrame } from '../../src/protocol/stream-frame.ts';

describe('streamDataFrame', () => {
  // Lengths around every varint boundary of the data, the body and the envelope.
  const sizes = [0, 1, 100, 115, 127, 128, 129, 16_371, 16_383, 16_384, 65_536, 2_097_151, 2_097_152, 3 * 1024 * 1024 + 7];
  for (const name of ['stdout', 'stderr', 'x', 'é'.repeat(70)]) {
    it(`frames ${name.slice(0, 6)} chunks byte for byte as encodeFrame does`, () => {
      for (const n of sizes) {
        const data = Buffer.alloc(n, n % 251);
        const { head, tail } = streamDataFrame(name, n);
        const expected = encodeFrame('Stream', 'Response', { name, data });
        expect(Buffer.concat([head, data, tail]).equals(expected), `${n} bytes`).toBe(true);
      }
    });
  }
});
