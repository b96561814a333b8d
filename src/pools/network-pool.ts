// The /30 networks containers get, one each: network address, host side .1,
// container side .2, broadcast .3.
import { PoolError, PoolExhaustedError } from './errors.ts';
import { CountedPool } from './counted-pool.ts';
import { IndexPool } from './index-pool.ts';
import { coolingMessage, exhaustedMessage } from './range-pool.ts';
import { coveringCidr, formatCidr, formatIpv4, networkOf, parseCidr, parseIpv4 } from '../model/ipv4.ts';

/** One container's /30. */
export interface Subnet {
  /** Network address, e.g. "10.254.0.4" (what ContainerRecord.network holds). */
  network: string;
  /** "10.254.0.4/30". */
  cidr: string;
  /** Host side of the veth pair: network + 1. */
  hostIp: string;
  /** Container side: network + 2. */
  containerIp: string;
  broadcast: string;
}

export interface NetworkPoolOptions {
  /** The pool as a CIDR block: every /30 in it ("10.254.0.0/24" = 64 networks). */
  network?: string;
  /** Or the original's other form: the first /30 and the number of /30s. */
  startAddress?: string;
  size?: number;
  /** Milliseconds a released network waits before it is handed out again. Default 5000 (the original's 5 s). */
  releaseDelayMs?: number;
  /** Monotonic clock in milliseconds (tests). Default performance.now. */
  now?: () => number;
}

const SUBNET_SIZE = 4;

export class NetworkPool extends CountedPool {
  /** The pool as shown in messages: its CIDR when it is exactly one block, else "first-last". */
  readonly name: string;
  /** First address of the pool (a /30 network address), unsigned. */
  private readonly first: number;

  constructor(options: NetworkPoolOptions) {
    let first: number;
    let count: number;
    if (options.network !== undefined) {
      const cidr = parseCidr(options.network);
      if (cidr === undefined || cidr.prefix > 30) {
        throw new PoolError(`invalid pool network ${JSON.stringify(options.network)} (need a.b.c.d/n with n <= 30)`);
      }
      first = cidr.address;
      count = 2 ** (32 - cidr.prefix) / SUBNET_SIZE;
    } else if (options.startAddress !== undefined && options.size !== undefined) {
      const start = parseIpv4(options.startAddress);
      if (start === undefined) throw new PoolError(`invalid pool start address ${JSON.stringify(options.startAddress)}`);
      first = networkOf(start, 30);
      count = options.size;
      if (!Number.isSafeInteger(count) || count < 1 || first + count * SUBNET_SIZE - 1 > 0xffffffff) {
        throw new PoolError(`invalid pool size ${count} from ${formatIpv4(first)}`);
      }
    } else {
      throw new PoolError('a network pool needs either network or startAddress and size');
    }
    super(new IndexPool({ size: count, releaseDelayMs: options.releaseDelayMs ?? 5000, now: options.now }));
    this.first = first;
    const last = first + count * SUBNET_SIZE - 1;
    const cover = coveringCidr(first, last);
    const exact = cover.address === first && 2 ** (32 - cover.prefix) === count * SUBNET_SIZE;
    this.name = exact ? formatCidr(cover) : `${formatIpv4(first)}-${formatIpv4(last)}`;
  }

  /**
   * From the config's `network` section: pool_start_address + pool_size are the exact
   * pool (config.ts derives them from pool_network when that was given).
   */
  static fromConfig(
    network: { pool_start_address: string; pool_size: number; release_delay: number },
    options: { now?: () => number } = {},
  ): NetworkPool {
    return new NetworkPool({
      startAddress: network.pool_start_address,
      size: network.pool_size,
      releaseDelayMs: network.release_delay * 1000,
      now: options.now,
    });
  }

  /** Whether the /30 holding this address is part of the pool. */
  contains(address: string): boolean {
    return this.#indexOf(address) !== undefined;
  }

  isTaken(address: string): boolean {
    const index = this.#indexOf(address);
    return index !== undefined && this.slots.stateOf(index) === 'taken';
  }

  /** Takes the next free network; throws PoolExhaustedError when there is none. */
  acquire(): Subnet {
    const index = this.slots.acquire();
    if (index === undefined) throw new PoolExhaustedError(exhaustedMessage('network', this.name, this.slots));
    return this.#subnet(index);
  }

  /**
   * Takes the /30 holding `address` (any of its four addresses, or "a.b.c.d/30"),
   * as Create's `network` field asks. Throws PoolError when it is malformed, outside
   * the pool, in use, or released less than the release delay ago.
   */
  acquireSpecific(address: string): Subnet {
    const index = this.#requireIndex(address);
    const outcome = this.slots.acquireSpecific(index);
    const cidr = formatCidr({ address: this.first + index * SUBNET_SIZE, prefix: 30 });
    if (outcome === 'taken') throw new PoolError(`network ${cidr} is already in use`);
    if (outcome === 'cooling') throw new PoolError(coolingMessage('network', cidr, this.slots));
    return this.#subnet(index);
  }

  /**
   * Marks the /30 holding `address` taken, for recovery after a restart. Returns its
   * Subnet, or undefined when it is outside the pool (the config changed; nothing to
   * track). Throws PoolError when it is malformed or already taken (claimed twice).
   */
  take(address: string): Subnet | undefined {
    const parsed = parseAddress(address);
    if (parsed === undefined) throw new PoolError(`invalid network address ${JSON.stringify(address)}`);
    const index = this.#indexOfNumber(parsed);
    if (index === undefined) return undefined;
    if (!this.slots.take(index)) {
      throw new PoolError(`network ${formatIpv4(this.first + index * SUBNET_SIZE)}/30 is claimed twice`);
    }
    return this.#subnet(index);
  }

  /**
   * Gives a network back; it is handed out again after the release delay. Harmless
   * for networks not taken, outside the pool, or malformed; returns whether it was taken.
   */
  release(subnet: Subnet | string): boolean {
    const index = this.#indexOf(typeof subnet === 'string' ? subnet : subnet.network);
    if (index === undefined) return false;
    return this.slots.release(index);
  }

  #requireIndex(address: string): number {
    const parsed = parseAddress(address);
    if (parsed === undefined) throw new PoolError(`invalid network address ${JSON.stringify(address)}`);
    const index = this.#indexOfNumber(parsed);
    if (index === undefined) {
      throw new PoolError(`network ${formatIpv4(networkOf(parsed, 30))}/30 is not in pool ${this.name}`);
    }
    return index;
  }

  #indexOf(address: string): number | undefined {
    const parsed = parseAddress(address);
    return parsed === undefined ? undefined : this.#indexOfNumber(parsed);
  }

  #indexOfNumber(address: number): number | undefined {
    const offset = networkOf(address, 30) - this.first;
    if (offset < 0) return undefined;
    const index = offset / SUBNET_SIZE;
    return index < this.slots.size ? index : undefined;
  }

  #subnet(index: number): Subnet {
    const n = this.first + index * SUBNET_SIZE;
    return {
      network: formatIpv4(n),
      cidr: `${formatIpv4(n)}/30`,
      hostIp: formatIpv4(n + 1),
      containerIp: formatIpv4(n + 2),
      broadcast: formatIpv4(n + 3),
    };
  }
}

/** "10.254.0.6" or "10.254.0.4/30" → the address, unsigned; a prefix other than 30 is refused. */
export function parseAddress(text: string): number | undefined {
  if (!text.includes('/')) return parseIpv4(text);
  const slash = text.indexOf('/');
  if (text.slice(slash + 1) !== '30') return undefined;
  return parseIpv4(text.slice(0, slash));
}
