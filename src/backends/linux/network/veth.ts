// The veth pair: host end w-<id>-0 with the host address of the /30, container
// end w-<id>-1 created directly in the container's network namespace (it keeps
// that name inside, as in the original Warden), addressed, with lo up and a
// default route via the host end. One `ip -batch` per namespace.
import { readlink } from '../../../host/thread-fs.ts';
import { containerIface, hostIface, ifbIface } from './names.ts';
import { run } from './exec.ts';
import { isIpv4 } from '../../../model/ipv4.ts';
import { ifaceExists, writeSysctl } from './sysctl.ts';
import type { ContainerNetSpec } from './types.ts';
import { wrapError } from '../../../model/errors.ts';

const CTX = 'create network';

export function checkSpec(spec: ContainerNetSpec, context: string): void {
  for (const key of ['hostIp', 'containerIp'] as const) {
    if (!isIpv4(spec[key])) throw new Error(`${context}: ${key} ${JSON.stringify(spec[key])} is not an IPv4 address`);
  }
  if (!Number.isInteger(spec.mtu) || spec.mtu < 576 || spec.mtu > 65535) {
    throw new Error(`${context}: mtu ${JSON.stringify(spec.mtu)} is out of range 576-65535`);
  }
}

/** The namespace file of pid; refuses the host's own namespace (the container end would land on the host). */
async function containerNetns(pid: number): Promise<string> {
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`${CTX}: invalid init pid ${pid}`);
  const path = `/proc/${pid}/ns/net`;
  let theirs: string;
  try {
    theirs = await readlink(path);
  } catch (err) {
    throw wrapError(`${CTX}: no network namespace for pid ${pid}`, err);
  }
  if (theirs === (await readlink('/proc/self/ns/net'))) {
    throw new Error(`${CTX}: pid ${pid} is in the host's network namespace, not a container's`);
  }
  return path;
}

/** Host-end kernel settings: see the comments; per-interface files under /proc/sys, no fork. */
async function configureHostEnd(id: string, context: string): Promise<void> {
  const ifname = hostIface(id);
  // net_in via 127.0.0.1: the DNATed packet leaves through this interface with a loopback source.
  await writeSysctl(`net/ipv4/conf/${ifname}/route_localnet`, 1, context);
  // Strict reverse-path filter: a container cannot use a source address other than its own.
  await writeSysctl(`net/ipv4/conf/${ifname}/rp_filter`, 1, context);
  // No IPv6 on the host end: link-local addresses would reach host services around the IPv4 rules.
  await writeSysctl(`net/ipv6/conf/${ifname}/disable_ipv6`, 1, context).catch(() => undefined);
}

/**
 * Makes the pair and configures both ends: one `ip -batch` on the host, one inside the
 * namespace. The host end may go up before the container's rules exist: warden-forward
 * drops traffic of a w-* interface that has no chain.
 */
export async function createVeth(spec: ContainerNetSpec, initPid: number): Promise<void> {
  const netns = await containerNetns(initPid);
  await run('ip', ['-batch', '-'], { context: CTX, input: hostEndBatch(spec, initPid) });
  await configureHostEnd(spec.id, CTX);
  await run('nsenter', [`--net=${netns}`, '--', 'ip', '-batch', '-'], { context: CTX, input: containerEndBatch(spec) });
}

/** `ip -batch` input on the host: the pair (container end straight into initPid's namespace), the host end up, the ifb. */
export function hostEndBatch(spec: ContainerNetSpec, initPid: number): string {
  const host = hostIface(spec.id);
  const mtu = String(spec.mtu);
  return [
    `link add ${host} mtu ${mtu} type veth peer name ${containerIface(spec.id)} mtu ${mtu} netns ${initPid}`,
    // No IPv6 link-local address on the host end (disable_ipv6 makes it final).
    `link set dev ${host} addrgenmode none`,
    `addr add ${spec.hostIp}/30 brd + dev ${host}`,
    `link set ${host} up`,
    // The ifb that shapes the container's outbound traffic exists from the start, with
    // its MTU, as the original's did (operators' tools look for w-<id>-2).
    `link add ${ifbIface(spec.id)} mtu ${mtu} type ifb`,
    `link set ${ifbIface(spec.id)} up`,
  ].join('\n') + '\n';
}

/** `ip -batch` input inside the container's namespace: lo, the container end, the default route. */
export function containerEndBatch(spec: ContainerNetSpec): string {
  const inner = containerIface(spec.id);
  return [
    'link set lo up',
    `addr add ${spec.containerIp}/30 brd + dev ${inner}`,
    `link set ${inner} up`,
    `route replace default via ${spec.hostIp} dev ${inner}`,
  ].join('\n') + '\n';
}

/** Re-applies host-end settings after a daemon restart; false when the interface is gone. */
export async function restoreHostEnd(id: string, context: string): Promise<boolean> {
  if (!(await ifaceExists(hostIface(id)))) return false;
  await configureHostEnd(id, context);
  return true;
}

/** Deletes the listed interfaces that exist (deleting the host end also removes the container end and qdiscs). */
export async function deleteIfaces(names: string[], context: string): Promise<void> {
  const present: string[] = [];
  for (const n of names) if (await ifaceExists(n)) present.push(n);
  if (present.length === 0) return;
  // -force: carry on past an interface that vanished meanwhile (its namespace died).
  await run('ip', ['-force', '-batch', '-'], { context, input: present.map((n) => `link del ${n}`).join('\n') + '\n' }).catch(
    async (err) => {
      for (const n of present) if (await ifaceExists(n)) throw err;
    },
  );
}
