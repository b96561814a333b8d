// density: fill the host to N live containers, recording each create's latency
// against the number already alive, the daemon's RSS and CPU and the host's
// memory as it fills; List and Info latency at N; then destroy them all.
// Baselines: raw create/destroy cycles with nothing else alive and again with N
// alive (the host's own cost of one more container at that density), the host
// memory of raw containers kept alive, Ping for List, direct reads of the same
// cgroup files for Info (Linux).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDuration } from '../../lib/format.ts';
import { rawCycles, stepMedians } from '../baselines/raw-cycles.ts';
import { closeAll, connections, type BenchContext } from '../context.ts';
import { hierarchies } from '../../../src/backends/linux/cgroups/cgroups.ts';
import { hostMemory, processSample } from '../proc.ts';
import { checkAbort, messageOf, round3, runWorkers, sleep, summarize } from '../util.ts';

const MiB = 1024 * 1024;
/** Quick mode: one reading, no settling pauses. */
let QUICK_READINGS: number | undefined;
let settleMs = 1000;

/** Median of a few readings a little apart (memory figures jitter). */
async function steady<T>(read: () => Promise<T>, pick: (t: T) => number, n = QUICK_READINGS ?? 5): Promise<number> {
  const v: number[] = [];
  for (let i = 0; i < n; i++) {
    v.push(pick(await read()));
    if (i < n - 1) await sleep(200);
  }
  return summarize(v).p50;
}

export async function densityScenario(ctx: BenchContext): Promise<void> {
  const { opts, results, progress, tracker, target } = ctx;
  const linux = target.backend === 'linux';
  const n = opts.containers;
  const c = opts.densityConcurrency;
  const pid = target.pid;
  const rawLabel = linux ? `raw runc + host tools, ${c} plain scripts at once` : `raw file operations, ${c} at once, in-process`;
  // Raw cycles at the fill's concurrency, so that latencies compare like with like.
  const rawCyclesN = opts.quick ? 3 : Math.max(linux ? 32 : 400, 2 * c);
  QUICK_READINGS = opts.quick ? 1 : undefined;
  settleMs = opts.quick ? 0 : 1000;

  // ---- baselines before the fill: raw cycles with nothing of ours alive, raw memory per container
  let raw0: Awaited<ReturnType<typeof rawCycles>> = undefined;
  let rawMemPerContainer: number | undefined;
  let rawKept = 0;
  let rawChargedPerContainer: number | undefined;
  if (opts.baselines) {
    progress.start('density: raw cycles at 0 live', rawCyclesN);
    raw0 = await rawCycles(ctx, c, { count: rawCyclesN, onCycle: () => progress.tick() });
    progress.end();
    checkAbort(ctx.signal);
    rawKept = Math.min(n, opts.quick ? 3 : linux ? 200 : n);
    const before = await steady(hostMemory, (m) => m.used);
    const charged0 = ctx.rawLinux ? await chargedMemory(ctx.rawLinux.scope.cgroupParent) : undefined;
    progress.start(`density: ${rawKept} raw containers kept (memory)`, rawKept);
    if (ctx.rawLinux) {
      const r = await ctx.rawLinux.createKept(rawKept, () => progress.tick(), ctx.signal);
      for (const e of r.errors.slice(0, 3)) results.errors.push({ scenario: 'density', message: `raw kept: ${e}` });
    } else if (ctx.rawInsecure) {
      for (let i = 0; i < rawKept && !ctx.signal.aborted; i++) {
        await ctx.rawInsecure.create();
        progress.tick();
      }
    }
    progress.end();
    const after = await steady(hostMemory, (m) => m.used);
    rawMemPerContainer = (after - before) / rawKept;
    if (charged0 !== undefined) rawChargedPerContainer = ((await chargedMemory(ctx.rawLinux!.scope.cgroupParent)) - charged0) / rawKept;
    progress.start('density: removing the raw containers', 0);
    if (ctx.rawLinux) await ctx.rawLinux.destroyAll();
    else await ctx.rawInsecure?.destroyAll();
    progress.end();
    await sleep(settleMs);
  }
  checkAbort(ctx.signal);

  // ---- fill
  const idleMs = opts.quick ? 300 : 5000;
  const idle0 = pid ? await idleCpu(pid, idleMs, results.phase('density idle with none', 'second of idle')) : NaN;
  const rss0 = pid ? await steady(() => processSample(pid), (p) => p?.rss ?? NaN) : NaN;
  const host0 = await steady(hostMemory, (m) => m.used);
  const daemonParent = target.settings?.cgroupParent;
  const charged0 = daemonParent ? await chargedMemory(daemonParent) : undefined;
  const cpu0 = pid ? await processSample(pid) : undefined;
  const clients = await connections(ctx, c);
  let live = 0;
  const fill: number[][] = [];
  const handles: string[] = [];
  const errors: string[] = [];
  ctx.sampler.rows.length = 0;
  await ctx.sampler.sample(0);
  ctx.sampler.start(1000, () => live);
  const every = Math.max(1, Math.floor(n / 50));
  progress.start(`density: fill to ${n.toLocaleString('en-US')}, c=${c}`, n);
  const fillPhase = results.phase(`density fill to ${n}`, 'create');
  const t0 = performance.now();
  await runWorkers(c, { count: n, signal: ctx.signal }, async (_, w) => {
    const alive = live;
    const s = performance.now();
    try {
      const h = await tracker.create(clients[w]);
      const ms = performance.now() - s;
      handles.push(h);
      live++;
      fill.push([alive, round3(s - t0), round3(ms)]);
      progress.tick();
      if (live % every === 0) {
        const row = await ctx.sampler.sample(live);
        progress.note(`rss ${(row.rss / MiB).toFixed(0)} MiB`);
      }
    } catch (err) {
      // Failures caused by the interrupt itself (connections closed) are not the daemon's.
      if (!ctx.signal.aborted) errors.push(messageOf(err));
      progress.tick(1, true);
    }
  });
  const fillMs = performance.now() - t0;
  fillPhase.end(fill.length, summarize(fill.map((r) => r[2])).p50);
  ctx.sampler.stop();
  progress.end();
  await ctx.noteIds();
  if (errors.length) results.errors.push({ scenario: 'density', message: `${errors.length} creates failed, first: ${errors[0]}` });
  const cpuN = pid ? await processSample(pid) : undefined;
  await sleep(settleMs);
  const rssN = pid ? await steady(() => processSample(pid), (p) => p?.rss ?? NaN) : NaN;
  const hostN = await steady(hostMemory, (m) => m.used);
  const chargedN = daemonParent ? await chargedMemory(daemonParent) : undefined;
  results.addSeries('density', 'fill', ['live_before', 't_ms', 'create_ms'], fill);
  results.addSeries('density', 'resources', ['t_ms', 'live', 'rss', 'cpu_s', 'child_cpu_s', 'host_used'], ctx.sampler.rows.map((r) => [r.t, r.x, r.rss, r.cpu, r.childCpu, r.hostUsed]));

  try {
    checkAbort(ctx.signal);
    const idleN = pid ? await idleCpu(pid, idleMs, results.phase(`density idle at ${live}`, 'second of idle')) : NaN;
    // ---- raw cycles with N alive
    let rawN: Awaited<ReturnType<typeof rawCycles>> = undefined;
    if (opts.baselines) {
      progress.start(`density: raw cycles at ${live} live`, rawCyclesN);
      rawN = await rawCycles(ctx, c, { count: rawCyclesN, onCycle: () => progress.tick() });
      progress.end();
      if (raw0) results.addSeries('density', 'raw at 0', ['create_ms', 'destroy_ms'], raw0.create.map((v, i) => [round3(v), round3(raw0!.destroy[i])]));
      if (rawN) results.addSeries('density', 'raw at N', ['create_ms', 'destroy_ms'], rawN.create.map((v, i) => [round3(v), round3(rawN!.destroy[i])]));
    }

    // ---- List and Info at N
    const k = clients[0];
    const listMs: number[] = [];
    const pingMs: number[] = [];
    const rounds = opts.quick ? 5 : 30;
    progress.start(`density: List at ${live}`, rounds);
    for (let i = 0; i < rounds; i++) {
      let t = performance.now();
      const { handles: listed = [] } = await k.list();
      listMs.push(performance.now() - t);
      if (i === 0 && listed.filter((h) => tracker.owns(h)).length < live) {
        results.errors.push({ scenario: 'density', message: `List shows ${listed.length} handles, ${live} expected` });
      }
      t = performance.now();
      await k.ping();
      pingMs.push(performance.now() - t);
      progress.tick();
    }
    progress.end();
    results.addSeries('density', 'list', ['list_ms', 'ping_ms'], listMs.map((v, i) => [round3(v), round3(pingMs[i])]));

    // Two passes: the first after the fill reads every container's files for the
    // first time (cold kernel caches, the Info path not yet compiled); the direct
    // reads below then found them warm, so the ratio compared a cold pass with a
    // warm one. The second pass is the one compared; the first goes in its note.
    const infoPass = async (label: string) => {
      progress.start(`density: Info of all ${live}, c=${c}${label}`, live);
      const ms: number[] = [];
      const found: string[] = [];
      const queue = [...handles];
      const t0 = performance.now();
      await Promise.all(
        clients.map(async (cl) => {
          for (let h = queue.shift(); h; h = queue.shift()) {
            if (ctx.signal.aborted) return;
            const t = performance.now();
            const info = await cl.info({ handle: h });
            ms.push(performance.now() - t);
            if (info.container_path) found.push(info.container_path);
            progress.tick();
          }
        }),
      );
      const wall = performance.now() - t0;
      progress.end();
      return { ms, wall, paths: found };
    };
    const coldInfo = await infoPass(', first pass');
    checkAbort(ctx.signal);
    const { ms: infoMs, wall: infoWall, paths } = await infoPass('');
    let infoBase: { samples: number[]; label: string } | undefined;
    if (opts.baselines && linux) {
      infoBase = { samples: await directInfoReads(paths, c), label: 'reading the same cgroup and btrfs files directly' };
    } else if (opts.baselines) {
      // The insecure Info reads nothing on the host: the floor is a round trip.
      const samples: number[] = [];
      const q = [...handles];
      await Promise.all(
        clients.map(async (cl) => {
          for (let h = q.shift(); h; h = q.shift()) {
            const t = performance.now();
            await cl.ping();
            samples.push(performance.now() - t);
          }
        }),
      );
      infoBase = { samples, label: `Ping, same connections (c=${c})` };
    }
    results.addSeries('density', 'info', ['ms'], infoMs.map((v) => [round3(v)]));
    results.addSeries('density', 'info first pass', ['ms'], coldInfo.ms.map((v) => [round3(v)]));
    if (infoBase) results.addSeries('density', 'info baseline', ['ms'], infoBase.samples.map((v) => [round3(v)]));

    // ---- destroy all
    checkAbort(ctx.signal);
    const drain: number[][] = [];
    progress.start(`density: destroy ${live}, c=${c}`, live);
    const drainPhase = results.phase(`density destroy ${live}`, 'destroy');
    const td = performance.now();
    const dq = [...handles];
    await Promise.all(
      clients.map(async (cl) => {
        for (let h = dq.shift(); h; h = dq.shift()) {
          if (ctx.signal.aborted) return;
          const alive = live;
          const t = performance.now();
          try {
            await tracker.destroy(cl, h);
            live--;
            drain.push([alive, round3(performance.now() - td), round3(performance.now() - t)]);
            progress.tick();
          } catch (err) {
            results.errors.push({ scenario: 'density', message: `destroy ${h}: ${messageOf(err)}` });
            progress.tick(1, true);
          }
        }
      }),
    );
    const drainMs = performance.now() - td;
    drainPhase.end(drain.length, summarize(drain.map((r) => r[2])).p50);
    progress.end();
    results.addSeries('density', 'drain', ['live_before', 't_ms', 'destroy_ms'], drain);

    // ---- result lines
    const N = fill.length;
    const byAlive = [...fill].sort((a, b) => a[0] - b[0]);
    const decile = Math.max(1, Math.floor(N / 10));
    const first = summarize(byAlive.slice(0, decile).map((r) => r[2]));
    const last = summarize(byAlive.slice(-decile).map((r) => r[2]));
    const bl = (r: typeof raw0, pick: 'create' | 'destroy', where: string) =>
      r ? { ...summarize(r[pick]), label: `${rawLabel}, ${where}` } : undefined;
    const rate = (N * 1000) / fillMs;
    results.latency('density', 'create, first 10%', `0-${decile} live, c=${c}`, first, bl(raw0, 'create', 'nothing else alive'), `fill ${rate.toFixed(0)} creates/s`);
    results.latency('density', 'create, last 10%', `${N - decile}-${N} live, c=${c}`, last, bl(rawN, 'create', `${N} alive`));
    results.latency('density', 'destroy (all)', `${N}-0 live, c=${c}`, summarize(drain.map((r) => r[2])), bl(rawN, 'destroy', `${N} alive`),
      `${((drain.length * 1000) / drainMs).toFixed(0)} destroys/s`);
    results.latency('density', 'List', `${N} live`, summarize(listMs), { ...summarize(pingMs), label: 'Ping on the same connection' });
    results.latency('density', 'Info', `each of ${N}, c=${c}`, summarize(infoMs), infoBase ? { ...summarize(infoBase.samples), label: infoBase.label } : undefined,
      `all ${N} in ${formatDuration(infoWall)}, the second pass; the first (each container's first Info since the fill): p50 ${formatDuration(summarize(coldInfo.ms).p50)}, all in ${formatDuration(coldInfo.wall)}`);
    results.add({
      scenario: 'density', metric: 'daemon RSS', params: `${N} live`, unit: 'MiB', value: rssN / MiB, better: 'lower',
      baseline: { label: 'the same daemon with none of them', value: rss0 / MiB },
      note: `${(((rssN - rss0) / Math.max(1, N)) / 1024).toFixed(1)} KiB per container`,
    });
    results.add({
      scenario: 'density', metric: 'host memory per container', params: `${N} live`, unit: 'KiB', value: (hostN - host0) / Math.max(1, N) / 1024, better: 'lower',
      baseline: rawMemPerContainer === undefined ? undefined : { label: `${rawKept} raw containers kept alive`, value: rawMemPerContainer / 1024 },
      note: 'MemTotal - MemAvailable; the host runs other work too: noisy',
    });
    if (charged0 !== undefined && chargedN !== undefined) {
      results.add({
        scenario: 'density', metric: 'memory charged to container cgroups, per container', params: `${N} live`, unit: 'KiB',
        value: (chargedN - charged0) / Math.max(1, N) / 1024, better: 'lower',
        baseline: rawChargedPerContainer === undefined ? undefined : { label: `${rawKept} raw containers kept alive`, value: rawChargedPerContainer / 1024 },
        note: 'memory.usage_in_bytes of the cgroup parent: exact, unlike host-wide figures',
      });
    }
    if (cpu0 && cpuN && N) {
      const perCreate = (((cpuN.cpu - cpu0.cpu) + (cpuN.childCpu - cpu0.childCpu)) * 1000) / N;
      results.add({
        scenario: 'density', metric: 'CPU per create (daemon + its children)', params: `0-${N} live`, unit: 'ms', value: perCreate, better: 'lower',
        baseline: raw0 && raw0.cycles ? { label: `${rawLabel}: CPU per create+destroy cycle`, value: (raw0.cpuSeconds * 1000) / raw0.cycles } : undefined,
        note: `daemon ${(((cpuN.cpu - cpu0.cpu) * 1000) / N).toFixed(2)} ms + children ${(((cpuN.childCpu - cpu0.childCpu) * 1000) / N).toFixed(2)} ms`,
      });
    }
    if (pid) {
      results.add({
        scenario: 'density', metric: 'daemon CPU while idle', params: `${N} live, ${idleMs / 1000} s`, unit: '%', value: idleN, better: 'lower',
        baseline: { label: 'the same daemon with none of them', value: idle0 },
        note: '% of one core, no requests in flight (per-container timers and pollers)',
      });
    }
    if (raw0 && rawN && raw0.ops.some((o) => Object.keys(o.steps).length > 1)) {
      const rows: string[][] = [];
      for (const op of ['create', 'destroy']) {
        const at0 = new Map(stepMedians(raw0.ops, op));
        for (const [step, vN] of stepMedians(rawN.ops, op)) {
          const v0 = at0.get(step) ?? NaN;
          rows.push([op, step, formatDuration(v0), formatDuration(vN), `${(vN / v0).toFixed(2)}x`]);
        }
      }
      results.finding('density', `raw host operations with nothing alive and with ${N} alive (median per step, ${c} scripts at once)`, ['op', 'step', 'at 0', `at ${N}`, 'growth'], rows);
    }
    results.finding('density', `memory at ${N} live`, ['what', 'value'], [
      ['daemon RSS with none of them', `${(rss0 / MiB).toFixed(1)} MiB`],
      [`daemon RSS at ${N} live`, `${(rssN / MiB).toFixed(1)} MiB`],
      ['daemon RSS per container', `${((rssN - rss0) / Math.max(1, N) / 1024).toFixed(1)} KiB`],
      ['host memory per container', `${((hostN - host0) / Math.max(1, N) / 1024).toFixed(1)} KiB`],
      ['raw container, host memory each', rawMemPerContainer === undefined ? '-' : `${(rawMemPerContainer / 1024).toFixed(1)} KiB (${rawKept} kept)`],
      ['fill time', `${(fillMs / 1000).toFixed(1)} s (${rate.toFixed(1)} creates/s)`],
      ['destroy time', `${(drainMs / 1000).toFixed(1)} s`],
    ]);
  } finally {
    await closeAll(clients);
  }
}

/** Reads, for each container, the files the Linux Info reads (from the facts in its snapshot). */
async function directInfoReads(paths: string[], c: number): Promise<number[]> {
  const facts: Array<{ mem?: string; acct?: string; q?: string }> = [];
  for (const p of paths) {
    try {
      const snap = JSON.parse(await readFile(join(p, 'snapshot.json'), 'utf8')) as {
        resources?: { backend?: { cgroups?: Record<string, string>; subvolume?: { fsid?: string; subvolId?: number } } };
      };
      const cg = snap.resources?.backend?.cgroups ?? {};
      const sv = snap.resources?.backend?.subvolume;
      facts.push({ mem: cg.memory, acct: cg.cpuacct, q: sv?.fsid && sv.subvolId !== undefined ? `/sys/fs/btrfs/${sv.fsid}/qgroups/0_${sv.subvolId}/referenced` : undefined });
    } catch {
      /* a container without a snapshot: skip */
    }
  }
  const out: number[] = [];
  const q = [...facts];
  await Promise.all(
    Array.from({ length: c }, async () => {
      for (let f = q.shift(); f; f = q.shift()) {
        const t = performance.now();
        await Promise.all([
          f.mem ? readFile(join(f.mem, 'memory.stat'), 'utf8').catch(() => '') : '',
          f.acct ? readFile(join(f.acct, 'cpuacct.usage'), 'utf8').catch(() => '') : '',
          f.acct ? readFile(join(f.acct, 'cpuacct.stat'), 'utf8').catch(() => '') : '',
          f.q ? readFile(f.q, 'utf8').catch(() => '') : '',
        ]);
        out.push(performance.now() - t);
      }
    }),
  );
  return out;
}

/** The daemon's CPU use (percent of one core, itself and its children) over ms with no requests from us. */
async function idleCpu(pid: number, ms: number, phase: { end(ops: number): void }): Promise<number> {
  const a = await processSample(pid);
  const t = performance.now();
  await sleep(ms);
  const b = await processSample(pid);
  phase.end(ms / 1000);
  if (!a || !b) return NaN;
  return ((b.cpu - a.cpu + (b.childCpu - a.childCpu)) / ((performance.now() - t) / 1000)) * 100;
}

/** Bytes charged to the memory cgroup <own>/<parent> (every container under it, hierarchically). */
async function chargedMemory(parent: string): Promise<number> {
  const h = (await hierarchies()).find((x) => x.controllers.includes('memory'));
  if (!h) return NaN;
  const text = await readFile(join(h.own, parent, 'memory.usage_in_bytes'), 'utf8').catch(() => '');
  return text ? Number(text.trim()) : NaN;
}
