// Pool cases: one acquire and one release, the pool work of a Create and its
// Destroy, from pools built from the default config.
import { defaultConfig } from '../../src/config/config.ts';
import { createPools } from '../../src/pools/pools.ts';
import type { Case, Operation } from './measure.ts';

export function poolCases(): Case[] {
  const config = defaultConfig();
  // The network pool holds released /30s for release_delay (5 s). The clock runs
  // ahead by that much after each release, so every acquire after the first pass
  // takes the steady-state path: cooling queue → ready queue → taken.
  let skew = 0;
  const delayMs = config.network.release_delay * 1000;
  const pools = createPools(config, { now: () => performance.now() + skew });

  // The plain-JS counterpart: a Set of free entries; take the first, give it back.
  const free = new Set<number>(Array.from({ length: pools.network.total }, (_, i) => i));
  const baseline: Operation = {
    name: 'Set free list take+give back',
    fn: () => {
      const entry = free.values().next().value!;
      free.delete(entry);
      free.add(entry);
      return entry;
    },
  };
  return [
    {
      group: 'pool',
      name: `NetworkPool acquire+release (${pools.network.total} /30s)`,
      fn: () => {
        const subnet = pools.network.acquire();
        pools.network.release(subnet);
        skew += delayMs;
        return subnet;
      },
      baseline,
    },
    {
      group: 'pool',
      name: `UidPool acquire+release (${pools.uid.total} uids)`,
      fn: () => {
        const uid = pools.uid.acquire();
        pools.uid.release(uid);
        return uid;
      },
      baseline,
    },
    {
      group: 'pool',
      name: `PortPool acquire+release (${pools.port.total} ports)`,
      fn: () => {
        const port = pools.port.acquire();
        pools.port.release(port);
        return port;
      },
      baseline,
    },
  ];
}
