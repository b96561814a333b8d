// bin/warden-bench: load-test a Warden daemon and show where the time goes.
// Runs against an existing daemon (--socket) or one it starts itself with a
// temporary config; runs the chosen scenarios, each beside its baselines;
// cleans up everything it created (also on Ctrl-C) and checks the daemon's List
// and the host afterwards; writes results.json (every sample), report.html and
// plots/*.svg, and prints a summary table.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cp, rm, stat } from 'node:fs/promises';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { sweepHost } from '../../src/backends/linux/container/sweep.ts';
import { teardownHost } from '../../src/backends/linux/host/setup.ts';
import { RawInsecure } from './baselines/raw-insecure.ts';
import { RawLinux } from './baselines/raw-linux.ts';
import { parseOptions, USAGE, UsageError, type BenchOptions, type ScenarioName } from './cli.ts';
import { Connections, type BenchContext } from './context.ts';
import { attachDaemon, BENCH_RANGE, MAX_POOL_SIZE, OwnDaemon, ownTarget, ROOT, type Target } from './daemon.ts';
import { installEgressGuard, removeEgressGuard } from '../../test/support/egress-guard.ts';
import { daemonIds, findLeaks, type RawScope } from './host-state.ts';
import { ResourceSampler } from './proc.ts';
import { Progress } from './progress.ts';
import { buildPlots } from './report/plots.ts';
import { renderHtml } from './report/html.ts';
import { renderMarkdown } from './report/markdown.ts';
import { Results, renderSummary } from './results.ts';
import { chaosScenario } from './scenarios/chaos.ts';
import { densityScenario } from './scenarios/density.ts';
import { jobsScenario } from './scenarios/jobs.ts';
import { lifecycleScenario } from './scenarios/lifecycle.ts';
import { protocolScenario } from './scenarios/protocol.ts';
import { restartScenario } from './scenarios/restart.ts';
import { stagingScenario } from './scenarios/staging.ts';
import { readTrace, summarizeTrace, TRACE_COLUMNS, traceTableRows } from './trace/summary.ts';
import { summarizeProfiles } from './trace/cpu-profile.ts';
import { perfFindings, startPerf, type PerfRecording } from './trace/perf-cpu.ts';
import { Tracker } from './tracker.ts';
import { Interrupted, messageOf, summarize } from './util.ts';
import { formatDuration } from '../lib/format.ts';

const SCENARIO_RUNNERS: Record<ScenarioName, (ctx: BenchContext) => Promise<void>> = {
  protocol: protocolScenario,
  lifecycle: lifecycleScenario,
  jobs: jobsScenario,
  staging: stagingScenario,
  density: densityScenario,
  restart: restartScenario,
  chaos: chaosScenario,
};

const TEST_ROOTFS = '/tmp/warden-test-rootfs';

/** Everything the run set up, torn down by cleanup() whatever happens. */
class RunState {
  own: OwnDaemon | undefined;
  target: Target | undefined;
  guard = false;
  rawLinux: RawLinux | undefined;
  rawInsecure: RawInsecure | undefined;
  tmp: string | undefined;
  conns: Connections | undefined;
  beforeIds = new Set<string>();
  seenIds = new Set<string>();
  readonly abort = new AbortController();
}

async function ensureRootfs(path: string, progress: Progress): Promise<void> {
  if (await stat(join(path, 'bin', 'bash')).catch(() => undefined)) return;
  progress.log(`building the test rootfs at ${path} (scripts/build-rootfs --test)`);
  await promisify(execFile)(join(ROOT, 'scripts/build-rootfs'), ['--test', path]);
}

function stamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

async function setupTarget(opts: BenchOptions, st: RunState, progress: Progress, traceFile: string | undefined, cpuProfDir: string | undefined): Promise<Target> {
  if (opts.socket) {
    const t = await attachDaemon(opts.socket, opts.backend);
    st.target = t;
    if (t.backend === 'linux') {
      if (!t.config) throw new Error(`cannot read the config of the daemon at ${opts.socket} (pid ${t.pid ?? '?'}): the harness needs its pool to guard egress`);
      await installEgressGuard(t.config.network.pool_network);
      st.guard = true;
    }
    return t;
  }
  const backend = opts.backend ?? 'insecure';
  if (backend === 'linux') {
    if (process.getuid?.() !== 0) throw new Error('the Linux backend needs root');
    await ensureRootfs(opts.rootfs ?? TEST_ROOTFS, progress);
    // Before any container exists: nothing from the bench range may leave the machine.
    await installEgressGuard(BENCH_RANGE);
    st.guard = true;
  }
  if (opts.containers > MAX_POOL_SIZE) throw new Error(`--containers ${opts.containers}: the bench's pools hold at most ${MAX_POOL_SIZE}`);
  const d = await OwnDaemon.prepare({
    backend,
    poolSize: MAX_POOL_SIZE,
    portStart: 27000,
    portPoolSize: 2000,
    uidStart: 600000,
    rootfs: backend === 'linux' ? (opts.rootfs ?? TEST_ROOTFS) : undefined,
    workerThreads: opts.workerThreads,
    logLevel: opts.logLevel,
    jobOutputLimit: Math.max(10 * 1024 * 1024, 2 * opts.bigStreamBytes, 2 * opts.jobBytes, 2 * opts.streamBytes),
    traceFile,
    cpuProfDir,
    env: opts.daemonEnv,
  });
  st.own = d;
  // The target exists before the daemon runs: a start that fails (or a Ctrl-C) still tears down its host setup.
  const t = await ownTarget(d, backend);
  st.target = t;
  progress.start(`starting warden-server (${backend})`, 0);
  await d.launch();
  progress.end();
  t.pid = d.pid;
  return t;
}

/** Destroys what the run created, stops what it started, and checks what is left. */
async function cleanup(st: RunState, tracker: Tracker, results: Results, progress: Progress): Promise<void> {
  const t = st.target;
  const problems: string[] = [];
  await st.conns?.closeAll();
  let listed: string[] = [];
  if (t && (!t.own || t.own.running)) {
    progress.start('cleanup: destroying containers', 0);
    const errs = await tracker.destroyAll(t.socket, 8, (done, total) => {
      progress.tick();
      if (done === 1) progress.note(`of ${total}`);
    }).catch((e: Error) => [e.message]);
    progress.end();
    problems.push(...errs);
    listed = await tracker.listed(t.socket).catch((e: Error) => [`(List failed: ${e.message})`]);
  }
  const rawScope: RawScope | undefined = st.rawLinux?.scope ?? st.rawInsecure?.scope;
  if (st.rawLinux) problems.push(...(await st.rawLinux.cleanup()));
  if (st.rawInsecure) problems.push(...(await st.rawInsecure.cleanup()));
  let leaks: string[] = [];
  let checked: string[] = [];
  if (t) {
    for (const id of await daemonIds(t).catch(() => new Set<string>())) st.seenIds.add(id);
    const ids = new Set([...st.seenIds].filter((id) => !st.beforeIds.has(id)));
    if (t.own) {
      const code = await t.own.stop();
      if (code !== 0) problems.push(`warden-server exited with ${code} on SIGTERM`);
      const first = await findLeaks(t, ids, rawScope, false);
      if (first.found.length && t.settings) {
        problems.push(...first.found.map((l) => `left after destroy: ${l}`));
        // Clean the host anyway so that later runs and other work are not affected.
        await sweepHost(t.settings, { claimed: new Set() }).catch((e: Error) => problems.push(`sweep: ${e.message}`));
      } else if (first.found.length) {
        problems.push(...first.found.map((l) => `left after destroy: ${l}`));
      }
      if (t.settings) {
        // The bench is the last of its run: the base chains go too unless something else uses them.
        await teardownHost(t.settings, { removeUnusedBase: true }).catch((e: Error) => problems.push(`teardown: ${e.message}`));
        await rm(t.settings.depotImage, { force: true });
      }
      await t.own.removeDir().catch((e: Error) => problems.push(`rm ${t.own!.dir}: ${e.message}`));
      if (st.guard) await removeEgressGuard().catch((e: Error) => problems.push(`egress guard: ${e.message}`));
      st.guard = false;
      const final = await findLeaks(t, ids, rawScope, true);
      leaks = final.found;
      const topic = (c: string) => c.split(':')[0];
      checked = [
        ...first.checked.filter((c) => !final.checked.some((f) => topic(f) === topic(c))),
        ...final.checked,
        'the daemon exited 0 on SIGTERM; its depot, image, runtime root and cgroup parents are removed',
      ];
    } else {
      const r = await findLeaks(t, ids, rawScope, false);
      leaks = r.found;
      checked = r.checked;
    }
  }
  if (st.guard) await removeEgressGuard().catch((e: Error) => problems.push(`egress guard: ${e.message}`));
  checked.unshift('the daemon\'s List: none of the run\'s handles');
  results.cleanup = { listed, host: [...problems, ...leaks], checked, ok: listed.length === 0 && leaks.length === 0 && problems.length === 0 };
}

/** A plain shell's cost of running /bin/true, per run (fork + exec + wait), timed inside the shell. */
async function bashSpawnCost(n = 200): Promise<ReturnType<typeof summarize>> {
  const script = `for ((i = 0; i < ${n}; i++)); do t=\${EPOCHREALTIME/./}; /bin/true; e=\${EPOCHREALTIME/./}; echo $((e - t)); done`;
  const { stdout } = await promisify(execFile)('/bin/bash', ['-c', script], { maxBuffer: 1 << 20 });
  return summarize(stdout.trim().split('\n').map((v) => Number(v) / 1000));
}

async function main(): Promise<number> {
  let opts: BenchOptions | 'help';
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`warden-bench: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const progress = new Progress();
  const st = new RunState();
  const run = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
  const tracker = new Tracker(run);
  st.tmp = mkdtempSync(join(tmpdir(), 'warden-bench-run-'));

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      progress.log(`\n${sig}: stopping; destroying what the run created (Ctrl-C twice more to exit at once, leaving it behind)`);
      st.abort.abort();
      void st.conns?.closeAll();
    } else if (signals === 2) {
      progress.log('still cleaning up; one more Ctrl-C exits now and may leave containers behind');
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  const traceFile = opts.traceSpawns ? join(st.tmp, 'spawn-trace.jsonl') : undefined;
  const cpuProfDir = opts.cpuProf ? join(st.tmp, 'cpu-prof') : undefined;
  const results = new Results({
    started: new Date().toISOString(),
    host: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memTotal: totalmem(), kernel: release(), node: process.version },
    backend: opts.backend ?? 'insecure',
    daemon: { own: !opts.socket, socket: opts.socket ?? '' },
    command: ['warden-bench', ...process.argv.slice(2)],
    options: { ...opts },
    quick: opts.quick,
  });
  try {
    const git = (args: string[]) => promisify(execFile)('git', ['-C', ROOT, ...args]).then((r) => r.stdout.trim());
    results.meta.git = { commit: await git(['rev-parse', '--short', 'HEAD']), dirtyFiles: (await git(['status', '--porcelain'])).split('\n').filter(Boolean).length };
  } catch {
    /* not a git checkout */
  }
  let failed = false;
  let target: Target | undefined;
  let perf: PerfRecording | undefined;
  try {
    // Before the daemon starts: perf then knows its whole process tree from fork events.
    if (opts.perf) perf = await startPerf(join(st.tmp, 'perf.data'));
    target = await setupTarget(opts, st, progress, traceFile, cpuProfDir);
    if (!opts.containersExplicit && target.backend === 'linux' && !opts.quick) opts.containers = 1000;
    results.meta.backend = target.backend;
    results.meta.daemon = {
      own: !!target.own,
      socket: target.socket,
      pid: target.pid,
      config: target.own?.configPath,
      workerThreads: target.config?.server.worker_threads,
      logLevel: target.config?.logging.level,
    };
    results.meta.options = { ...opts };
    st.beforeIds = target.own ? new Set() : await daemonIds(target);
    st.conns = new Connections(target.socket);
    if (opts.baselines) {
      if (target.backend === 'linux' && target.settings) {
        st.rawLinux = await RawLinux.setup(target.settings, run, st.tmp);
      } else if (target.backend === 'insecure') {
        const depot = target.config?.server.container_depot_path;
        st.rawInsecure = new RawInsecure(depot ? join(depot, `.bench-raw-${run}`) : join(st.tmp, 'raw'));
        await st.rawInsecure.setup();
      }
    }
    const t = target;
    const ctx: BenchContext = {
      target: t,
      opts,
      results,
      progress,
      tracker,
      signal: st.abort.signal,
      tmp: st.tmp,
      rawLinux: st.rawLinux,
      rawInsecure: st.rawInsecure,
      sampler: new ResourceSampler(t.pid),
      connect: () => st.conns!.connect(),
      noteIds: async () => {
        for (const id of await daemonIds(t).catch(() => new Set<string>())) st.seenIds.add(id);
      },
    };
    progress.log(
      `warden-bench: ${t.backend} backend, ${t.own ? `own daemon pid ${t.pid} (${t.own.dir})` : `daemon pid ${t.pid ?? '?'} at ${t.socket}`}; ` +
        `scenarios: ${opts.scenarios.join(', ')}${opts.quick ? ' (quick)' : ''}`,
    );
    for (const name of opts.scenarios) {
      if (st.abort.signal.aborted) break;
      const started = performance.now();
      try {
        await SCENARIO_RUNNERS[name](ctx);
        progress.log(`${name}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      } catch (err) {
        if (err instanceof Interrupted || st.abort.signal.aborted) break;
        failed = true;
        progress.end();
        progress.log(`${name} failed: ${(err as Error)?.stack ?? String(err)}`);
        results.errors.push({ scenario: name, message: messageOf(err) });
        // Leave nothing of a failed scenario for the next one to trip over.
        await tracker.destroyAll(t.socket).catch(() => undefined);
      }
    }
  } catch (err) {
    failed = true;
    progress.end();
    progress.log(`warden-bench: ${(err as Error)?.stack ?? String(err)}`);
    results.errors.push({ scenario: 'setup', message: messageOf(err) });
  } finally {
    results.interrupted = st.abort.signal.aborted;
    await perf?.stop().catch(() => undefined);
    try {
      await cleanup(st, tracker, results, progress);
    } catch (err) {
      results.cleanup = { listed: [], host: [`cleanup failed: ${messageOf(err)}`], checked: [], ok: false };
    }
  }
  results.meta.finished = new Date().toISOString();

  if (traceFile && target) {
    const entries = await readTrace(traceFile);
    // What one spawn costs the daemon's thread (fork + exec, synchronous) against a shell's whole fork + exec + wait.
    const syncs = entries.filter((e) => e.syncMs !== undefined).map((e) => e.syncMs!);
    if (syncs.length) {
      const s = summarize(syncs);
      const bash = await bashSpawnCost();
      results.finding('trace', 'spawning a host command: the part that blocks the calling thread', ['who', 'p50', 'p90', 'p99', 'n'], [
        [`${entries.some((e) => e.by === 'spawner') ? 'the daemon\'s spawner processes' : 'daemon'}: child_process.spawn, synchronous part (fork + exec)`, formatDuration(s.p50), formatDuration(s.p90), formatDuration(s.p99), String(s.n)],
        ['bash: fork + exec + wait of /bin/true', formatDuration(bash.p50), formatDuration(bash.p90), formatDuration(bash.p99), String(bash.n)],
      ]);
    }
    for (const pt of summarizeTrace(entries, results.phases.filter((p) => Number.isFinite(p.end) && !p.raw))) {
      if (pt.rows.length === 0) continue;
      const rows = traceTableRows(pt);
      rows.push(['all host commands', pt.rows.filter((r) => r.kind === 'process').reduce((a, r) => a + r.perOp, 0).toFixed(2), '', '', `${pt.msPerOp.toFixed(2)} ms`]);
      rows.push([`  of which fork+exec (blocks the ${entries.some((e) => e.by === 'spawner') ? 'spawner' : 'thread'})`, '', '', '', `${pt.syncMsPerOp.toFixed(2)} ms`]);
      rows.push(['all fs calls (incl. threadpool wait)', pt.rows.filter((r) => r.kind === 'fs').reduce((a, r) => a + r.perOp, 0).toFixed(1), '', '', `${pt.fsMsPerOp.toFixed(2)} ms`]);
      const lat = pt.phase.latencyP50;
      if (lat !== undefined && Number.isFinite(lat)) {
        rows.push([`daemon ${pt.phase.opName} latency p50`, '', '', '', `${lat.toFixed(2)} ms`]);
        rows.push(['latency in neither (queues, event loops)', '', '', '', `${(lat - pt.msPerOp - pt.fsMsPerOp).toFixed(2)} ms`]);
      }
      results.finding('trace', `${pt.phase.label}: host commands and fs calls the daemon made per ${pt.phase.opName} (${pt.phase.ops} ops; calls overlap when the daemon runs them in parallel)`, TRACE_COLUMNS, rows);
    }
  }

  if (perf && target?.pid) {
    for (const f of await perfFindings(perf.file, results.phases, target.pid).catch((err: unknown) => {
      results.errors.push({ scenario: 'perf', message: messageOf(err) });
      return [];
    })) {
      results.finding('perf', f.title, f.columns, f.rows);
    }
  }

  if (cpuProfDir) {
    for (const p of await summarizeProfiles(cpuProfDir)) {
      const rows = [
        ...p.byFile.map(([k, ms]) => ['file', k, `${ms.toFixed(0)} ms`, `${((ms / p.busyMs) * 100).toFixed(1)}%`]),
        ...p.byFunction.map(([k, ms]) => ['function', k, `${ms.toFixed(0)} ms`, `${((ms / p.busyMs) * 100).toFixed(1)}%`]),
      ];
      results.finding('cpu-prof', `${p.file}: ${(p.busyMs / 1000).toFixed(1)} s busy of ${(p.totalMs / 1000).toFixed(1)} s, self time`, ['by', 'where', 'self', 'share of busy'], rows);
    }
  }
  const out = opts.out ?? join(ROOT, 'bench', 'results', `${stamp()}-${results.meta.backend}${opts.quick ? '-quick' : ''}`);
  mkdirSync(join(out, 'plots'), { recursive: true });
  // The profiles themselves, for DevTools or a closer look than the summary above.
  if (cpuProfDir) await cp(cpuProfDir, join(out, 'cpu-prof'), { recursive: true }).catch(() => undefined);
  if (st.tmp) await rm(st.tmp, { recursive: true, force: true });

  // Output.
  const plots = buildPlots(results);
  for (const p of plots) writeFileSync(join(out, 'plots', `${p.name}.svg`), p.svg);
  writeFileSync(join(out, 'results.json'), JSON.stringify(results));
  writeFileSync(join(out, 'report.html'), renderHtml(results, plots, 'results.json'));
  writeFileSync(join(out, 'summary.md'), renderMarkdown(results));

  process.stdout.write(results.lines.length ? `\n${renderSummary(results)}\n\n` : '\nno results\n\n');
  for (const f of results.findings) {
    process.stdout.write(`${f.scenario}: ${f.title}\n`);
    const { renderTable } = await import('../lib/format.ts');
    process.stdout.write(`${renderTable(f.columns.map((c, i) => ({ title: c, right: i >= 2 })), f.rows)}\n\n`);
  }
  for (const e of results.errors) process.stdout.write(`error: ${e.scenario}: ${e.message}\n`);
  const c = results.cleanup;
  if (c?.ok) process.stdout.write(`cleanup: nothing left behind (checked: ${c.checked.join('; ')})\n`);
  else process.stdout.write(`cleanup: LEFT BEHIND:\n${[...(c?.listed ?? []).map((h) => `  daemon still lists ${h}`), ...(c?.host ?? []).map((h) => `  ${h}`)].join('\n')}\n`);
  const rel = relative(process.cwd(), out) || '.';
  process.stdout.write(`results: ${rel}/results.json  report: ${rel}/report.html  plots: ${rel}/plots/\n`);
  if (results.interrupted) return 130;
  return failed || !c?.ok ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`warden-bench: ${(err as Error)?.stack ?? String(err)}`);
    process.exit(1);
  },
);
