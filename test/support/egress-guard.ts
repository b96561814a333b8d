// For the test suite and the load harness, never the product: keeps their traffic on this machine: a DROP rule, first in FORWARD of the
// mangle table (seen before any filter rule, so a wrong rule under test cannot
// get around it) and of the filter table, for packets from the pool leaving
// through any interface not named w-*. Each process tags its own rules with its
// pid, so concurrent suites do not remove each other's guard; rules of dead
// processes are pruned on install.
import { applyFresh, deleteOf, listChain, newBatch } from '../../src/backends/linux/network/iptables.ts';
import { formatCidr, parseCidr } from '../../src/model/ipv4.ts';
import { pidAlive } from './pids.ts';

const TAG_PREFIX = 'warden-egress-guard-';
const TABLES = ['mangle', 'filter'] as const;
const CTX = 'egress guard';

function tagOf(rule: string): number | undefined {
  const m = new RegExp(`--comment "?${TAG_PREFIX}(\\d+)"?`).exec(rule);
  return m ? Number(m[1]) : undefined;
}

function guardRule(pool: string): string {
  return `-s ${pool} ! -o w-+ -m comment --comment ${TAG_PREFIX}${process.pid} -j DROP`;
}

/** Idempotent; after it, packets from poolCidr cannot leave the machine. */
export async function installEgressGuard(poolCidr: string): Promise<void> {
  const cidr = parseCidr(poolCidr);
  if (!cidr) throw new Error(`${CTX}: ${poolCidr} is not a CIDR`);
  const rule = `-A FORWARD ${guardRule(formatCidr(cidr))}`;
  await applyFresh(async () => {
    const b = newBatch();
    for (const table of TABLES) {
      const rules = (await listChain(table, 'FORWARD', CTX)) ?? [];
      for (const r of rules) {
        const pid = tagOf(r);
        if (pid !== undefined && pid !== process.pid && !pidAlive(pid)) b[table].push(deleteOf(r));
      }
      if (rules[0] === rule) continue;
      for (const r of rules) if (r === rule) b[table].push(deleteOf(r));
      b[table].push(`-I FORWARD 1 ${rule.slice('-A FORWARD '.length)}`);
    }
    return b;
  }, CTX);
}

/** Removes this process's guard rules (all pools). */
export async function removeEgressGuard(): Promise<void> {
  await applyFresh(async () => {
    const b = newBatch();
    for (const table of TABLES) {
      for (const r of (await listChain(table, 'FORWARD', CTX)) ?? []) if (tagOf(r) === process.pid) b[table].push(deleteOf(r));
    }
    return b;
  }, CTX);
}

/** The guard rules currently installed by this process, as `iptables -S` lines (for assertions). */
export async function egressGuardRules(): Promise<string[]> {
  const out: string[] = [];
  for (const table of TABLES) {
    for (const r of (await listChain(table, 'FORWARD', CTX)) ?? []) if (tagOf(r) === process.pid) out.push(`${table}: ${r}`);
  }
  return out;
}
