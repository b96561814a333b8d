// Taking a network, uid or host port from the pools, with the original Warden's
// answers when there is none (clients match on these texts). The pools' own
// messages, which say more, go to the log.
import type { Logger } from 'pino';
import { WardenError } from '../model/errors.ts';
import { PoolError, PoolExhaustedError } from '../pools/errors.ts';
import { formatIpv4, networkOf } from '../model/ipv4.ts';
import { parseAddress, type Subnet } from '../pools/network-pool.ts';
import type { Pools } from '../pools/pools.ts';

/**
 * The original's uid and port pools raised errors without a message, so Ruby
 * answered their class names (base.rb's "Could not acquire UID" was never
 * reached): this is what clients saw.
 */
export const NO_UID = 'Warden::Pool::Uid::NoUidAvailable';
export const NO_PORT = 'Warden::Pool::Port::NoPortAvailable';

/** "Could not acquire network", or with the /30 asked for: "Could not acquire network: 10.254.0.4". */
function noNetwork(requested: number | undefined): WardenError {
  return new WardenError(requested === undefined ? 'Could not acquire network' : `Could not acquire network: ${formatIpv4(networkOf(requested, 30))}`, {
    code: 'exhausted',
  });
}

/**
 * A /30 for Create: the one holding `requested`, else the next free one. A
 * malformed `requested` keeps the pool's message (the original read any string
 * as some address).
 */
export function takeNetwork(pools: Pools, requested: string | undefined, log: Logger): Subnet {
  try {
    return requested ? pools.network.acquireSpecific(requested) : pools.network.acquire();
  } catch (err) {
    if (!(err instanceof PoolError)) throw err;
    const address = requested ? parseAddress(requested) : undefined;
    if (requested && address === undefined) throw err;
    log.info({ err: err.message }, 'create: no network');
    throw noNetwork(address);
  }
}

export function takeUid(pools: Pools, log: Logger): number {
  try {
    return pools.uid.acquire();
  } catch (err) {
    if (!(err instanceof PoolExhaustedError)) throw err;
    log.info({ err: err.message }, 'create: no uid');
    throw new WardenError(NO_UID, { code: 'exhausted' });
  }
}

export function takePort(pools: Pools, log: Logger): number {
  try {
    return pools.port.acquire();
  } catch (err) {
    if (!(err instanceof PoolExhaustedError)) throw err;
    log.info({ err: err.message }, 'net_in: no port');
    throw new WardenError(NO_PORT, { code: 'exhausted' });
  }
}

/**
 * A Create past server.max_containers. At the pools' own capacity the original
 * simply ran out of the smaller pool: answer as it did. Below it, name our key.
 */
export function maxContainersError(pools: Pools, max: number, requested: string | undefined): WardenError {
  const networks = pools.network.total;
  const uids = pools.uid.total;
  if (max < Math.min(networks, uids)) {
    return new WardenError(`cannot create container: the daemon holds its maximum of ${max} containers (server.max_containers)`, { code: 'exhausted' });
  }
  if (networks > uids) return new WardenError(NO_UID, { code: 'exhausted' });
  return noNetwork(requested ? parseAddress(requested) : undefined);
}
