// What every pool reports about itself (for metrics, health and the pool
// answers): its size and how many entries are free, taken, or waiting out
// their release delay. The uid, port and network pools share it.
import type { IndexPool } from './index-pool.ts';

export abstract class CountedPool {
  protected readonly slots: IndexPool;

  protected constructor(slots: IndexPool) {
    this.slots = slots;
  }

  /** Entries in the pool (for networks: /30s, the most containers it allows). */
  get total(): number {
    return this.slots.size;
  }

  /** Entries that can be handed out now. */
  get free(): number {
    return this.slots.free;
  }

  get taken(): number {
    return this.slots.taken;
  }

  /** Released entries waiting out the release delay. */
  get cooling(): number {
    return this.slots.cooling;
  }
}
