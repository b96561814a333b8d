// staging, what DEA hosts do: C concurrent stagings, each on its own connection:
// Create with a bind mount, LimitMemory/LimitDisk/LimitCpu (Linux), NetIn, CopyIn
// of a directory, a Spawn whose script builds a droplet and writes output that is
// Streamed back, CopyOut of the droplet, Destroy. Stagings per second and per-step
// latency, beside C plain scripts doing the same host operations.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WardenClient } from '../../../src/client/client.ts';
import { formatBytes, formatDuration } from '../../lib/format.ts';
import type { RawOp } from '../baselines/script.ts';
import { closeAll, connections, type BenchContext } from '../context.ts';
import { processSample } from '../proc.ts';
import { messageOf, round3, runWorkers, summarize } from '../util.ts';

const STEPS = ['create', 'limits', 'net_in', 'copy_in', 'spawn+stream', 'copy_out', 'destroy'] as const;
type Step = (typeof STEPS)[number];

const MEMORY = 256 * 1024 * 1024;
const DISK = 1024 * 1024 * 1024;
const CPU_SHARES = 512;

async function makeApp(dir: string, bytes: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files = 16;
  const each = Math.max(1, Math.floor(bytes / files));
  for (let i = 0; i < files; i++) {
    const buf = Buffer.alloc(each);
    for (let j = 0; j < each; j += 4096) buf.writeUInt32LE((i * 2654435761 + j) >>> 0, j);
    await writeFile(join(dir, `file-${i}.bin`), buf);
  }
}

export async function stagingScenario(ctx: BenchContext): Promise<void> {
  const { opts, results, progress, tracker } = ctx;
  const linux = ctx.target.backend === 'linux';
  const c = opts.stagingConcurrency;
  const total = opts.stagings;
  const appDir = join(ctx.tmp, 'staging-app');
  const bindDir = join(ctx.tmp, 'staging-buildpack');
  const outDir = join(ctx.tmp, 'staging-out');
  await makeApp(appDir, opts.appBytes);
  await mkdir(bindDir, { recursive: true });
  await writeFile(join(bindDir, 'detect'), '#!/bin/sh\necho ok\n');
  await mkdir(outDir, { recursive: true });
  const home = linux ? '/home/vcap' : '';
  const script = `cd app && tar -cf ../droplet.tar . && cd .. && head -c ${opts.streamBytes} /dev/zero`;
  const clients = await connections(ctx, c);
  const rows: number[][] = [];
  const errors: string[] = [];
  progress.start(`staging: ${total} stagings, c=${c}`, total);
  const phase = results.phase(`staging c=${c}`, 'staging');
  const cpu0 = ctx.target.pid ? await processSample(ctx.target.pid) : undefined;
  const t0 = performance.now();
  await runWorkers(c, { count: total, signal: ctx.signal }, async (i, w) => {
    const k = clients[w];
    const times: Record<Step, number> = { create: NaN, limits: NaN, net_in: NaN, copy_in: NaN, 'spawn+stream': NaN, copy_out: NaN, destroy: NaN };
    const start = performance.now();
    let handle: string | undefined;
    let lap = start;
    const mark = (s: Step) => {
      const now = performance.now();
      times[s] = now - lap;
      lap = now;
    };
    try {
      handle = await tracker.create(k, { bind_mounts: [{ src_path: bindDir, dst_path: '/var/vcap/buildpack', mode: 0 }] });
      mark('create');
      if (linux) {
        await k.limitMemory({ handle, limit_in_bytes: MEMORY });
        await k.limitDisk({ handle, byte_limit: DISK });
        await k.limitCpu({ handle, limit_in_shares: CPU_SHARES });
        mark('limits');
      }
      await k.netIn({ handle, container_port: 8080 });
      mark('net_in');
      await k.copyIn({ handle, src_path: `${appDir}/`, dst_path: `${home}/app` });
      mark('copy_in');
      const { job_id } = await k.spawn({ handle, script });
      let bytes = 0;
      let status = -1;
      for await (const m of k.stream({ handle, job_id })) {
        if (m.data) bytes += m.data.length;
        if (m.exit_status !== undefined) status = m.exit_status;
      }
      if (status !== 0 || bytes !== opts.streamBytes) throw new Error(`staging script: exit ${status}, ${bytes} of ${opts.streamBytes} bytes`);
      mark('spawn+stream');
      const dst = join(outDir, String(i));
      await k.copyOut({ handle, src_path: `${home}/droplet.tar`, dst_path: dst });
      mark('copy_out');
      await tracker.destroy(k, handle);
      handle = undefined;
      mark('destroy');
      await rm(dst, { recursive: true, force: true });
      rows.push([round3(start - t0), ...STEPS.map((s) => round3(times[s])), round3(performance.now() - start)]);
      progress.tick();
    } catch (err) {
      // Failures caused by the interrupt itself (connections closed) are not the daemon's.
      if (!ctx.signal.aborted) errors.push(messageOf(err));
      progress.tick(1, true);
      if (handle) await tracker.destroy(k, handle).catch(() => undefined);
    }
  });
  const wall = performance.now() - t0;
  const cpu1 = ctx.target.pid ? await processSample(ctx.target.pid) : undefined;
  phase.end(rows.length, summarize(rows.map((r) => r.at(-1)!)).p50);
  progress.end();
  await closeAll(clients);
  await ctx.noteIds();
  if (errors.length) results.errors.push({ scenario: 'staging', message: `${errors.length} stagings failed, first: ${errors[0]}` });
  results.addSeries('staging', 'daemon', ['t_ms', ...STEPS.map((s) => `${s}_ms`), 'total_ms'], rows);

  // Raw: C scripts at once, the same count in all.
  let raw: { total: number[]; steps: Record<Step, number[]>; rate: number; cpuMs: number } | undefined;
  if (opts.baselines && !ctx.signal.aborted && (ctx.rawLinux || ctx.rawInsecure)) {
    progress.start(`staging: raw, c=${c}`, total);
    const perWorker = Math.max(1, Math.ceil(total / c));
    const rawOut = join(ctx.tmp, 'staging-raw-out');
    await mkdir(rawOut, { recursive: true });
    const rawPhase = results.phase(`staging c=${c} raw`, 'staging', `staging c=${c}`);
    const r0 = performance.now();
    let run;
    if (ctx.rawLinux) {
      const template = await ctx.rawLinux.template(ctx.tmp, [{ src_path: bindDir, dst_path: '/var/vcap/buildpack', mode: 0 }]);
      run = await ctx.rawLinux.stagings(c, perWorker, {
        appDir, outDir: rawOut, script, limitMem: MEMORY, limitDisk: DISK, limitCpu: CPU_SHARES, portBase: 28000, template,
      }, (op) => op.op === 'destroy' && progress.tick(), ctx.signal);
    } else {
      run = await ctx.rawInsecure!.stagings(c, perWorker, { appDir, outDir: rawOut, script }, () => progress.tick(), ctx.signal);
    }
    const rawWall = performance.now() - r0;
    progress.end();
    for (const e of run.errors.slice(0, 3)) results.errors.push({ scenario: 'staging', message: `raw: ${e}` });
    raw = { total: [], steps: { create: [], limits: [], net_in: [], copy_in: [], 'spawn+stream': [], copy_out: [], destroy: [] }, rate: 0, cpuMs: NaN };
    const byWorker = new Map<number, RawOp[]>();
    for (const op of run.ops) byWorker.set(op.worker, [...(byWorker.get(op.worker) ?? []), op]);
    let done = 0;
    const rawRows: number[][] = [];
    for (const ops of byWorker.values()) {
      if (linux) {
        // create, stage_steps, destroy, in that order, per staging.
        for (let j = 0; j + 2 < ops.length + 0; j += 3) {
          const [cr, st, de] = [ops[j], ops[j + 1], ops[j + 2]];
          if (cr?.op !== 'create' || st?.op !== 'stage_steps' || de?.op !== 'destroy') break;
          const s = st.steps;
          const row: Record<Step, number> = {
            create: cr.totalMs, limits: s.limits, net_in: s.net_in, copy_in: s.copy_in,
            'spawn+stream': s.run + s.read_output, copy_out: s.copy_out, destroy: de.totalMs,
          };
          for (const k of STEPS) raw.steps[k].push(row[k]);
          raw.total.push(cr.totalMs + st.totalMs + de.totalMs);
          rawRows.push([...STEPS.map((k) => round3(row[k])), round3(cr.totalMs + st.totalMs + de.totalMs)]);
          done++;
        }
      } else {
        for (const st of ops) {
          if (st.op !== 'stage_steps') continue;
          const s = st.steps;
          const row: Record<Step, number> = {
            create: s.create, limits: NaN, net_in: NaN, copy_in: s.copy_in, 'spawn+stream': s.run + s.read_output, copy_out: s.copy_out, destroy: s.destroy,
          };
          for (const k of STEPS) raw.steps[k].push(row[k]);
          raw.total.push(st.totalMs);
          rawRows.push([...STEPS.map((k) => round3(row[k])), round3(st.totalMs)]);
          done++;
        }
      }
    }
    rawPhase.end(done);
    raw.rate = (done * 1000) / rawWall;
    if (done > 0 && run.cpuSeconds > 0) raw.cpuMs = (run.cpuSeconds * 1000) / done;
    results.addSeries('staging', 'raw', [...STEPS.map((s) => `${s}_ms`), 'total_ms'], rawRows);
  }

  const rawLabel = linux ? 'raw runc + host tools, C plain scripts' : 'raw file operations + tar + bash, C plain scripts';
  const params = `c=${c}, ${formatBytes(opts.streamBytes)} out`;
  results.add({
    scenario: 'staging', metric: 'stagings', params, unit: '/s', value: (rows.length * 1000) / wall, better: 'higher', n: rows.length,
    baseline: raw ? { label: rawLabel, value: raw.rate } : undefined,
  });
  if (cpu0 && cpu1 && rows.length > 0) {
    // Host commands included: the spawners' own and reaped time (bench/harness/proc.ts).
    const daemonMs = ((cpu1.cpu - cpu0.cpu) * 1000) / rows.length;
    const childMs = ((cpu1.childCpu - cpu0.childCpu) * 1000) / rows.length;
    results.add({
      scenario: 'staging', metric: 'CPU per staging (daemon + its children)', params, unit: 'ms', value: daemonMs + childMs, better: 'lower',
      baseline: raw && Number.isFinite(raw.cpuMs) ? { label: linux ? 'raw scripts + their children' : 'raw, this process', value: raw.cpuMs } : undefined,
      note: `daemon ${formatDuration(daemonMs)} + children ${formatDuration(childMs)}`,
    });
  }
  results.latency('staging', 'whole staging', params, summarize(rows.map((r) => r.at(-1)!)), raw ? { ...summarize(raw.total), label: rawLabel } : undefined);
  const findingRows: string[][] = [];
  STEPS.forEach((s, idx) => {
    const d = summarize(rows.map((r) => r[idx + 1]).filter(Number.isFinite));
    if (d.n === 0) return;
    const b = raw ? summarize(raw.steps[s].filter(Number.isFinite)) : undefined;
    results.latency('staging', `step: ${s === 'limits' ? 'LimitMemory+LimitDisk+LimitCpu' : s}`, `c=${c}`, d, b && b.n ? { ...b, label: rawLabel } : undefined);
    findingRows.push([s, formatDuration(d.p50), formatDuration(d.p99), b?.n ? formatDuration(b.p50) : '-', b?.n ? `${(d.p50 / b.p50).toFixed(2)}x` : '-']);
  });
  results.finding('staging', `per-step latency at c=${c}`, ['step', 'daemon p50', 'daemon p99', 'raw p50', 'ratio'], findingRows);
}
