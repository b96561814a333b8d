// Container networking for the Linux backend: veth pairs, iptables (nft backend)
// for net_in / net_out / host access, tc for bandwidth. Runs in worker threads.
export type {
  NetworkHostConfig,
  ContainerNetSpec,
  NetOutRule,
  NetInRule,
  BandwidthLimit,
  BandwidthStat,
} from './types.ts';
export { setupNetworkHost, teardownNetworkHost, poolRuleTags, unusedBaseChains, type SetupOptions, type TeardownOptions } from './host.ts';
export {
  createContainerNetwork,
  destroyContainerNetwork,
  netIn,
  netOut,
  restoreContainerNetwork,
  restoreContainerNetworks,
  sweepNetwork,
  type RestoreItem,
  type SweepOptions,
} from './container.ts';
export { limitBandwidth, bandwidthStat } from './shaping.ts';
export { validateNetOut } from './rules.ts';
export { hostIface, containerIface, ifbIface, instanceChain } from './names.ts';
