// restart: the upgrade path. N containers, each running one job that waits (a bash
// blocked in `read` on a fifo: no child, no CPU) with a Stream of it open, as a DEA
// keeps a Link per job. Then, per round: SIGUSR2 (drain) to the harness's own
// daemon; its exit; the next daemon on the same binary, config and depot, started as
// soon as the old one is gone (as a supervisor does); its first Ping; and a Stream
// of every job again, until each has given the job's first output through the new
// daemon. After the last round a Stop ends every job and a Link of each must give
// the script's exit status and whole output: every job survived every restart.
// Beside it, measured in the same run with the same containers and jobs alive,
// raw-restart.sh: what any restart costs on this host at least. The daemons' own
// log lines ('drained, exiting', 'warden started', 'recovery done') give the time
// of each phase. Needs the harness's own daemon (it drains and restarts it).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WardenClient } from '../../../src/client/client.ts';
import { formatDuration } from '../../lib/format.ts';
import { runRawScript, type RawRun } from '../baselines/script.ts';
import { closeAll, connections, type BenchContext } from '../context.ts';
import { ROOT } from '../daemon.ts';
import { ResourceSampler } from '../proc.ts';
import { checkAbort, messageOf, round3, runWorkers, sleep, summarize, type Summary } from '../util.ts';

/** TERM (a Stop) ends it with 7 after one more line; until then it waits in a builtin. */
const JOB_SCRIPT = `trap 'rm -f "$f"; echo stopped; exit 7' TERM; echo started; f=./.bench-hold-$$; mkfifo "$f"; read -r x <> "$f"`;
const FIRST_OUTPUT = 'started\n';
const EXIT_STATUS = 7;
const WHOLE_OUTPUT = 'started\nstopped\n';
/** How long every job may take to give its first output through a daemon. */
const FIRST_OUTPUT_TIMEOUT_MS = 120_000;
const RAW_SCRIPT = join(import.meta.dirname, '..', 'baselines', 'raw-restart.sh');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');

interface JobRef {
  handle: string;
  jobId: number;
}

interface StreamEnd {
  exitStatus?: number;
  error?: string;
}

/** A Stream of one job on a connection of its own: when the job's first output came, and how the Stream ended. */
class JobWatch {
  readonly first: Promise<number>;
  readonly ended: Promise<StreamEnd>;
  private client: WardenClient | undefined;
  private closed = false;

  constructor(socket: string, job: JobRef) {
    let gotFirst!: (at: number) => void;
    let noFirst!: (err: Error) => void;
    this.first = new Promise<number>((res, rej) => {
      gotFirst = res;
      noFirst = rej;
    });
    this.first.catch(() => undefined);
    this.ended = (async (): Promise<StreamEnd> => {
      let out = '';
      try {
        this.client = await WardenClient.connect(socket);
        if (this.closed) await this.client.close();
        for await (const m of this.client.stream({ handle: job.handle, job_id: job.jobId })) {
          if (m.name === 'stdout' && m.data !== undefined) out += Buffer.from(m.data).toString();
          if (out.startsWith(FIRST_OUTPUT)) gotFirst(performance.now());
          if (m.exit_status !== undefined) {
            noFirst(new Error(`job ${job.handle}/${job.jobId} ended with ${m.exit_status} before its first output (stdout ${JSON.stringify(out)})`));
            return { exitStatus: m.exit_status };
          }
        }
        throw new Error('the Stream ended without an exit status');
      } catch (err) {
        noFirst(new Error(`job ${job.handle}/${job.jobId}: ${messageOf(err)}`));
        return { error: messageOf(err) };
      }
    })();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client?.close().catch(() => undefined);
    await this.ended;
  }
}

/** Streams every job; resolves when each has given its first output (or throws naming those that did not). */
async function watchAll(ctx: BenchContext, jobs: JobRef[], when: string): Promise<{ watches: JobWatch[]; lastFirstAt: number }> {
  const watches = jobs.map((j) => new JobWatch(ctx.target.socket, j));
  const closeAllWatches = () => void Promise.all(watches.map((w) => w.close()));
  ctx.signal.addEventListener('abort', closeAllWatches, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`not every job gave its first output within ${FIRST_OUTPUT_TIMEOUT_MS / 1000} s ${when}`)), FIRST_OUTPUT_TIMEOUT_MS);
  });
  try {
    const firsts = await Promise.race([Promise.allSettled(watches.map((w) => w.first)), timeout]);
    const failed = firsts.filter((f) => f.status === 'rejected').map((f) => messageOf((f as PromiseRejectedResult).reason));
    if (failed.length) throw new Error(`${failed.length} of ${jobs.length} jobs not reachable ${when}; first: ${failed[0]}`);
    return { watches, lastFirstAt: Math.max(...firsts.map((f) => (f as PromiseFulfilledResult<number>).value)) };
  } catch (err) {
    await Promise.all(watches.map((w) => w.close()));
    throw err;
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', closeAllWatches);
  }
}

/** The JSON log lines of one daemon process with the given message. */
async function logLines(path: string, pid: number, msg: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.pid === pid && o.msg === msg) out.push(o);
    } catch {
      /* a line being written */
    }
  }
  return out;
}

/** The line once it is in the log (the daemon logs asynchronously); undefined after waitMs. */
async function waitForLogLine(path: string, pid: number, msg: string, waitMs = 10_000): Promise<Record<string, unknown> | undefined> {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const [line] = await logLines(path, pid, msg);
    if (line || performance.now() > deadline) return line;
    await sleep(50);
  }
}

/** The `ms` object of a log line: phase → milliseconds. */
function phasesOf(line: Record<string, unknown> | undefined): Record<string, number> {
  const ms = line?.ms;
  if (!ms || typeof ms !== 'object') return {};
  return Object.fromEntries(Object.entries(ms as Record<string, unknown>).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
}

/** Per round: phase name → ms, in the order the phases first appear. */
class PhaseTable {
  readonly order: string[] = [];
  readonly values = new Map<string, number[]>();

  add(key: string, ms: number): void {
    if (!Number.isFinite(ms)) return;
    if (!this.values.has(key)) {
      this.order.push(key);
      this.values.set(key, []);
    }
    this.values.get(key)!.push(ms);
  }

  p50(key: string): number {
    return summarize(this.values.get(key) ?? []).p50;
  }
}

/** The Streams open on every job: the drain cuts them, the next daemon gets new ones. */
interface Live {
  watches: JobWatch[];
}

/** N containers with one waiting job each. */
async function fill(ctx: BenchContext, n: number): Promise<JobRef[]> {
  const jobs: JobRef[] = [];
  const errors: string[] = [];
  const clients = await connections(ctx, Math.min(ctx.opts.densityConcurrency, n));
  ctx.progress.start(`restart: ${n} containers with a job each`, n);
  await runWorkers(clients.length, { count: n, signal: ctx.signal }, async (_, w) => {
    const k = clients[w]!;
    try {
      const handle = await ctx.tracker.create(k);
      const { job_id } = await k.spawn({ handle, script: JOB_SCRIPT });
      jobs.push({ handle, jobId: job_id });
      ctx.progress.tick();
    } catch (err) {
      if (!ctx.signal.aborted) errors.push(messageOf(err));
      ctx.progress.tick(1, true);
    }
  });
  ctx.progress.end();
  await closeAll(clients);
  checkAbort(ctx.signal);
  if (errors.length) throw new Error(`${errors.length} of ${n} containers or jobs failed; first: ${errors[0]}`);
  await ctx.noteIds();
  return jobs;
}

/** raw-restart.sh with the same containers and jobs alive and the daemon idle. */
async function floor(ctx: BenchContext, n: number, rounds: number): Promise<RawRun> {
  const { target, results } = ctx;
  const depot = target.config?.server.container_depot_path;
  if (!depot) throw new Error('the daemon\'s depot is unknown');
  ctx.progress.start('restart raw (node start, runc list, reading the depot)', 0);
  const raw = await runRawScript(RAW_SCRIPT, [String(rounds), NODE, depot, target.settings?.runtimeRoot ?? ''], {}, 0, { signal: ctx.signal });
  ctx.progress.end();
  for (const e of raw.errors.slice(0, 3)) results.errors.push({ scenario: 'restart', message: `raw: ${e}` });
  const seen = raw.notes.find((t) => t.startsWith('state '))?.split(' ').slice(1).map(Number);
  if (!seen || seen[0] !== n || seen[1] !== n) {
    results.errors.push({ scenario: 'restart', message: `raw: read ${seen?.[0]} containers and ${seen?.[1]} jobs in the depot, expected ${n} of each` });
  }
  return raw;
}

/**
 * One drain and restart; the daemons' log lines go into phases. Returns the round's row (ms):
 * [round, drain, gap, signal → serving, signal → every job linkable, old exit → spawn, spawn → first Ping].
 */
async function restartOnce(ctx: BenchContext, jobs: JobRef[], live: Live, r: number, phases: PhaseTable, entries: Set<string>): Promise<number[]> {
  const { target, results } = ctx;
  const own = target.own!;
  const n = jobs.length;
  const oldPid = own.pid!;
  const d = await own.drain();
  if (d.code !== 0) throw new Error(`the draining daemon exited with ${d.code}:\n${own.tail()}`);
  // The drain closes Streams that wait on a job; one that ended with an exit status lost its job.
  const cut = await Promise.all(live.watches.map((w) => w.ended));
  const ended = cut.filter((e) => e.exitStatus !== undefined).length;
  if (ended) throw new Error(`${ended} jobs ended during the drain of round ${r}`);
  const { spawnedAt, servingAt } = await own.launch({ pollMs: 2 });
  target.pid = own.pid;
  ctx.sampler = new ResourceSampler(own.pid);
  const next = await watchAll(ctx, jobs, `after restart ${r}`);
  live.watches = next.watches;
  const row = [r, d.exitedAt - d.signalledAt, servingAt - d.exitedAt, servingAt - d.signalledAt, next.lastFirstAt - d.signalledAt, spawnedAt - d.exitedAt, servingAt - spawnedAt].map(round3);

  const drained = phasesOf(await waitForLogLine(own.logPath, oldPid, 'drained, exiting'));
  const startedLine = await waitForLogLine(own.logPath, own.pid!, 'warden started');
  const recoveryLine = await waitForLogLine(own.logPath, own.pid!, 'recovery done');
  // A tree edited since its last build runs its sources, slower to start than the bundle.
  entries.add(String(startedLine?.entry ?? 'unknown'));
  if (startedLine?.containers !== n) {
    results.errors.push({ scenario: 'restart', message: `round ${r}: the next daemon started with ${String(startedLine?.containers)} containers, expected ${n}` });
  }
  if (recoveryLine?.recovered !== n || recoveryLine?.destroyed !== 0) {
    results.errors.push({ scenario: 'restart', message: `round ${r}: recovery recovered ${String(recoveryLine?.recovered)} and destroyed ${String(recoveryLine?.destroyed)}, expected ${n} and 0` });
  }
  let drainLogged = 0;
  for (const [k, v] of Object.entries(drained)) {
    phases.add(`old daemon: drain: ${k}`, v);
    drainLogged += v;
  }
  phases.add('old daemon: the rest (log flush, exit, seen by the harness)', row[1]! - drainLogged);
  phases.add('harness: old exit → next daemon spawned', row[5]!);
  let startLogged = 0;
  const recovery = phasesOf(recoveryLine);
  for (const [k, v] of Object.entries(phasesOf(startedLine))) {
    phases.add(`next daemon: ${k === 'boot' ? 'boot (Node start, modules, config, worker pool)' : k}`, v);
    startLogged += v;
    if (k === 'recovery') {
      for (const [rk, rv] of Object.entries(recovery)) {
        // Destroying what was not adopted and the host sweep run while the daemon serves (Creates wait).
        phases.add(rk === 'destroy' || rk === 'sweep' ? `next daemon: after serving: ${rk} (Creates held)` : `next daemon:   recovery: ${rk}`, rv);
      }
    }
  }
  phases.add('next daemon: the rest (bin/warden-server wrapper, first Ping answered)', row[6]! - startLogged);
  phases.add('harness: serving → every job\'s Stream gave its first output', row[4]! - row[3]!);
  return row;
}

/** What the job's supervisor recorded about its end (job-supervisor.sh: job_end, child_end), for the error message. */
async function jobEndFiles(k: WardenClient, j: JobRef): Promise<string> {
  const path = (await k.info({ handle: j.handle }).catch(() => undefined))?.container_path;
  if (!path) return '';
  const dir = join(path, 'jobs', String(j.jobId));
  const read = (f: string) => readFile(join(dir, f), 'utf8').then((t) => JSON.stringify(t.trim()), () => 'none');
  return ` (job folder: job_end ${await read('job_end')}, child_end ${await read('child_end')}, exit_status ${await read('exit_status')})`;
}

/** A Stop ends every job (its TERM trap) and a Link of each must give the script's exit status and whole output. */
async function checkJobs(ctx: BenchContext, jobs: JobRef[]): Promise<{ lost: string[]; ms: number }> {
  const lost: string[] = [];
  const t0 = performance.now();
  const clients = await connections(ctx, Math.min(ctx.opts.densityConcurrency, jobs.length));
  ctx.progress.start('restart: Stop and Link every job', jobs.length);
  await runWorkers(clients.length, { count: jobs.length, signal: ctx.signal }, async (i, w) => {
    const k = clients[w]!;
    const j = jobs[i]!;
    try {
      await k.stop({ handle: j.handle });
      // Read before the Link, which makes the daemon forget the job and remove its folder.
      const files = await jobEndFiles(k, j);
      const l = await k.link({ handle: j.handle, job_id: j.jobId });
      const out = Buffer.from(l.stdout ?? '').toString();
      if (l.exit_status !== EXIT_STATUS || out !== WHOLE_OUTPUT) {
        lost.push(`job ${j.handle}/${j.jobId}: exit status ${l.exit_status}, stdout ${JSON.stringify(out)}; expected ${EXIT_STATUS} and ${JSON.stringify(WHOLE_OUTPUT)}${files}`);
      }
    } catch (err) {
      lost.push(`job ${j.handle}/${j.jobId}: ${messageOf(err)}`);
    }
    ctx.progress.tick();
  });
  const ms = performance.now() - t0;
  ctx.progress.end();
  ctx.progress.start('restart: destroy', jobs.length);
  const failed: string[] = [];
  await runWorkers(clients.length, { count: jobs.length, signal: ctx.signal }, async (i, w) => {
    await ctx.tracker.destroy(clients[w]!, jobs[i]!.handle).catch((err: Error) => failed.push(`destroy ${jobs[i]!.handle}: ${err.message}`));
    ctx.progress.tick();
  });
  ctx.progress.end();
  await closeAll(clients);
  for (const e of failed.slice(0, 3)) ctx.results.errors.push({ scenario: 'restart', message: e });
  return { lost, ms };
}

export async function restartScenario(ctx: BenchContext): Promise<void> {
  const { opts, results, progress, target } = ctx;
  if (!target.own) throw new Error('restart drains and restarts the daemon: run it on the harness\'s own daemon (no --socket)');
  const n = opts.restartContainers;
  const rounds = opts.restartRounds;
  const params = `${n} containers, ${n} jobs`;
  const jobs = await fill(ctx, n);

  // Every job runs and a Stream of each is open before the first drain.
  progress.start('restart: a Stream of every job', 0);
  const live: Live = await watchAll(ctx, jobs, 'before the first drain');
  progress.end();
  const rows: number[][] = [];
  const phases = new PhaseTable();
  /** The file each next daemon started from ('warden started' line). */
  const entries = new Set<string>();
  let raw: RawRun | undefined;
  // Whatever ends the scenario early (Ctrl-C, a failed round), its Streams' connections go with it.
  const closeWatches = () => Promise.all(live.watches.map((w) => w.close()));
  const onAbort = () => void closeWatches();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const phase = results.phase('restart', 'restart');
  try {
    if (opts.baselines) raw = await floor(ctx, n, Math.max(rounds, 5));
    for (let r = 1; r <= rounds; r++) {
      checkAbort(ctx.signal);
      progress.start(`restart round ${r}/${rounds}: drain, next daemon, every job`, 0);
      const row = await restartOnce(ctx, jobs, live, r, phases, entries);
      progress.end();
      rows.push(row);
      progress.log(
        `restart round ${r}: drain ${formatDuration(row[1]!)}, next daemon serves ${formatDuration(row[2]!)} after the old one exits; ` +
          `SIGUSR2 → serving ${formatDuration(row[3]!)}, → every job reachable ${formatDuration(row[4]!)}`,
      );
    }
  } finally {
    phase.end(rows.length, summarize(rows.map((x) => x[3]!)).p50);
    progress.end();
    ctx.signal.removeEventListener('abort', onAbort);
    await closeWatches();
  }
  checkAbort(ctx.signal);
  const check = await checkJobs(ctx, jobs);
  for (const l of check.lost.slice(0, 10)) results.errors.push({ scenario: 'restart', message: l });
  if (check.lost.length > 10) results.errors.push({ scenario: 'restart', message: `... and ${check.lost.length - 10} more jobs lost` });
  report(ctx, { n, params, rows, phases, raw, check, entries });
}

function report(
  ctx: BenchContext,
  o: { n: number; params: string; rows: number[][]; phases: PhaseTable; raw: RawRun | undefined; check: { lost: string[]; ms: number }; entries: Set<string> },
): void {
  const { results } = ctx;
  const { n, params, rows, phases, raw, check, entries } = o;
  results.addSeries('restart', 'rounds', ['round', 'drain_ms', 'gap_ms', 'serving_ms', 'linkable_ms', 'spawn_delay_ms', 'spawn_to_ping_ms'], rows);
  const col = (i: number) => summarize(rows.map((x) => x[i]!));
  const rawOps = (op: string) => raw?.ops.filter((x) => x.op === op) ?? [];
  const rawDrain = rawOps('drain').map((x) => x.totalMs);
  const rawStart = rawOps('start').map((x) => x.totalMs);
  const rawBoth = rawStart.map((v, i) => v + (rawDrain[i] ?? NaN));
  const bl = (v: number[], label: string): (Summary & { label: string }) | undefined => (raw && v.length ? { ...summarize(v), label } : undefined);
  const linux = ctx.target.backend === 'linux';
  const startLabel = `node -e '' + ${linux ? 'runc list + ' : ''}reading each container's snapshot and job files (shell builtins)`;
  const both = 'the two baselines above, one after the other';
  results.latency('restart', 'drain (SIGUSR2 → old daemon exits)', params, col(1), bl(rawDrain, 'an idle bare node (same binary): SIGUSR2 → exit'));
  results.latency('restart', 'next daemon (old exits → answers Ping)', params, col(2), bl(rawStart, startLabel));
  results.latency('restart', 'SIGUSR2 → serving again (target <= 500 ms)', params, col(3), bl(rawBoth, both));
  results.latency('restart', 'SIGUSR2 → every job linkable again', params, col(4), bl(rawBoth, both), 'each job\'s Stream gave its first output');

  // Where the time goes, per phase (p50 over the rounds), and the floor step by step.
  const serving = col(3).p50;
  const share = (v: number) => (Number.isFinite(v) && serving > 0 ? `${((v / serving) * 100).toFixed(0)}%` : '');
  const phaseRows = phases.order.map((k) => {
    const [who, ...what] = k.split(': ');
    return [who!, what.join(': '), formatDuration(phases.p50(k)), share(phases.p50(k))];
  });
  phaseRows.push(['total', 'SIGUSR2 → serving again', formatDuration(serving), '100%']);
  phaseRows.push(['total', 'SIGUSR2 → every job linkable again', formatDuration(col(4).p50), share(col(4).p50)]);
  for (const op of ['drain', 'start']) {
    const steps = new Map<string, number[]>();
    for (const x of rawOps(op)) for (const [k, v] of Object.entries(x.steps)) steps.set(k, [...(steps.get(k) ?? []), v]);
    for (const [k, v] of steps) phaseRows.push(['baseline', `${op}: ${k}`, formatDuration(summarize(v).p50), share(summarize(v).p50)]);
  }
  const fromSources = [...entries].filter((e) => !e.endsWith('/dist/main.js'));
  if (fromSources.length > 0) {
    process.stderr.write(`restart: the next daemon started from ${fromSources.join(', ')}, not the bundle (the tree changed since scripts/build): its start is slower than a release's\n`);
  }
  results.finding('restart', `where a restart's time goes with ${n} containers and ${n} running jobs (p50 of ${rows.length} rounds; phases from the daemons' 'drained, exiting', 'warden started' and 'recovery done' lines; started from ${[...entries].join(', ')})`,
    ['process', 'phase', 'p50', 'share of SIGUSR2 → serving'], phaseRows);
  results.finding('restart', `every job after ${rows.length} restarts: Stop, then Link (${formatDuration(check.ms)} for ${n} jobs); lost: ${check.lost.length}`,
    ['jobs', 'exit status and output as the script wrote them', 'lost'], [[String(n), String(n - check.lost.length), String(check.lost.length)]]);
}
