// The Warden stream framing: `<decimal length>\r\n<length bytes>\r\n`, repeated.
// FrameDecoder takes socket chunks as they come (a frame may be split across
// reads, several may arrive in one) and hands out whole frame bodies.

export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

export class FramingError extends Error {
  override name = 'FramingError';
  /** Whole frames that came before the bad bytes in the same push (see push). */
  frames: Buffer[] = [];
}

export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Body length of the frame being read, or -1 while reading its header. */
  private expected = -1;
  private readonly maxHeaderDigits: number;
  private readonly maxFrameBytes: number;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
    this.maxHeaderDigits = String(maxFrameBytes).length;
  }

  /** Bytes held for an incomplete frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /**
   * Feed a chunk; returns the complete frame bodies it finished. Throws
   * FramingError, carrying in `frames` the frames the chunk finished before
   * the bad bytes: whether a good frame and a bad one arrive in one read or in
   * two is up to the kernel, so the good one must not be lost either way.
   */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Buffer[] = [];
    try {
      this.extract(frames);
    } catch (err) {
      if (err instanceof FramingError) err.frames = frames;
      throw err;
    }
    return frames;
  }

  private extract(frames: Buffer[]): void {
    for (;;) {
      if (this.expected < 0) {
        const header = this.readHeader();
        if (header === undefined) break;
        this.expected = header;
      }
      if (this.buffered < this.expected + 2) break;
      const all = this.take(this.expected + 2);
      if (all[this.expected] !== 13 || all[this.expected + 1] !== 10) {
        throw new FramingError(`frame of ${this.expected} bytes is not followed by \\r\\n`);
      }
      frames.push(all.subarray(0, this.expected));
      this.expected = -1;
    }
  }

  private readHeader(): number | undefined {
    const buf = this.chunks.length === 1 ? this.chunks[0] : this.flatten();
    const limit = Math.min(buf.length, this.maxHeaderDigits + 2);
    let value = 0;
    for (let i = 0; i < limit; i++) {
      const c = buf[i];
      if (c >= 48 && c <= 57) {
        value = value * 10 + (c - 48);
        continue;
      }
      if (c === 13 && i > 0) {
        if (i + 1 >= buf.length) return undefined;
        if (buf[i + 1] !== 10) throw new FramingError('frame length is not followed by \\r\\n');
        if (value > this.maxFrameBytes) {
          throw new FramingError(`frame of ${value} bytes exceeds the limit of ${this.maxFrameBytes}`);
        }
        this.take(i + 2);
        return value;
      }
      throw new FramingError(`frame length is not a decimal number (byte 0x${c.toString(16)} at ${i})`);
    }
    if (buf.length >= this.maxHeaderDigits + 2) {
      throw new FramingError(`frame length has more than ${this.maxHeaderDigits} digits`);
    }
    return undefined;
  }

  private flatten(): Buffer {
    const one = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [one];
    return one;
  }

  /** Remove and return the first n buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}
