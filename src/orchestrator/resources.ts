// The pooled resources a container holds (its /30, its uid, its pooled host
// ports): taken for a Create or a recovered record, given back at destroy, at
// a failed create and when recovery discards a record. One place, so that no
// path forgets one.
import type { Logger } from 'pino';
import type { ContainerRecord } from '../model/records.ts';
import type { Pools } from '../pools/pools.ts';
import type { Subnet } from '../pools/network-pool.ts';
import { takeNetwork, takeUid } from './pool-answers.ts';

/** A network (the one asked for, or the next) and a uid for a new container; all or nothing. */
export function reserveForCreate(pools: Pools, requestedNetwork: string | undefined, log: Logger): { subnet: Subnet; uid: number } {
  const subnet = takeNetwork(pools, requestedNetwork, log);
  try {
    return { subnet, uid: takeUid(pools, log) };
  } catch (err) {
    pools.network.release(subnet);
    throw err;
  }
}

/**
 * Marks a recovered record's resources taken; false (and nothing taken) when
 * another container holds one. Entries outside the pools (a changed config)
 * are simply not tracked.
 */
export function takeRecorded(pools: Pools, r: ContainerRecord): boolean {
  const { network, uid, port } = pools;
  const undo: (() => void)[] = [];
  try {
    if (network.take(r.network)) undo.push(() => network.release(r.network));
    if (uid.take(r.uid)) undo.push(() => uid.release(r.uid));
    for (const p of r.ports) if (port.take(p)) undo.push(() => port.release(p));
    return true;
  } catch {
    for (const u of undo) u();
    return false;
  }
}

/** Gives back everything r holds. */
export function releaseRecorded(pools: Pools, r: ContainerRecord): void {
  pools.network.release(r.network);
  pools.uid.release(r.uid);
  for (const p of r.ports) pools.port.release(p);
}
