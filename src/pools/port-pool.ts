// Host ports for NetIn mappings. The default range sits above the kernel's
// ephemeral range, so a pooled port never collides with an outgoing connection.
import { RangePool, type RangePoolOptions } from './range-pool.ts';

export type PortPoolOptions = RangePoolOptions;

export class PortPool extends RangePool {
  constructor(options: PortPoolOptions) {
    if (options.start < 1 || options.start + options.size - 1 > 65535) {
      throw new RangeError(`port pool ${options.start}+${options.size} must lie within 1..65535`);
    }
    super('port', options);
  }

  /** From the config's `port` section. */
  static fromConfig(port: { pool_start_port: number; pool_size: number }, options: { now?: () => number } = {}): PortPool {
    return new PortPool({ start: port.pool_start_port, size: port.pool_size, ...options });
  }
}
