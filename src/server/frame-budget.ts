// The bytes of unfinished frames held across all connections. Each connection
// charges what its decoder holds after every read; one that takes the total past
// the limit is closed (server.max_buffered_bytes), so many clients that each send
// most of a large frame and stop cannot together grow the daemon without bound.
export class FrameBudget {
  readonly limit: number;
  private used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get usedBytes(): number {
    return this.used;
  }

  /** Moves a holder's charge from `before` to `after` bytes; false when the total is now over the limit. */
  recharge(before: number, after: number): boolean {
    this.used += after - before;
    return this.used <= this.limit;
  }
}
