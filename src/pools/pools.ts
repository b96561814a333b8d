// The three pools the daemon reserves from before any async step of a Create or
// NetIn (see DESIGN.md, "Reserve before you work"), built from the config.
// Layer: src/pools/ owns which network, uid and port is whose; pure bookkeeping
// on the main thread, no I/O.
import type { WardenConfig } from '../config/types.ts';
import { NetworkPool } from './network-pool.ts';
import { PortPool } from './port-pool.ts';
import { UidPool } from './uid-pool.ts';

export interface Pools {
  network: NetworkPool;
  uid: UidPool;
  port: PortPool;
}

export function createPools(config: WardenConfig, options: { now?: () => number } = {}): Pools {
  return {
    network: NetworkPool.fromConfig(config.network, options),
    uid: UidPool.fromConfig(config.user, options),
    port: PortPool.fromConfig(config.port, options),
  };
}
