// A FIFO of fixed-width numeric records in a growable ring buffer: O(1) push and
// shift without the O(n) Array#shift, and no per-entry objects for large pools.

export class RingQueue {
  readonly #stride: number;
  #buf: Float64Array;
  #head = 0;
  #length = 0;

  constructor(stride: number, initialCapacity = 16) {
    this.#stride = stride;
    this.#buf = new Float64Array(stride * Math.max(1, initialCapacity));
  }

  get length(): number {
    return this.#length;
  }

  #capacity(): number {
    return this.#buf.length / this.#stride;
  }

  push(...record: number[]): void {
    if (this.#length === this.#capacity()) this.#grow();
    const slot = ((this.#head + this.#length) % this.#capacity()) * this.#stride;
    for (let i = 0; i < this.#stride; i++) this.#buf[slot + i] = record[i] ?? 0;
    this.#length++;
  }

  /** Field `field` of the oldest record; undefined when empty. */
  peek(field: number): number | undefined {
    if (this.#length === 0) return undefined;
    return this.#buf[this.#head * this.#stride + field];
  }

  /** Drops the oldest record (read it first with peek). */
  shift(): void {
    if (this.#length === 0) return;
    this.#head = (this.#head + 1) % this.#capacity();
    this.#length--;
    if (this.#length === 0) this.#head = 0;
  }

  /** Keeps only the records for which keep(first field, second field) is true, in order. O(length). */
  retain(keep: (field0: number, field1: number) => boolean): void {
    const cap = this.#capacity();
    const s = this.#stride;
    const next = new Float64Array(Math.max(16, this.#length) * s);
    let n = 0;
    for (let i = 0; i < this.#length; i++) {
      const from = ((this.#head + i) % cap) * s;
      if (!keep(this.#buf[from], this.#buf[from + 1])) continue;
      next.set(this.#buf.subarray(from, from + s), n * s);
      n++;
    }
    this.#buf = next;
    this.#head = 0;
    this.#length = n;
  }

  #grow(): void {
    const next = new Float64Array(this.#buf.length * 2);
    // Unroll the ring so the oldest record is first.
    const headOffset = this.#head * this.#stride;
    next.set(this.#buf.subarray(headOffset), 0);
    next.set(this.#buf.subarray(0, headOffset), this.#buf.length - headOffset);
    this.#buf = next;
    this.#head = 0;
  }
}
