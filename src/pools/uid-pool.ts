// The uids that containers' unprivileged `vcap` user runs as, one per container.
import { RangePool, type RangePoolOptions } from './range-pool.ts';

export type UidPoolOptions = RangePoolOptions;

export class UidPool extends RangePool {
  constructor(options: UidPoolOptions) {
    if (options.start < 1 || options.start + options.size - 1 > 0xfffffffe) {
      throw new RangeError(`uid pool ${options.start}+${options.size} must lie within 1..4294967294`);
    }
    super('uid', options);
  }

  /** From the config's `user` section (original defaults: start 10000, 64 uids). */
  static fromConfig(user: { pool_start_uid: number; pool_size: number }, options: { now?: () => number } = {}): UidPool {
    return new UidPool({ start: user.pool_start_uid, size: user.pool_size, ...options });
  }
}
