// Bandwidth limits with tc token buckets, both directions:
// - towards the container: tbf as the root qdisc of the host end w-<id>-0;
// - from the container: the host end's ingress is redirected to the ifb
//   w-<id>-2, whose root tbf shapes it (a policer would drop instead of queue).
// `replace` everywhere, so a new limit applies live and repeating is harmless.
import { readFile } from 'node:fs/promises';
import { checkId, hostIface, ifbIface } from './names.ts';
import { HostCommandError, run } from './exec.ts';
import { ifaceExists } from './sysctl.ts';
import type { BandwidthStat } from './types.ts';
import { WardenError } from '../../../model/errors.ts';

const CTX = 'limit_bandwidth';
/** Queueing delay tbf allows before dropping. */
const LATENCY = '25ms';
/** Fixed handle of our redirect filter, so `filter replace` never adds a second one. */
const REDIRECT_HANDLE = '800::1';

function checkAmount(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0) throw new WardenError(`${CTX}: ${name} ${JSON.stringify(v)} must be a positive whole number of bytes`, { code: 'invalid' });
}

/** The tc batch lines of a limit on both directions. */
function limitLines(host: string, ifb: string, rate: number, burst: number): string[] {
  const tbf = `tbf rate ${rate * 8}bit burst ${burst} latency ${LATENCY}`;
  return [
    `qdisc replace dev ${ifb} root ${tbf}`,
    `qdisc replace dev ${host} handle ffff: ingress`,
    `filter replace dev ${host} parent ffff: protocol all prio 1 handle ${REDIRECT_HANDLE} u32 match u32 0 0 action mirred egress redirect dev ${ifb}`,
    `qdisc replace dev ${host} root ${tbf}`,
  ];
}

/** The tc batch lines that remove any limit of a container (each fails harmlessly where there is none). */
async function clearLines(id: string): Promise<string[]> {
  const lines: string[] = [];
  const host = hostIface(id);
  if (await ifaceExists(host)) lines.push(`qdisc del dev ${host} root`, `qdisc del dev ${host} ingress`);
  const ifb = ifbIface(id);
  if (await ifaceExists(ifb)) lines.push(`qdisc del dev ${ifb} root`);
  return lines;
}

async function checkLimit(id: string, rate: number, burst: number): Promise<void> {
  checkId(id);
  checkAmount('rate', rate);
  checkAmount('burst', burst);
  const host = hostIface(id);
  if (!(await ifaceExists(host))) throw new Error(`${CTX}: interface ${host} does not exist (container network not set up)`);
}

/** rate in bytes/s, burst in bytes, applied to both directions. */
export async function limitBandwidth(id: string, rate: number, burst: number): Promise<void> {
  await checkLimit(id, rate, burst);
  const host = hostIface(id);
  const ifb = ifbIface(id);
  if (!(await ifaceExists(ifb))) {
    // With the container's MTU (the host end has it), as the original's w-<id>-2.
    const mtu = Number((await readFile(`/sys/class/net/${host}/mtu`, 'utf8')).trim());
    const input = `link add ${ifb} mtu ${mtu} type ifb\nlink set ${ifb} up\n`;
    await run('ip', ['-batch', '-'], { context: CTX, input }).catch(async (err) => {
      if (!(await ifaceExists(ifb))) throw err; // a concurrent call created it
    });
  }
  await run('tc', ['-batch', '-'], { context: CTX, input: `${limitLines(host, ifb, rate, burst).join('\n')}\n` });
}

/** What restoreBandwidths puts back for one container: its record's limit, or none. */
export interface BandwidthRestore {
  id: string;
  bandwidth?: { rate: number; burst: number } | undefined;
}

/**
 * At recovery: every container's limit as its record has it, in one `tc` batch
 * however many there are (a restart used to run one per limited container, and
 * a DEA limits every app). A limit set is replaced (in force already: no change);
 * containers without one lose any qdisc of ours. A container whose lines fail is
 * then limited alone, so that its error is its own. Returns each item's error.
 */
export async function restoreBandwidths(items: readonly BandwidthRestore[], context: string): Promise<Array<Error | undefined>> {
  const errors: Array<Error | undefined> = items.map(() => undefined);
  const lines: string[] = [];
  /** The item each line of the batch is for; -1: a removal, allowed to fail. */
  const owners: number[] = [];
  const alone: number[] = [];
  for (const [i, it] of items.entries()) {
    try {
      if (!it.bandwidth) {
        checkId(it.id);
        for (const l of await clearLines(it.id)) lines.push(l), owners.push(-1);
        continue;
      }
      await checkLimit(it.id, it.bandwidth.rate, it.bandwidth.burst);
      // The ifb comes with the container's create; one made afresh goes the long way.
      if (!(await ifaceExists(ifbIface(it.id)))) {
        alone.push(i);
        continue;
      }
      for (const l of limitLines(hostIface(it.id), ifbIface(it.id), it.bandwidth.rate, it.bandwidth.burst)) lines.push(l), owners.push(i);
    } catch (err) {
      errors[i] = err as Error;
    }
  }
  if (lines.length > 0) {
    try {
      await run('tc', ['-force', '-batch', '-'], { context, input: `${lines.join('\n')}\n` });
    } catch (err) {
      // -force: tc ran every line and names each that failed ("Command failed -:N").
      const failed = err instanceof HostCommandError ? [...err.stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => Number(m[1])) : [];
      const named = failed.length > 0;
      const again = new Set(named ? failed.map((n) => owners[n - 1] ?? -1) : owners);
      for (const i of again) if (i >= 0) alone.push(i);
    }
  }
  for (const i of alone) {
    const { id, bandwidth } = items[i]!;
    await limitBandwidth(id, bandwidth!.rate, bandwidth!.burst).catch((err: Error) => (errors[i] = err));
  }
  return errors;
}

/**
 * Removes any limit: the qdiscs of the host end and of the ifb. The ifb itself
 * stays, as every container has one from its create (the original's
 * w-<id>-2); deleting a link also costs the kernel a network-wide RCU wait,
 * tens of ms each, which at a restart were seconds for 100 containers.
 */
export async function clearBandwidth(id: string, context: string): Promise<void> {
  await clearBandwidthOf([id], context);
}

/** clearBandwidth for many containers: one `tc` batch however many there are. */
async function clearBandwidthOf(ids: string[], context: string): Promise<void> {
  for (const id of ids) checkId(id);
  const lines: string[] = [];
  for (const id of ids) lines.push(...(await clearLines(id)));
  if (lines.length === 0) return;
  // -force: most have no qdisc of ours, and each such line fails harmlessly.
  await run('tc', ['-force', '-batch', '-'], { context, input: `${lines.join('\n')}\n` }).catch(() => undefined);
}

interface TcQdisc {
  kind?: string;
  root?: boolean;
  options?: { rate?: number; burst?: number };
}

/** tc -j prints one JSON array per command of a batch, back to back. */
function parseJsonArrays(text: string): TcQdisc[][] {
  const out: TcQdisc[][] = [];
  for (const chunk of text.split(/(?<=\])\s*(?=\[)/)) {
    if (chunk.trim() !== '') out.push(JSON.parse(chunk) as TcQdisc[]);
  }
  return out;
}

function rootTbf(list: TcQdisc[] | undefined): { rate: number; burst: number } | undefined {
  const q = list?.find((x) => x.kind === 'tbf' && x.root);
  if (typeof q?.options?.rate !== 'number' || typeof q.options.burst !== 'number') return undefined;
  return { rate: q.options.rate, burst: q.options.burst };
}

/**
 * The limits in force, read back from the kernel (bytes/s and bytes; burst as tc
 * rounds it), or undefined when none is set. No fork unless a limit exists.
 */
export async function bandwidthStat(id: string): Promise<BandwidthStat | undefined> {
  checkId(id);
  const ctx = 'bandwidth stat';
  const host = hostIface(id);
  const ifb = ifbIface(id);
  if (!(await ifaceExists(ifb)) || !(await ifaceExists(host))) return undefined;
  const out = await run('tc', ['-j', '-batch', '-'], { context: ctx, input: `qdisc show dev ${host}\nqdisc show dev ${ifb}\n` });
  let lists: TcQdisc[][];
  try {
    lists = parseJsonArrays(out);
  } catch (err) {
    throw new Error(`${ctx}: unexpected tc output: ${out.slice(0, 200)}`, { cause: err });
  }
  const into = rootTbf(lists[0]);
  const from = rootTbf(lists[1]);
  if (!into && !from) return undefined;
  return { in_rate: into?.rate ?? 0, in_burst: into?.burst ?? 0, out_rate: from?.rate ?? 0, out_burst: from?.burst ?? 0 };
}
