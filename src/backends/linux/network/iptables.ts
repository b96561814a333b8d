// Every iptables call of this module goes through one queue per thread, so rule
// edits of one worker never interleave. Multi-rule changes are iptables-restore
// --noflush batches: the nft backend commits each table's part of a batch
// atomically, which also keeps batches of different workers and processes from
// interleaving. Batches that wait in the queue one after the other go to the
// kernel as one iptables-restore (see applyGroup): every invocation of
// iptables-nft reads the whole ruleset first, so at 32 concurrent net_ins or
// creates the reads, not the rules, were the cost.
// Always the nft backend (`iptables`), always -w; never iptables-legacy.
import { run, HostCommandError } from './exec.ts';

export type Table = 'filter' | 'nat' | 'mangle';

const TABLES = ['filter', 'nat', 'mangle'] as const;

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
  // Batches queued after this command must not be merged with ones queued before it.
  open = undefined;
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

/** A batch waiting in the queue for its group's turn. */
interface Waiting {
  batch: Batch;
  context: string;
  resolve(): void;
  reject(err: unknown): void;
}

/** The group later batches still join: the last thing queued on this thread, not yet started. */
let open: Waiting[] | undefined;

/**
 * Applies the batch (iptables-restore --noflush); on failure the error names the offending
 * line's rule. Each table's part is atomic; a failing table leaves the tables before it applied.
 * Batches queued back to back run as one restore, with the same effect as one after the other.
 */
export function applyBatch(b: Batch, context: string): Promise<void> {
  if (batchIsEmpty(b)) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const w: Waiting = { batch: b, context, resolve, reject };
    if (open) {
      open.push(w);
      return;
    }
    const group = [w];
    open = group;
    void enqueue(() => {
      if (open === group) open = undefined;
      return applyGroup(group, restore);
    });
  });
}

/** Runs iptables-restore on the input; rejects with a HostCommandError naming the failing line's rule. */
export type Restore = (input: string, context: string) => Promise<void>;

async function restore(input: string, context: string): Promise<void> {
  try {
    await run('iptables-restore', ['-w', LOCK_WAIT, '--noflush'], { context, input });
  } catch (err) {
    if (!(err instanceof HostCommandError)) throw err;
    const n = failedLine(err);
    const line = n === undefined ? undefined : input.split('\n')[n - 1];
    throw new HostCommandError(
      line === undefined ? err.message : `${err.message} (rule: ${line})`,
      err.command,
      err.exitCode,
      err.stderr,
      err,
    );
  }
}

/** The 1-based input line iptables-restore reports as failed. */
function failedLine(err: HostCommandError): number | undefined {
  const m = /line (\d+) failed/.exec(err.stderr);
  return m ? Number(m[1]) : undefined;
}

/** The group's error as the batch's own: its message starts with the batch's context. */
function asOwn(err: unknown, groupContext: string, context: string): unknown {
  if (!(err instanceof HostCommandError) || !err.message.startsWith(`${groupContext}: `)) return err;
  const message = `${context}: ${err.message.slice(groupContext.length + 2)}`;
  return new HostCommandError(message, err.command, err.exitCode, err.stderr, err);
}

/** The batches' lines table by table, each batch's in its order: one restore applies them as the batches one after the other would. */
export function mergeBatches(batches: readonly Batch[]): Batch {
  const m = newBatch();
  for (const b of batches) for (const t of TABLES) m[t].push(...b[t]);
  return m;
}

/** The tables whose COMMIT came before input line n (1-based) of renderBatch(b): those were applied. */
export function tablesBefore(b: Batch, n: number): Set<Table> {
  const done = new Set<Table>();
  let end = 0;
  for (const t of TABLES) {
    if (b[t].length === 0) continue;
    end += b[t].length + 2; // "*table", the lines, "COMMIT"
    if (end < n) done.add(t);
  }
  return done;
}

/**
 * Applies a group of batches queued back to back. One batch: one restore. More: one restore of
 * them merged; when it fails, the tables committed before the failing one stay, and each batch
 * then applies the rest of its own lines alone, so only the batch at fault gets the error.
 * When the error names no line, what was applied is unknown and every batch gets the error
 * (callers treat it as their own failed batch: undo, or read what is there and retry).
 */
export async function applyGroup(group: readonly Waiting[], run: Restore): Promise<void> {
  if (group.length === 1) {
    const w = group[0]!;
    await run(renderBatch(w.batch), w.context).then(w.resolve, w.reject);
    return;
  }
  const merged = mergeBatches(group.map((w) => w.batch));
  const contexts = [...new Set(group.map((w) => w.context))].join(', ');
  let done: Set<Table>;
  try {
    await run(renderBatch(merged), contexts);
    for (const w of group) w.resolve();
    return;
  } catch (err) {
    const n = err instanceof HostCommandError ? failedLine(err) : undefined;
    if (n === undefined) {
      for (const w of group) w.reject(asOwn(err, contexts, w.context));
      return;
    }
    done = tablesBefore(merged, n);
  }
  for (const w of group) {
    const rest = newBatch();
    for (const t of TABLES) if (!done.has(t)) rest[t] = w.batch[t];
    if (batchIsEmpty(rest)) {
      w.resolve();
      continue;
    }
    await run(renderBatch(rest), w.context).then(w.resolve, w.reject);
  }
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

/** Every table's chains with their rules, as listTable gives one table's. */
export type Tables = Record<Table, Map<string, string[]>>;

/**
 * Every table's chains with their rules, from one `iptables-save`: one process for
 * all, where `iptables -S` takes one per table (each reads the whole ruleset anyway).
 * Rules are in `iptables -S` form; a table it does not show (never used) is empty.
 */
export async function listTables(context: string): Promise<Tables> {
  // Batches queued after this listing must not be merged with ones queued before it.
  open = undefined;
  return parseSave(await enqueue(() => run('iptables-save', [], { context })));
}

/** iptables-save output → its tables' chains and rules (tables we do not use are left out). */
export function parseSave(text: string): Tables {
  const tables: Tables = { filter: new Map(), nat: new Map(), mangle: new Map() };
  let chains: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      const name = line.slice(1).trim();
      chains = (TABLES as readonly string[]).includes(name) ? tables[name as Table] : undefined;
    } else if (!chains) {
      continue;
    } else if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ', 1)[0]!;
      if (!chains.has(chain)) chains.set(chain, []);
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ', 2)[1]!;
      const rules = chains.get(chain) ?? [];
      rules.push(line);
      chains.set(chain, rules);
    }
  }
  return tables;
}

/** Listed rules against ours: iptables prints a comment in quotes (`--comment "warden:<tag>"`), ours have none. */
export function sameRules(listed: readonly string[], ours: readonly string[]): boolean {
  return listed.length === ours.length && listed.every((r, i) => r.replace(/ --comment "([^"\\\s]*)"/g, ' --comment $1') === ours[i]);
}

/**
 * Whether a batch that only declares chains (":chain - [0:0]", which empties them) and
 * appends to them would leave the tables as the listing shows them already: each of
 * its chains exists with exactly its rules. A batch with any other line is not judged.
 */
export function declaredChainsInPlace(b: Batch, tables: Tables): boolean {
  for (const table of TABLES) {
    const want = new Map<string, string[]>();
    for (const line of b[table]) {
      if (line.startsWith(':')) want.set(line.slice(1).split(' ', 1)[0]!, []);
      else if (line.startsWith('-A ')) {
        const rules = want.get(line.split(' ', 2)[1]!);
        if (!rules) return false;
        rules.push(line);
      } else return false;
    }
    for (const [chain, rules] of want) {
      const listed = tables[table].get(chain);
      if (!listed || !sameRules(listed, rules)) return false;
    }
  }
  return true;
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
