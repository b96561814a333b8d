// The engine under every pool: hands out indexes 0..size-1, synchronously and in
// O(1) (amortized), with the original Warden's order and release delay.
//
// Order: never-used entries first, in index order; then released entries in the
// order they were released (the original kept one FIFO with released entries at the
// back). A released entry waits `releaseDelayMs` before it can be handed out again,
// so the kernel can let go of lingering connections on a network, and a uid or port
// is not reused while something may still hold it.
//
// The delay is checked against a monotonic clock when entries are acquired; there
// are no timers, so nothing keeps the process alive or needs closing.
import { RingQueue } from './ring-queue.ts';

const FREE = 0; // never handed out
const TAKEN = 1;
const COOLING = 2; // released, waiting out the release delay
const READY = 3; // released and reusable

export type EntryState = 'free' | 'taken' | 'cooling';

export interface IndexPoolOptions {
  /** Number of entries. */
  size: number;
  /** Milliseconds a released entry waits before it is handed out again. Default 0. */
  releaseDelayMs?: number;
  /** Monotonic clock in milliseconds. Default performance.now (tests inject their own). */
  now?: () => number;
}

/** Largest pool we allocate for (state is 5 bytes per entry). */
export const MAX_POOL_SIZE = 1 << 24;

export class IndexPool {
  readonly size: number;
  readonly releaseDelayMs: number;
  readonly #now: () => number;
  readonly #state: Uint8Array;
  /** Bumped on every state change, so stale queue records are recognised and skipped. */
  readonly #gen: Uint32Array;
  /** Every index below it has been handed out at least once (is not FREE). */
  #freshCursor = 0;
  /** Released entries: (index, gen, readyAt), oldest first; readyAt grows along the queue. */
  readonly #cooling = new RingQueue(3);
  /** Released entries past their delay: (index, gen), oldest first. */
  readonly #ready = new RingQueue(2);
  #takenCount = 0;
  #coolingCount = 0;
  #readyCount = 0;

  constructor(options: IndexPoolOptions) {
    const { size, releaseDelayMs = 0 } = options;
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_POOL_SIZE) {
      throw new RangeError(`pool size must be an integer between 0 and ${MAX_POOL_SIZE}, got ${size}`);
    }
    if (!(releaseDelayMs >= 0) || !Number.isFinite(releaseDelayMs)) {
      throw new RangeError(`release delay must be a non-negative number, got ${releaseDelayMs}`);
    }
    this.size = size;
    this.releaseDelayMs = releaseDelayMs;
    this.#now = options.now ?? (() => performance.now());
    this.#state = new Uint8Array(size);
    this.#gen = new Uint32Array(size);
  }

  /** Entries that can be handed out now. */
  get free(): number {
    this.#settle();
    return this.size - this.#takenCount - this.#coolingCount;
  }

  get taken(): number {
    return this.#takenCount;
  }

  /** Released entries still waiting out the release delay. */
  get cooling(): number {
    this.#settle();
    return this.#coolingCount;
  }

  /** Records held in the release queues, live or stale (diagnostics; stays within a small multiple of the live ones). */
  get queuedRecords(): number {
    return this.#cooling.length + this.#ready.length;
  }

  /** Milliseconds until the next cooling entry becomes free; undefined when none is cooling. */
  nextReadyInMs(): number | undefined {
    this.#settle();
    while (this.#cooling.length > 0) {
      const index = this.#cooling.peek(0)!;
      if (this.#isCurrent(index, this.#cooling.peek(1)!, COOLING)) {
        return Math.max(0, this.#cooling.peek(2)! - this.#now());
      }
      this.#cooling.shift();
    }
    return undefined;
  }

  stateOf(index: number): EntryState {
    this.#check(index);
    this.#settle();
    const s = this.#state[index];
    return s === TAKEN ? 'taken' : s === COOLING ? 'cooling' : 'free';
  }

  /** Takes the next entry in order; undefined when none is free. */
  acquire(): number | undefined {
    while (this.#freshCursor < this.size && this.#state[this.#freshCursor] !== FREE) this.#freshCursor++;
    if (this.#freshCursor < this.size) {
      const index = this.#freshCursor++;
      this.#set(index, TAKEN);
      this.#takenCount++;
      return index;
    }
    this.#settle();
    while (this.#ready.length > 0) {
      const index = this.#ready.peek(0)!;
      const gen = this.#ready.peek(1)!;
      this.#ready.shift();
      if (!this.#isCurrent(index, gen, READY)) continue;
      this.#set(index, TAKEN);
      this.#readyCount--;
      this.#takenCount++;
      return index;
    }
    return undefined;
  }

  /**
   * Takes this entry if it is free. Returns 'ok', or why not: 'taken', or 'cooling'
   * (released less than the release delay ago; the original refused those too).
   */
  acquireSpecific(index: number): 'ok' | 'taken' | 'cooling' {
    this.#check(index);
    this.#settle();
    const s = this.#state[index];
    if (s === TAKEN) return 'taken';
    if (s === COOLING) return 'cooling';
    if (s === READY) this.#readyCount--;
    this.#set(index, TAKEN);
    this.#takenCount++;
    this.#compact();
    return 'ok';
  }

  /**
   * Marks an entry taken whatever its state, for recovery of containers after a
   * restart. Returns false when it was already taken (two claimants).
   */
  take(index: number): boolean {
    this.#check(index);
    const s = this.#state[index];
    if (s === TAKEN) return false;
    if (s === COOLING) this.#coolingCount--;
    if (s === READY) this.#readyCount--;
    this.#set(index, TAKEN);
    this.#takenCount++;
    this.#compact();
    return true;
  }

  /** Gives an entry back; it is reusable after the release delay. Returns false (and does nothing) when it was not taken. */
  release(index: number): boolean {
    this.#check(index);
    if (this.#state[index] !== TAKEN) return false;
    this.#takenCount--;
    const gen = this.#set(index, COOLING);
    this.#coolingCount++;
    this.#cooling.push(index, gen, this.#now() + this.releaseDelayMs);
    return true;
  }

  /** Moves released entries whose delay has passed to the ready queue. */
  #settle(): void {
    if (this.#cooling.length === 0) return;
    const now = this.#now();
    while (this.#cooling.length > 0) {
      const index = this.#cooling.peek(0)!;
      const gen = this.#cooling.peek(1)!;
      if (this.#isCurrent(index, gen, COOLING)) {
        if (this.#cooling.peek(2)! > now) return;
        this.#ready.push(index, this.#set(index, READY));
        this.#coolingCount--;
        this.#readyCount++;
      }
      this.#cooling.shift();
    }
  }

  /**
   * Entries taken out of order (acquireSpecific, take) leave stale records in the
   * queues; drop them once they outnumber the live ones, so memory stays bounded
   * (amortized O(1): each rebuild is paid for by the stale records it drops).
   */
  #compact(): void {
    if (this.#ready.length > 2 * this.#readyCount + 32) {
      this.#ready.retain((index, gen) => this.#isCurrent(index, gen, READY));
    }
    if (this.#cooling.length > 2 * this.#coolingCount + 32) {
      this.#cooling.retain((index, gen) => this.#isCurrent(index, gen, COOLING));
    }
  }

  #isCurrent(index: number, gen: number, state: number): boolean {
    return this.#gen[index] === gen && this.#state[index] === state;
  }

  #set(index: number, state: number): number {
    this.#state[index] = state;
    const gen = (this.#gen[index] + 1) >>> 0;
    this.#gen[index] = gen;
    return gen;
  }

  #check(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`pool index ${index} out of range 0..${this.size - 1}`);
    }
  }
}
