// Host-side names. Operators' runbooks know them from the original Warden, so
// they are kept exactly: interfaces w-<id>-0 (host end of the veth pair),
// w-<id>-1 (container end, keeps its name inside the container) and w-<id>-2
// (ifb that shapes the container's outbound traffic); iptables chains
// warden-i-<id> (filter and nat) and warden-i-<id>-log.

/** Prefix of every interface we create; `w-+` in iptables matches all of them. */
export const IFACE_PREFIX = 'w-';
export const IFACE_MATCH = 'w-+';

/** Base chains, created once per host by setupNetworkHost. */
export const CHAINS = {
  /** filter, jumped from FORWARD for traffic from and to containers. */
  forward: 'warden-forward',
  /** filter, one `-i w-<id>-0 -g warden-i-<id>` per container. */
  instances: 'warden-instances',
  /** filter, where a container's chain ends: allow/deny networks, then reject. */
  default: 'warden-default',
  /** filter, jumped from INPUT for traffic from containers to the host itself. */
  input: 'warden-input',
  /** nat, jumped from PREROUTING and OUTPUT for local destinations; one jump per container. */
  prerouting: 'warden-prerouting',
  /** nat, jumped from POSTROUTING: masquerading. */
  postrouting: 'warden-postrouting',
} as const;

export const CHAIN_PREFIX = 'warden-';
export const INSTANCE_CHAIN_PREFIX = 'warden-i-';

// Interface names are at most 15 bytes: "w-" + id + "-N" leaves 11 for the id.
const ID_PATTERN = /^[0-9a-z]{1,11}$/;

/** Throws unless id can be used in interface and chain names (it also goes into iptables-restore input). */
export function checkId(id: string): void {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new Error(`invalid container id ${JSON.stringify(id)}: expected 1-11 characters [0-9a-z]`);
  }
}

export function hostIface(id: string): string {
  return `w-${id}-0`;
}

export function containerIface(id: string): string {
  return `w-${id}-1`;
}

export function ifbIface(id: string): string {
  return `w-${id}-2`;
}

export function instanceChain(id: string): string {
  return `${INSTANCE_CHAIN_PREFIX}${id}`;
}

export function instanceLogChain(id: string): string {
  return `${INSTANCE_CHAIN_PREFIX}${id}-log`;
}

/** The container id in one of our interface names, if it is one. */
export function idFromIface(name: string): string | undefined {
  const m = /^w-([0-9a-z]{1,11})-[0-2]$/.exec(name);
  return m?.[1];
}

/** The container id in one of our per-container chain names, if it is one. */
export function idFromChain(name: string): string | undefined {
  const m = /^warden-i-([0-9a-z]{1,11})(-log)?$/.exec(name);
  return m?.[1];
}
