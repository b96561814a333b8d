// A container's network: create, net_in, net_out, restore after a daemon
// restart, destroy, and the boot-time sweep of leftovers nobody claims.
import { readdir } from '../../../host/thread-fs.ts';
import { mapBounded } from '../bounded.ts';
import { CHAINS, checkId, hostIface, idFromChain, idFromIface, ifbIface, instanceChain, instanceLogChain } from './names.ts';
import { HostCommandError } from './exec.ts';
import {
  applyBatch,
  applyFresh,
  declaredChainsInPlace,
  deleteOf,
  exactlyOnce,
  iptables,
  listChain,
  listTables,
  newBatch,
  type Batch,
  type Table,
} from './iptables.ts';
import {
  checkNetIn,
  instanceChainsBatch,
  instanceJumpSpec,
  natJumpSpec,
  netInSpec,
  netOutSpec,
  validateNetOut,
} from './rules.ts';
import { checkSpec, createVeth, deleteIfaces, restoreHostEnd } from './veth.ts';
import { clearBandwidth, limitBandwidth, restoreBandwidths } from './shaping.ts';
import type { BandwidthLimit, ContainerNetSpec, NetInRule, NetOutRule } from './types.ts';
import { WardenError, describeError, codeOf } from '../../../model/errors.ts';

function withSetupHint(err: unknown): unknown {
  if (err instanceof HostCommandError && /No chain\/target\/match|does not exist/i.test(err.stderr)) {
    err.message += ' (are the base chains set up? setupNetworkHost runs at daemon start)';
  }
  return err;
}

/**
 * Veth pair into /proc/<initPid>/ns/net, the container's chains and their jumps.
 * Undoes everything on failure.
 */
export async function createContainerNetwork(spec: ContainerNetSpec, initPid: number): Promise<void> {
  const ctx = 'create network';
  checkId(spec.id);
  checkSpec(spec, ctx);
  try {
    const b = createBatch(spec);
    // Rules and veth in parallel: until the rules are in, warden-forward drops the interface's traffic.
    const [r, v] = await Promise.allSettled([
      applyBatch(b, ctx).catch((err) => Promise.reject(withSetupHint(err))),
      createVeth(spec, initPid),
    ]);
    if (r.status === 'rejected') throw r.reason;
    if (v.status === 'rejected') throw v.reason;
  } catch (err) {
    await destroyContainerNetwork(spec.id).catch(() => undefined);
    throw err;
  }
}

/** A new container's chains and the jumps to them: one iptables-restore. */
export function createBatch(spec: ContainerNetSpec): Batch {
  const b = instanceChainsBatch(spec, [], []);
  b.filter.push(`-A ${CHAINS.instances} ${instanceJumpSpec(spec.id)}`);
  b.nat.push(`-A ${CHAINS.prerouting} ${natJumpSpec(spec.id)}`);
  return b;
}

/** The common case of destroy in one atomic batch: the jumps, then the chains. */
export function destroyBatch(id: string): Batch {
  const chain = instanceChain(id);
  const logChain = instanceLogChain(id);
  const b = newBatch();
  b.filter.push(
    `-D ${CHAINS.instances} ${instanceJumpSpec(id)}`,
    `-F ${chain}`,
    `-X ${chain}`,
    `-F ${logChain}`,
    `-X ${logChain}`,
  );
  b.nat.push(`-D ${CHAINS.prerouting} ${natJumpSpec(id)}`, `-F ${chain}`, `-X ${chain}`);
  return b;
}

/** Whether rule (in `iptables -S` form) sends packets to one of the chains. */
function targets(rule: string, chains: string[]): boolean {
  return chains.some((c) => rule.endsWith(` -j ${c}`) || rule.endsWith(` -g ${c}`) || rule.includes(` -j ${c} `) || rule.includes(` -g ${c} `));
}

/** Batch lines removing every rule that jumps to the chains, then the chains, as listed in tables. */
function removeChains(b: Batch, tables: Record<'filter' | 'nat', Map<string, string[]>>, chainsToGo: Set<string>): void {
  const names = [...chainsToGo];
  for (const table of ['filter', 'nat'] as const) {
    const chains = tables[table];
    for (const [name, rules] of chains) {
      if (chainsToGo.has(name)) continue;
      for (const r of rules) if (targets(r, names)) b[table].push(deleteOf(r));
    }
    for (const name of names) if (chains.has(name)) b[table].push(`-F ${name}`);
    for (const name of names) if (chains.has(name)) b[table].push(`-X ${name}`);
  }
}

/** Both tables from one listing (one process, where `iptables -S` takes one each). */
function readTables(ctx: string): Promise<Record<'filter' | 'nat', Map<string, string[]>>> {
  return listTables(ctx);
}

/** Removes the container's chains and every jump to them, from what is really there. */
async function removeChainsExactly(id: string, ctx: string): Promise<void> {
  const own = new Set([instanceChain(id), instanceLogChain(id)]);
  await applyFresh(async () => {
    const b = newBatch();
    removeChains(b, await readTables(ctx), own);
    return b;
  }, ctx);
}

/** Idempotent and bounded in time: chains and jump rules, NAT rules, qdiscs, ifb, veth. */
export async function destroyContainerNetwork(id: string): Promise<void> {
  const ctx = 'destroy network';
  checkId(id);
  // The common case in one atomic batch; anything unusual (already gone, half made,
  // duplicated jumps) fails it as a whole, and the exact path reads what is there.
  const rules = applyBatch(destroyBatch(id), ctx).catch(() => removeChainsExactly(id, ctx));
  // Deleting the host end takes the container end and both qdiscs with it.
  const ifaces = deleteIfaces([ifbIface(id), hostIface(id)], ctx);
  const results = await Promise.allSettled([rules, ifaces]);
  const failed = results.filter((x) => x.status === 'rejected').map((x) => (x as PromiseRejectedResult).reason as Error);
  if (failed.length === 1) throw failed[0];
  if (failed.length > 1) throw new WardenError(failed.map((e) => describeError(e)).join('; '), { code: codeOf(failed[0]) });
}

/**
 * The batch that makes the container's nat chain hold exactly `existing` plus this rule (once):
 * declaring the chain in iptables-restore --noflush empties it, so it is idempotent.
 */
export function netInBatch(spec: ContainerNetSpec, existing: readonly NetInRule[], hostPort: number, containerPort: number): Batch {
  const rules = existing.filter((r) => r.host_port !== hostPort || r.container_port !== containerPort);
  rules.push({ host_port: hostPort, container_port: containerPort });
  const b = newBatch();
  b.nat = instanceChainsBatch(spec, rules, []).nat;
  return b;
}

/**
 * DNAT hostPort on every host address (127.0.0.1 included) to containerIp:containerPort. Idempotent.
 * With `existing` (the container's recorded net_in rules: the chain's whole content) one
 * iptables-restore rewrites the chain; without, a check and an append.
 */
export async function netIn(spec: ContainerNetSpec, hostPort: number, containerPort: number, existing?: readonly NetInRule[]): Promise<void> {
  const ctx = 'net_in';
  checkId(spec.id);
  checkNetIn(spec, hostPort, containerPort);
  if (existing) {
    for (const r of existing) checkNetIn(spec, r.host_port, r.container_port);
    await applyBatch(netInBatch(spec, existing, hostPort, containerPort), ctx);
    return;
  }
  const rule = [instanceChain(spec.id), ...netInSpec(spec, hostPort, containerPort)];
  if (await ruleExists('nat', rule, ctx)) return;
  await iptables(['-t', 'nat', '-A', ...rule], ctx);
}

/** Validates, then allows the traffic described (newest rule first, as the original). Idempotent. */
export async function netOut(spec: ContainerNetSpec, rule: NetOutRule): Promise<void> {
  const ctx = 'net_out';
  validateNetOut(rule);
  checkId(spec.id);
  const chain = instanceChain(spec.id);
  const ruleSpec = netOutSpec(spec.id, rule);
  if (await ruleExists('filter', [chain, ...ruleSpec], ctx)) return;
  await iptables(['-t', 'filter', '-I', chain, '1', ...ruleSpec], ctx);
}

async function ruleExists(table: Table, rule: string[], ctx: string): Promise<boolean> {
  try {
    await iptables(['-t', table, '-C', ...rule], ctx);
    return true;
  } catch (err) {
    if (err instanceof HostCommandError && err.exitCode === 1) return false;
    throw err;
  }
}

/**
 * After a daemon restart: rebuilds the container's chains with exactly these rules, makes sure
 * each jump exists once, re-applies host-end settings and the bandwidth limit (or clears it).
 */
export async function restoreContainerNetwork(
  spec: ContainerNetSpec,
  netInRules: NetInRule[],
  netOutRules: NetOutRule[],
  bandwidth?: BandwidthLimit,
): Promise<void> {
  const ctx = 'restore network';
  checkId(spec.id);
  checkSpec(spec, ctx);
  for (const r of netInRules) checkNetIn(spec, r.host_port, r.container_port);
  for (const r of netOutRules) validateNetOut(r);
  if (!(await restoreHostEnd(spec.id, ctx))) {
    throw new Error(`${ctx}: interface ${hostIface(spec.id)} is gone; the container's network cannot be restored`);
  }
  await applyFresh(async () => {
    const b = instanceChainsBatch(spec, netInRules, netOutRules);
    const [instances, prerouting] = await Promise.all([
      listChain('filter', CHAINS.instances, ctx),
      listChain('nat', CHAINS.prerouting, ctx),
    ]);
    if (!instances || !prerouting) throw new Error(`${ctx}: base chains missing: run setupNetworkHost first`);
    exactlyOnce(b.filter, instances, `-A ${CHAINS.instances} ${instanceJumpSpec(spec.id)}`);
    exactlyOnce(b.nat, prerouting, `-A ${CHAINS.prerouting} ${natJumpSpec(spec.id)}`);
    return b;
  }, ctx);
  if (bandwidth) await limitBandwidth(spec.id, bandwidth.rate, bandwidth.burst);
  else await clearBandwidth(spec.id, ctx);
}

export interface RestoreItem {
  spec: ContainerNetSpec;
  netIn: NetInRule[];
  netOut: NetOutRule[];
  bandwidth?: BandwidthLimit;
}

/**
 * restoreContainerNetwork for many containers at once (daemon start): one iptables
 * listing for all of them and one iptables-restore of what is not in place (none
 * when every chain lived on as its record says), one `tc` batch for every
 * container's shaping, instead of ~6 commands per container (each fork costs tens of ms
 * on a busy host: 1,000 containers would keep the daemon down for minutes).
 * Returns, per item, undefined (restored) or the error; one bad item never fails the others.
 */
export async function restoreContainerNetworks(items: RestoreItem[]): Promise<Array<Error | undefined>> {
  const ctx = 'restore network';
  const results: Array<Error | undefined> = items.map(() => undefined);
  // Each host end's sysctls are a few file writes: many containers' at once.
  const restoredEnd = await mapBounded(items, 32, async (it, i) => {
    try {
      checkId(it.spec.id);
      checkSpec(it.spec, ctx);
      for (const r of it.netIn) checkNetIn(it.spec, r.host_port, r.container_port);
      for (const r of it.netOut) validateNetOut(r);
      if (!(await restoreHostEnd(it.spec.id, ctx))) {
        throw new Error(`${ctx}: interface ${hostIface(it.spec.id)} is gone; the container's network cannot be restored`);
      }
      return true;
    } catch (err) {
      results[i] = err as Error;
      return false;
    }
  });
  const ok = items.flatMap((_, i) => (restoredEnd[i] ? [i] : []));
  if (ok.length === 0) return results;
  // The shaping (tc) and the rules (iptables) are independent: restored at once.
  const shaping = restoreBandwidths(ok.map((i) => ({ id: items[i]!.spec.id, bandwidth: items[i]!.bandwidth })), ctx);
  const rules = applyFresh(async () => {
    const b = newBatch();
    // One listing for all; a container whose chains are as its record says (the
    // usual restart: they lived on with it) adds nothing to the restore.
    const tables = await listTables(ctx);
    const instances = tables.filter.get(CHAINS.instances);
    const prerouting = tables.nat.get(CHAINS.prerouting);
    if (!instances || !prerouting) throw new Error(`${ctx}: base chains missing: run setupNetworkHost first`);
    for (const i of ok) {
      const { spec, netIn: inRules, netOut: outRules } = items[i]!;
      const own = instanceChainsBatch(spec, inRules, outRules);
      if (!declaredChainsInPlace(own, tables)) {
        b.filter.push(...own.filter);
        b.nat.push(...own.nat);
      }
      exactlyOnce(b.filter, instances, `-A ${CHAINS.instances} ${instanceJumpSpec(spec.id)}`);
      exactlyOnce(b.nat, prerouting, `-A ${CHAINS.prerouting} ${natJumpSpec(spec.id)}`);
    }
    return b;
  }, ctx).then(
    () => true,
    () => false,
  );
  const [rulesRestored, shaped] = await Promise.all([rules, shaping]);
  if (!rulesRestored) {
    // Find the culprit(s): one container at a time (its shaping again with it).
    for (const i of ok) {
      const it = items[i]!;
      await restoreContainerNetwork(it.spec, it.netIn, it.netOut, it.bandwidth).catch((err: Error) => (results[i] = err));
    }
    return results;
  }
  ok.forEach((i, k) => {
    if (shaped[k]) results[i] = shaped[k];
  });
  return results;
}

export interface SweepOptions {
  /** Only consider ids for which this returns true (default: every id of ours). */
  include?: (id: string) => boolean;
}

/**
 * Destroys the network of every id that has an interface or chain of ours but is not
 * claimed: one iptables batch and one `ip -batch` however many there are.
 */
export async function sweepNetwork(claimedIds: Set<string>, opts: SweepOptions = {}): Promise<void> {
  const ctx = 'sweep network';
  const unclaimed = (id: string | undefined): id is string =>
    id !== undefined && !claimedIds.has(id) && (opts.include === undefined || opts.include(id));
  await applyFresh(async () => {
    const tables = await readTables(ctx);
    const chains = new Set([...tables.filter.keys(), ...tables.nat.keys()].filter((n) => unclaimed(idFromChain(n))));
    const b = newBatch();
    if (chains.size > 0) removeChains(b, tables, chains);
    return b;
  }, ctx);
  const ifaces = (await readdir('/sys/class/net')).filter((n) => unclaimed(idFromIface(n)));
  await deleteIfaces(ifaces, ctx);
}
