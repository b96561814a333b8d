import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/config.ts';
import { PoolError, PoolExhaustedError } from '../../src/pools/errors.ts';
import { IndexPool } from '../../src/pools/index-pool.ts';
import { coveringCidr, formatCidr, formatIpv4, parseCidr, parseIpv4 } from '../../src/model/ipv4.ts';
import { NetworkPool } from '../../src/pools/network-pool.ts';
import { createPools } from '../../src/pools/pools.ts';
import { PortPool } from '../../src/pools/port-pool.ts';
import { RingQueue } from '../../src/pools/ring-queue.ts';
import { UidPool } from '../../src/pools/uid-pool.ts';

/** A clock the test moves by hand. */
function manualClock() {
  let t = 1000;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

describe('ipv4', () => {
  it('parses and formats addresses and blocks', () => {
    expect(parseIpv4('10.254.0.1')).toBe(0x0afe0001);
    expect(formatIpv4(0xffffffff)).toBe('255.255.255.255');
    for (const bad of ['10.254.0', '10.254.0.256', '01.2.3.4', '1.2.3.4 ', 'a.b.c.d', '']) {
      expect(parseIpv4(bad)).toBeUndefined();
    }
    expect(parseCidr('10.254.0.5/24')).toEqual({ address: 0x0afe0000, prefix: 24, hostBits: true });
    expect(parseCidr('0.0.0.0/0')).toEqual({ address: 0, prefix: 0, hostBits: false });
    expect(parseCidr('1.2.3.4')).toEqual({ address: 0x01020304, prefix: 32, hostBits: false });
    expect(parseCidr('1.2.3.4/33')).toBeUndefined();
    expect(parseCidr('1.2.3.4/')).toBeUndefined();
    expect(formatCidr(coveringCidr(parseIpv4('10.254.0.4')!, parseIpv4('10.254.0.43')!))).toBe('10.254.0.0/26');
    expect(formatCidr(coveringCidr(0, 0xffffffff))).toBe('0.0.0.0/0');
  });
});

describe('RingQueue', () => {
  it('is a FIFO across growth, wrap-around and retain', () => {
    const q = new RingQueue(2, 2);
    const model: number[][] = [];
    for (let i = 0; i < 100; i++) {
      q.push(i, -i);
      model.push([i, -i]);
      if (i % 3 === 0) {
        expect([q.peek(0), q.peek(1)]).toEqual(model.shift());
        q.shift();
      }
    }
    q.retain((a) => a % 2 === 0);
    const kept = model.filter(([a]) => a % 2 === 0);
    expect(q.length).toBe(kept.length);
    for (const rec of kept) {
      expect([q.peek(0), q.peek(1)]).toEqual(rec);
      q.shift();
    }
    expect(q.peek(0)).toBeUndefined();
  });
});

describe('NetworkPool', () => {
  it('hands out the /30s of the pool in order: network, host .1, container .2', () => {
    const pool = new NetworkPool({ network: '10.254.0.0/24' });
    expect(pool.name).toBe('10.254.0.0/24');
    expect(pool.total).toBe(64);
    expect(pool.total).toBe(64);
    expect(pool.acquire()).toEqual({
      network: '10.254.0.0',
      cidr: '10.254.0.0/30',
      hostIp: '10.254.0.1',
      containerIp: '10.254.0.2',
      broadcast: '10.254.0.3',
    });
    expect(pool.acquire().network).toBe('10.254.0.4');
    expect(pool.free).toBe(62);
    expect(pool.taken).toBe(2);
  });

  it('throws a clear PoolExhaustedError when every network is taken', () => {
    const pool = new NetworkPool({ network: '10.254.0.0/22' });
    for (let i = 0; i < 256; i++) pool.acquire();
    expect(() => pool.acquire()).toThrow(PoolExhaustedError);
    expect(() => pool.acquire()).toThrow(/^no free network in pool 10\.254\.0\.0\/22$/);
  });

  it('hands a released network out again only after the release delay', () => {
    const clock = manualClock();
    const pool = new NetworkPool({ network: '10.254.0.0/29', releaseDelayMs: 5000, now: clock.now });
    const a = pool.acquire();
    pool.acquire();
    expect(pool.release(a)).toBe(true);
    expect(pool.free).toBe(0);
    expect(pool.cooling).toBe(1);
    expect(() => pool.acquire()).toThrow('no free network in pool 10.254.0.0/29 (1 released within the release delay; next one free in 5s)');
    expect(() => pool.acquireSpecific(a.network)).toThrow('network 10.254.0.0/30 was released less than 5s ago');
    clock.advance(4999);
    expect(() => pool.acquire()).toThrow(PoolExhaustedError);
    clock.advance(1);
    expect(pool.free).toBe(1);
    expect(pool.acquire()).toEqual(a);
  });

  it('reuses released networks last, in the order they were released (the original FIFO)', () => {
    const pool = new NetworkPool({ startAddress: '10.0.0.0', size: 4, releaseDelayMs: 0 });
    const [a, b] = [pool.acquire(), pool.acquire()];
    pool.release(b);
    pool.release(a);
    expect([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()].map((s) => s.network)).toEqual([
      '10.0.0.8',
      '10.0.0.12',
      '10.0.0.4',
      '10.0.0.0',
    ]);
  });

  it('acquires a specific network by any of its addresses', () => {
    const pool = new NetworkPool({ network: '10.254.0.0/24' });
    expect(pool.acquireSpecific('10.254.0.6').network).toBe('10.254.0.4');
    expect(() => pool.acquireSpecific('10.254.0.4/30')).toThrow('network 10.254.0.4/30 is already in use');
    expect(() => pool.acquireSpecific('10.1.0.1')).toThrow('network 10.1.0.0/30 is not in pool 10.254.0.0/24');
    expect(() => pool.acquireSpecific('10.254.1.0')).toThrow(PoolError);
    expect(() => pool.acquireSpecific('nonsense')).toThrow('invalid network address "nonsense"');
    expect(() => pool.acquireSpecific('10.254.0.8/24')).toThrow(PoolError);
    // The ordered acquire skips it.
    expect(pool.acquire().network).toBe('10.254.0.0');
    expect(pool.acquire().network).toBe('10.254.0.8');
  });

  it('takes networks back at recovery, whatever their state', () => {
    const clock = manualClock();
    const pool = new NetworkPool({ network: '10.254.0.0/24', now: clock.now });
    expect(pool.take('10.254.0.8')?.containerIp).toBe('10.254.0.10');
    expect(() => pool.take('10.254.0.9')).toThrow('network 10.254.0.8/30 is claimed twice');
    expect(pool.take('10.99.0.0')).toBeUndefined();
    expect(pool.isTaken('10.254.0.8')).toBe(true);
    pool.release('10.254.0.8');
    expect(pool.take('10.254.0.8')).toBeDefined(); // even while cooling
    expect(pool.taken).toBe(1);
    expect(pool.cooling).toBe(0);
  });

  it('restarts the delay when a network is taken back and released again while cooling', () => {
    const clock = manualClock();
    const pool = new NetworkPool({ network: '10.254.0.0/30', releaseDelayMs: 100, now: clock.now });
    const a = pool.acquire();
    pool.release(a);
    clock.advance(50);
    pool.take(a.network);
    pool.release(a);
    clock.advance(50); // the first release's delay is over, the second's is not
    expect(pool.free).toBe(0);
    expect(() => pool.acquire()).toThrow(PoolExhaustedError);
    clock.advance(50);
    expect(pool.acquire()).toEqual(a);
  });

  it('ignores double releases and strangers', () => {
    const pool = new NetworkPool({ network: '10.254.0.0/30', releaseDelayMs: 0 });
    const a = pool.acquire();
    expect(pool.release(a)).toBe(true);
    expect(pool.release(a)).toBe(false);
    expect(pool.release('10.9.9.9')).toBe(false);
    expect(pool.release('junk')).toBe(false);
    expect(pool.free).toBe(1);
    expect(pool.acquire()).toEqual(a);
    expect(() => pool.acquire()).toThrow(PoolExhaustedError);
  });

  it('is exactly pool_size networks from pool_start_address', () => {
    const pool = new NetworkPool({ startAddress: '10.254.0.4', size: 3 });
    expect(pool.name).toBe('10.254.0.4-10.254.0.15');
    expect(pool.total).toBe(3);
    expect(pool.contains('10.254.0.3')).toBe(false);
    expect(pool.contains('10.254.0.15')).toBe(true);
    expect(pool.contains('10.254.0.16')).toBe(false);
    expect([pool.acquire(), pool.acquire(), pool.acquire()].map((s) => s.network)).toEqual([
      '10.254.0.4',
      '10.254.0.8',
      '10.254.0.12',
    ]);
    expect(() => pool.acquire()).toThrow('no free network in pool 10.254.0.4-10.254.0.15');
  });

  it('handles the top of the address space', () => {
    const pool = new NetworkPool({ network: '255.255.255.0/24' });
    for (let i = 0; i < 63; i++) pool.acquire();
    expect(pool.acquire()).toMatchObject({ network: '255.255.255.252', broadcast: '255.255.255.255' });
  });

  it('refuses malformed pools', () => {
    expect(() => new NetworkPool({ network: '10.0.0.0/31' })).toThrow(PoolError);
    expect(() => new NetworkPool({ network: 'x' })).toThrow(PoolError);
    expect(() => new NetworkPool({ startAddress: '255.255.255.252', size: 2 })).toThrow(PoolError);
    expect(() => new NetworkPool({})).toThrow(PoolError);
  });

  // Scale is checked by behaviour, not by time (timing never decides a test;
  // bench/micro measures the cost): every one of 65k networks is handed out once.
  it('hands out each of 65k networks exactly once through churn', () => {
    const clock = manualClock();
    const pool = new NetworkPool({ network: '10.0.0.0/14', releaseDelayMs: 5000, now: clock.now });
    expect(pool.total).toBe(65536);
    const all = [];
    for (let i = 0; i < 65536; i++) all.push(pool.acquire());
    expect(() => pool.acquire()).toThrow(PoolExhaustedError);
    for (const s of all) pool.release(s);
    clock.advance(5000);
    const again = new Set<string>();
    for (let i = 0; i < 65536; i++) again.add(pool.acquire().network);
    expect(again.size).toBe(65536);
    // Out-of-order churn, which leaves stale queue records behind.
    for (let i = 0; i < 65536; i += 2) pool.release(all[i]);
    clock.advance(5000);
    for (let i = 0; i < 65536; i += 2) pool.acquireSpecific(all[i].network);
    expect(pool.free).toBe(0);
  });
});

describe('UidPool and PortPool', () => {
  it('hand out uids in order and name the range when exhausted', () => {
    const pool = new UidPool({ start: 10000, size: 3 });
    expect([pool.acquire(), pool.acquire(), pool.acquire()]).toEqual([10000, 10001, 10002]);
    expect(() => pool.acquire()).toThrow(PoolExhaustedError);
    expect(() => pool.acquire()).toThrow('no free uid in pool 10000-10002');
    expect(pool.release(10001)).toBe(true);
    expect(pool.release(10001)).toBe(false);
    expect(pool.free).toBe(1);
    expect(pool.acquire()).toBe(10001);
  });

  it('acquire specific entries, take for recovery, and ignore strangers', () => {
    const pool = new PortPool({ start: 61001, size: 4000 });
    expect(pool.name).toBe('61001-65000');
    expect(pool.acquireSpecific(61005)).toBe(61005);
    expect(() => pool.acquireSpecific(61005)).toThrow('port 61005 is already in use');
    expect(() => pool.acquireSpecific(80)).toThrow('port 80 is not in pool 61001-65000');
    expect(pool.take(61010)).toBe(true);
    expect(pool.take(8080)).toBe(false);
    expect(() => pool.take(61010)).toThrow('port 61010 is claimed twice');
    expect(pool.release(8080)).toBe(false);
    expect(pool.release(1.5)).toBe(false);
    expect(pool.isTaken(61010)).toBe(true);
    expect(pool.acquire()).toBe(61001);
    expect(pool.taken).toBe(3);
    expect(pool.free).toBe(3997);
    expect(pool.total).toBe(4000);
  });

  it('honour a release delay when given one', () => {
    const clock = manualClock();
    const pool = new UidPool({ start: 1, size: 1, releaseDelayMs: 100, now: clock.now });
    pool.release(pool.acquire());
    expect(() => pool.acquire()).toThrow(PoolExhaustedError);
    expect(() => pool.acquireSpecific(1)).toThrow('uid 1 was released less than 0.1s ago');
    clock.advance(100);
    expect(pool.acquire()).toBe(1);
  });

  it('refuse ranges that cannot be uids or ports', () => {
    expect(() => new UidPool({ start: 0, size: 10 })).toThrow(RangeError);
    expect(() => new PortPool({ start: 65000, size: 1000 })).toThrow(RangeError);
    expect(() => new PortPool({ start: 1.5, size: 10 })).toThrow(RangeError);
  });

  it('cover 65k ports quickly', () => {
    const pool = new PortPool({ start: 1, size: 65535 });
    const started = performance.now();
    const ports = [];
    for (let i = 0; i < 65535; i++) ports.push(pool.acquire());
    expect(new Set(ports).size).toBe(65535);
    for (const p of ports.reverse()) pool.release(p);
    expect(pool.acquire()).toBe(65535); // the first released comes back first
    // A guard against work per acquire that grows with the range (a scan of 65k entries
    // each time is minutes), bounded so loosely (linear takes tens of ms) that a busy
    // 2-core machine cannot trip it.
    expect(performance.now() - started).toBeLessThan(15_000);
  });
});

describe('createPools', () => {
  it('builds the three pools from the config', () => {
    const pools = createPools(defaultConfig({ localPortRange: [32768, 61000] }));
    expect(pools.network.name).toBe('10.254.0.0/24');
    expect(pools.network.total).toBe(64);
    expect(pools.uid.name).toBe('10000-10063');
    expect(pools.port.name).toBe('61001-65000');
  });

  it('keeps pool_start_address + pool_size exact', () => {
    const config = defaultConfig({ localPortRange: [32768, 61000] });
    config.network = { ...config.network, pool_network: '10.254.0.0/26', pool_start_address: '10.254.0.4', pool_size: 10 };
    expect(createPools(config).network.name).toBe('10.254.0.4-10.254.0.43');
  });
});

// ---- Property: against a model, over random sequences of operations ----

type Op =
  | { kind: 'acquire' }
  | { kind: 'acquireSpecific'; i: number }
  | { kind: 'release'; i: number }
  | { kind: 'take'; i: number }
  | { kind: 'advance'; ms: number };

/** What the property needs of a pool, with entries numbered 0..size-1 (size = outside the pool). */
interface Adapter {
  size: number;
  acquire(): number;
  acquireSpecific(i: number): number;
  release(i: number): boolean;
  take(i: number): boolean;
  free: number;
  taken: number;
}

function opArb(size: number): fc.Arbitrary<Op> {
  const entry = fc.integer({ min: 0, max: size }); // size itself is outside the pool
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant({ kind: 'acquire' } as const) },
    { weight: 1, arbitrary: entry.map((i) => ({ kind: 'acquireSpecific', i }) as const) },
    { weight: 3, arbitrary: entry.map((i) => ({ kind: 'release', i }) as const) },
    { weight: 1, arbitrary: entry.map((i) => ({ kind: 'take', i }) as const) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 150 }).map((ms) => ({ kind: 'advance', ms }) as const) },
  );
}

function checkAgainstModel(make: (now: () => number, delayMs: number) => Adapter, delayMs: number, ops: Op[]): void {
  const clock = manualClock();
  const pool = make(clock.now, delayMs);
  const { size } = pool;
  const taken = new Set<number>();
  const coolingUntil = new Map<number, number>();
  const isFree = (i: number) => !taken.has(i) && (coolingUntil.get(i) ?? -Infinity) <= clock.now();
  const freeCount = () => Array.from({ length: size }, (_, i) => i).filter(isFree).length;

  for (const op of ops) {
    switch (op.kind) {
      case 'acquire': {
        if (freeCount() === 0) {
          expect(() => pool.acquire()).toThrow(PoolExhaustedError);
        } else {
          const i = pool.acquire();
          expect(isFree(i), `acquire handed out ${i}, which is not free`).toBe(true);
          taken.add(i);
        }
        break;
      }
      case 'acquireSpecific': {
        if (op.i < size && isFree(op.i)) {
          expect(pool.acquireSpecific(op.i)).toBe(op.i);
          taken.add(op.i);
        } else {
          expect(() => pool.acquireSpecific(op.i)).toThrow(PoolError);
        }
        break;
      }
      case 'release': {
        const wasTaken = taken.delete(op.i);
        expect(pool.release(op.i)).toBe(wasTaken);
        if (wasTaken) coolingUntil.set(op.i, clock.now() + delayMs);
        break;
      }
      case 'take': {
        if (op.i >= size) {
          expect(pool.take(op.i)).toBe(false);
        } else if (taken.has(op.i)) {
          expect(() => pool.take(op.i)).toThrow(PoolError);
        } else {
          expect(pool.take(op.i)).toBe(true);
          taken.add(op.i);
          coolingUntil.delete(op.i);
        }
        break;
      }
      case 'advance':
        clock.advance(op.ms);
        break;
    }
    expect(pool.taken).toBe(taken.size);
    expect(pool.free).toBe(freeCount());
  }

  // Released entries come back: give everything back, wait, and every entry is
  // handed out exactly once more.
  for (const i of [...taken]) expect(pool.release(i)).toBe(true);
  clock.advance(delayMs);
  const again = new Set<number>();
  for (let n = 0; n < size; n++) again.add(pool.acquire());
  expect(again.size).toBe(size);
  expect(() => pool.acquire()).toThrow(PoolExhaustedError);
}

function uidAdapter(size: number) {
  return (now: () => number, delayMs: number): Adapter => {
    const pool = new UidPool({ start: 5000, size, releaseDelayMs: delayMs, now });
    return {
      size,
      acquire: () => pool.acquire() - 5000,
      acquireSpecific: (i) => pool.acquireSpecific(5000 + i) - 5000,
      release: (i) => pool.release(5000 + i),
      take: (i) => pool.take(5000 + i),
      get free() {
        return pool.free;
      },
      get taken() {
        return pool.taken;
      },
    };
  };
}

function networkAdapter(size: number) {
  const base = parseIpv4('10.254.0.0')!;
  const addr = (i: number) => formatIpv4(base + i * 4 + (i % 4)); // any address of the /30
  const index = (network: string) => (parseIpv4(network)! - base) / 4;
  return (now: () => number, delayMs: number): Adapter => {
    const pool = new NetworkPool({ startAddress: '10.254.0.0', size, releaseDelayMs: delayMs, now });
    return {
      size,
      acquire: () => index(pool.acquire().network),
      acquireSpecific: (i) => index(pool.acquireSpecific(addr(i)).network),
      release: (i) => pool.release(addr(i)),
      take: (i) => pool.take(addr(i)) !== undefined,
      get free() {
        return pool.free;
      },
      get taken() {
        return pool.taken;
      },
    };
  };
}

describe('pool properties', () => {
  const run = (make: (size: number) => (now: () => number, delayMs: number) => Adapter) =>
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }).chain((size) =>
          fc.tuple(fc.constant(size), fc.constantFrom(0, 100), fc.array(opArb(size), { maxLength: 200 })),
        ),
        ([size, delayMs, ops]) => checkAgainstModel(make(size), delayMs, ops),
      ),
      { numRuns: 300 },
    );

  it('UidPool never hands an entry out twice, and released entries come back', () => run(uidAdapter));
  it('NetworkPool never hands a network out twice, and released networks come back', () => run(networkAdapter));

  it('IndexPool keeps its queues bounded under out-of-order churn', () => {
    const pool = new IndexPool({ size: 1000 });
    // Never exhausts the fresh entries, so the ready queue is never drained by acquire.
    for (let round = 0; round < 100_000; round++) {
      pool.acquireSpecific(999);
      pool.release(999);
    }
    expect(pool.free).toBe(1000);
    expect(pool.queuedRecords).toBeLessThanOrEqual(2 * 1 + 32 + 1);
  });
});
