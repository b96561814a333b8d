// A pool of consecutive integers [start, start + size): the base of the uid and
// port pools, which differ only in name and defaults.
import { PoolError, PoolExhaustedError } from './errors.ts';
import { CountedPool } from './counted-pool.ts';
import { IndexPool } from './index-pool.ts';

export interface RangePoolOptions {
  /** First entry. */
  start: number;
  /** Number of entries. */
  size: number;
  /** Milliseconds a released entry waits before it is handed out again. Default 0. */
  releaseDelayMs?: number;
  /** Monotonic clock in milliseconds (tests). Default performance.now. */
  now?: () => number;
}

export class RangePool extends CountedPool {
  /** What an entry is called in messages: "uid", "port". */
  readonly noun: string;
  readonly start: number;

  constructor(noun: string, options: RangePoolOptions) {
    if (!Number.isSafeInteger(options.start)) {
      throw new RangeError(`${noun} pool start must be an integer, got ${options.start}`);
    }
    super(new IndexPool(options));
    this.noun = noun;
    this.start = options.start;
  }

  /** The pool's range as shown in messages: "10000-10063". */
  get name(): string {
    return `${this.start}-${this.start + this.slots.size - 1}`;
  }

  contains(entry: number): boolean {
    return Number.isInteger(entry) && entry >= this.start && entry < this.start + this.slots.size;
  }

  isTaken(entry: number): boolean {
    return this.contains(entry) && this.slots.stateOf(entry - this.start) === 'taken';
  }

  /** Takes the next free entry; throws PoolExhaustedError when there is none. */
  acquire(): number {
    const index = this.slots.acquire();
    if (index === undefined) throw new PoolExhaustedError(exhaustedMessage(this.noun, this.name, this.slots));
    return this.start + index;
  }

  /** Takes this entry; throws PoolError when it is outside the pool, in use, or just released. */
  acquireSpecific(entry: number): number {
    if (!this.contains(entry)) throw new PoolError(`${this.noun} ${entry} is not in pool ${this.name}`);
    const outcome = this.slots.acquireSpecific(entry - this.start);
    if (outcome === 'taken') throw new PoolError(`${this.noun} ${entry} is already in use`);
    if (outcome === 'cooling') throw new PoolError(coolingMessage(this.noun, String(entry), this.slots));
    return entry;
  }

  /**
   * Marks an entry taken, for recovery after a restart. Returns false when it is
   * outside the pool (the config changed; nothing to track). Throws PoolError when
   * it is already taken (claimed twice).
   */
  take(entry: number): boolean {
    if (!this.contains(entry)) return false;
    if (!this.slots.take(entry - this.start)) {
      throw new PoolError(`${this.noun} ${entry} is claimed twice`);
    }
    return true;
  }

  /** Gives an entry back. Harmless for entries not taken or outside the pool; returns whether it was taken. */
  release(entry: number): boolean {
    if (!this.contains(entry)) return false;
    return this.slots.release(entry - this.start);
  }
}

/** "no free uid in pool 10000-10063", with a hint when entries are only waiting out the delay. */
export function exhaustedMessage(noun: string, poolName: string, pool: IndexPool): string {
  const base = `no free ${noun} in pool ${poolName}`;
  const wait = pool.nextReadyInMs();
  if (wait === undefined) return base;
  return `${base} (${pool.cooling} released within the release delay; next one free in ${formatSeconds(wait)})`;
}

export function coolingMessage(noun: string, entry: string, pool: IndexPool): string {
  return `${noun} ${entry} was released less than ${formatSeconds(pool.releaseDelayMs)} ago; try again later`;
}

function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
}
