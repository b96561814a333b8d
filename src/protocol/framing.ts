// The Warden stream framing: `<decimal length>\r\n<length bytes>\r\n`, repeated.
// FrameDecoder takes socket chunks as they come (a frame may be split across
// reads, several may arrive in one) and hands out whole frame bodies.

export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/**
 * A frame larger than this that is still arriving is gathered in one buffer of
 * its own size rather than as a list of socket chunks: the chunks are then
 * short-lived (the allocator reuses their memory instead of growing), and a
 * large allocation is mapped on its own and returned to the system when freed.
 */
const GATHER_FROM_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

export class FramingError extends Error {
  override name = 'FramingError';
  readonly code = 'invalid';
  /** Whole frames that came before the bad bytes in the same push (see push). */
  frames: Buffer[] = [];
}

export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The frame being gathered (body + \r\n) once it is known to be large; chunks is then empty. */
  private body: Buffer | undefined;
  /** Body length of the frame being read, or -1 while reading its header. */
  private expected = -1;
  private readonly maxHeaderDigits: number;
  private readonly maxFrameBytes: number;

  /** Chunks given to push are the decoder's to free once copied (socket reads nobody else holds). */
  private readonly ownsChunks: boolean;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES, options: { ownsChunks?: boolean } = {}) {
    this.maxFrameBytes = maxFrameBytes;
    this.ownsChunks = options.ownsChunks ?? false;
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
    const frames: Buffer[] = [];
    try {
      const rest = this.gather(chunk, frames);
      if (rest.length === 0) return frames;
      this.chunks.push(rest);
      this.buffered += rest.length;
      this.extract(frames);
    } catch (err) {
      if (err instanceof FramingError) err.frames = frames;
      throw err;
    }
    return frames;
  }

  /** Drops whatever is held (the connection is closing): nothing stays referenced. */
  reset(): void {
    this.chunks = [];
    // The gathered buffer is ours alone (no view of it was handed out): detaching it
    // frees its memory now rather than at some later garbage collection.
    (this.body?.buffer as ArrayBuffer | undefined)?.transfer(0);
    this.body = undefined;
    this.buffered = 0;
    this.expected = -1;
  }

  /** Copies what belongs to the frame being gathered; returns the rest of the chunk. */
  private gather(chunk: Buffer, frames: Buffer[]): Buffer {
    const body = this.body;
    if (body === undefined) return chunk;
    const k = Math.min(chunk.length, body.length - this.buffered);
    chunk.copy(body, this.buffered, 0, k);
    this.buffered += k;
    const rest = k === chunk.length ? EMPTY : chunk.subarray(k);
    if (rest === EMPTY) this.free(chunk);
    if (this.buffered < body.length) return rest;
    this.body = undefined;
    this.buffered = 0;
    this.finish(body, frames);
    return rest;
  }

  /**
   * A copied socket chunk is garbage, but an idle process collects none: detaching
   * its memory now keeps a large frame from leaving its size in garbage behind.
   */
  private free(chunk: Buffer): void {
    const ab = chunk.buffer;
    if (this.ownsChunks && ab instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.length === ab.byteLength) ab.transfer(0);
  }

  private finish(all: Buffer, frames: Buffer[]): void {
    if (all[this.expected] !== 13 || all[this.expected + 1] !== 10) {
      throw new FramingError(`frame of ${this.expected} bytes is not followed by \\r\\n`);
    }
    frames.push(all.subarray(0, this.expected));
    this.expected = -1;
  }

  private extract(frames: Buffer[]): void {
    for (;;) {
      if (this.expected < 0) {
        const header = this.readHeader();
        if (header === undefined) break;
        this.expected = header;
      }
      if (this.buffered < this.expected + 2) {
        if (this.expected + 2 > GATHER_FROM_BYTES) {
          const held = this.buffered;
          this.body = Buffer.allocUnsafeSlow(this.expected + 2);
          if (held > 0) this.take(held).copy(this.body, 0);
          this.buffered = held;
        }
        break;
      }
      this.finish(this.take(this.expected + 2), frames);
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
