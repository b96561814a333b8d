// FrameDecoder's gathering of large frames: a frame past 64 KiB that is still
// arriving is copied into one buffer of its size; whatever way the bytes are
// split across reads, the frames that come out are the same, and pendingBytes
// counts what is held for the unfinished one.
import { describe, expect, it } from 'vitest';
import { FrameDecoder, FramingError } from '../../src/protocol/framing.ts';

function frame(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${body.length}\r\n`), body, Buffer.from('\r\n')]);
}

function body(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function split(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; off < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(Buffer.from(bytes.subarray(off, off + n)));
    off += n;
  }
  return out;
}

describe('FrameDecoder gathering large frames', () => {
  const big = body(300_000, 1);
  const small = body(10, 2);
  const stream = Buffer.concat([frame(small), frame(big), frame(small), frame(big)]);

  for (const sizes of [[1], [7, 65536, 3], [13], [65536], [stream.length], [200_000, 1]]) {
    it(`gives the same frames for reads of ${sizes.join(', ')} bytes${sizes[0] === 1 ? ' (slow, one byte at a time for the header)' : ''}`, () => {
      const d = new FrameDecoder(1024 * 1024, { ownsChunks: true });
      const chunks = sizes[0] === 1 ? [...split(stream.subarray(0, 20), [1]), ...split(stream.subarray(20), [4096])] : split(stream, sizes);
      const frames: Buffer[] = [];
      for (const c of chunks) frames.push(...d.push(c).map((f) => Buffer.from(f)));
      expect(frames.map((f) => f.length)).toEqual([10, 300_000, 10, 300_000]);
      expect(frames[1]!.equals(big)).toBe(true);
      expect(frames[3]!.equals(big)).toBe(true);
      expect(d.pendingBytes).toBe(0);
    });
  }

  it('gathers a frame whose header came alone in a read', () => {
    const d = new FrameDecoder(1024 * 1024, { ownsChunks: true });
    expect(d.push(Buffer.from(`${big.length}\r\n`))).toEqual([]);
    expect(d.pendingBytes).toBe(0);
    const rest = Buffer.concat([big, Buffer.from('\r\n')]);
    expect(d.push(Buffer.from(rest.subarray(0, 5000)))).toEqual([]);
    expect(d.pendingBytes).toBe(5000);
    const [f] = d.push(Buffer.from(rest.subarray(5000)));
    expect(f!.equals(big)).toBe(true);
  });

  it('counts the bytes held for an unfinished frame, and holds none after reset', () => {
    const d = new FrameDecoder(1024 * 1024);
    const bytes = frame(big);
    expect(d.push(bytes.subarray(0, 100_000))).toEqual([]);
    expect(d.pendingBytes).toBe(100_000 - '300000\r\n'.length);
    d.reset();
    expect(d.pendingBytes).toBe(0);
    expect(d.push(frame(small))).toEqual([small]);
  });

  it('refuses a gathered frame not followed by \\r\\n', () => {
    const d = new FrameDecoder(1024 * 1024);
    const bad = Buffer.concat([Buffer.from(`${big.length}\r\n`), big, Buffer.from('xx')]);
    d.push(bad.subarray(0, 1000));
    expect(() => d.push(bad.subarray(1000))).toThrow(FramingError);
  });
});
