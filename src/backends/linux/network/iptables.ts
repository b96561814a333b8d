// Every iptables call of this module goes through one queue per thread, so rule
// edits of one worker never interleave. Multi-rule changes are single
// iptables-restore --noflush batches: the nft backend commits a batch atomically,
// which also keeps batches of different workers and processes from interleaving.
// Always the nft backend (`iptables`), always -w; never iptables-legacy.
import { run, HostCommandError } from './exec.ts';

export type Table = 'filter' | 'nat' | 'mangle';

/** Seconds iptables waits for the xtables lock (only legacy callers hold it; harmless under nft). */
const LOCK_WAIT = '10';

let tail: Promise<unknown> = Promise.resolve();

/** Runs fn after every earlier queued call of this thread has settled. */
function enqueue<T>(fn: () => Promise<T>): Promise<T> {
  const next = tail.then(fn, fn);
  tail = next.catch(() => undefined);
  return next;
}

/** One iptables command, e.g. iptables(['-t', 'nat', '-A', chain, ...], 'net_in'). */
export function iptables(args: readonly string[], context: string): Promise<string> {
  return enqueue(() => run('iptables', ['-w', LOCK_WAIT, ...args], { context }));
}

/** Rule lines per table, in `iptables -S` syntax ("-A chain ...", "-D ...", "-I chain 1 ...", "-N", "-F", "-X", ":chain - [0:0]"). */
export interface Batch {
  filter: string[];
  nat: string[];
  mangle: string[];
}

export function newBatch(): Batch {
  return { filter: [], nat: [], mangle: [] };
}

export function batchIsEmpty(b: Batch): boolean {
  return b.filter.length === 0 && b.nat.length === 0 && b.mangle.length === 0;
}

export function renderBatch(b: Batch): string {
  let out = '';
  for (const table of ['filter', 'nat', 'mangle'] as const) {
    if (b[table].length === 0) continue;
    out += `*${table}\n${b[table].join('\n')}\nCOMMIT\n`;
  }
  return out;
}

/** Applies the batch atomically (iptables-restore --noflush); on failure names the offending line. */
export function applyBatch(b: Batch, context: string): Promise<void> {
  if (batchIsEmpty(b)) return Promise.resolve();
  const input = renderBatch(b);
  return enqueue(async () => {
    try {
      await run('iptables-restore', ['-w', LOCK_WAIT, '--noflush'], { context, input });
    } catch (err) {
      if (!(err instanceof HostCommandError)) throw err;
      const m = /line (\d+) failed/.exec(err.stderr);
      const line = m ? input.split('\n')[Number(m[1]) - 1] : undefined;
      throw new HostCommandError(
        line === undefined ? err.message : `${err.message} (rule: ${line})`,
        err.command,
        err.exitCode,
        err.stderr,
        err,
      );
    }
  });
}

/**
 * Read-modify-write: builds a batch from what is there now and applies it; when another
 * process changed the rules in between (the batch fails as a whole), reads again and retries.
 */
export async function applyFresh(build: () => Promise<Batch>, context: string, attempts = 5): Promise<void> {
  for (let i = 1; ; i++) {
    const b = await build();
    try {
      await applyBatch(b, context);
      return;
    } catch (err) {
      if (i >= attempts) throw err;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * i));
    }
  }
}

/** The rules of one chain in `iptables -S` form, without its "-N"/"-P" line; undefined when the chain does not exist. */
export async function listChain(table: Table, chain: string, context: string): Promise<string[] | undefined> {
  try {
    const out = await iptables(['-t', table, '-S', chain], context);
    return out.split('\n').filter((l) => l.startsWith('-A '));
  } catch (err) {
    if (err instanceof HostCommandError && err.exitCode === 1) return undefined;
    throw err;
  }
}

/** Every chain of a table with its rules (`iptables -S` of the whole table). */
export async function listTable(table: Table, context: string): Promise<Map<string, string[]>> {
  const out = await iptables(['-t', table, '-S'], context);
  const chains = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const [verb, chain] = line.split(' ', 2);
    if (chain === undefined) continue;
    if (verb === '-N' || verb === '-P') {
      if (!chains.has(chain)) chains.set(chain, []);
    } else if (verb === '-A') {
      const rules = chains.get(chain) ?? [];
      rules.push(line);
      chains.set(chain, rules);
    }
  }
  return chains;
}

/** "-A chain spec" → "-D chain spec": deletes exactly that rule in a batch. */
export function deleteOf(appendLine: string): string {
  return `-D ${appendLine.slice(3)}`;
}

/** Batch lines that leave exactly one copy of rule ("-A chain spec"), given the chain's current rules. */
export function exactlyOnce(lines: string[], existing: string[], rule: string): void {
  const n = existing.filter((r) => r === rule).length;
  if (n === 0) lines.push(rule);
  for (let i = 1; i < n; i++) lines.push(deleteOf(rule));
}
