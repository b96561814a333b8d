// jobs: Run of `true` (latency, beside a raw `runc exec ID true` or `bash -c true`),
// Stream throughput of one large job and of many concurrent jobs (beside reading
// the same bytes from files), and Link of many finished jobs (beside reading the
// same job files directly).
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WardenClient } from '../../../src/client/client.ts';
import { formatBytes } from '../../lib/format.ts';
import { closeAll, connections, type BenchContext } from '../context.ts';
import { checkAbort, messageOf, round3, runWorkers, sleep, summarize } from '../util.ts';

/** Container facts the raw baselines need: folder, id, and for Linux the runc root and vcap uid. */
export interface ContainerFacts {
  handle: string;
  path: string;
  id: string;
  runtimeRoot?: string;
  uid?: number;
}

export async function containerFacts(c: WardenClient, handle: string): Promise<ContainerFacts> {
  const info = await c.info({ handle });
  const path = info.container_path!;
  const facts: ContainerFacts = { handle, path, id: path.split('/').pop()! };
  // <container_path>/etc/config: the Linux backend's settings in the original's shell format.
  const text = await readFile(join(path, 'etc', 'config'), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const m = /^(\w+)="(.*)"$/.exec(line);
    if (m?.[1] === 'runtime_root') facts.runtimeRoot = m[2];
    if (m?.[1] === 'user_uid') facts.uid = Number(m[2]);
  }
  return facts;
}

/** What the Linux raw baselines need of the bench container; undefined without baselines or off Linux. */
function rawLinuxTarget(ctx: BenchContext, facts: ContainerFacts) {
  if (!ctx.opts.baselines || ctx.target.backend !== 'linux' || !ctx.rawLinux || !facts.runtimeRoot || facts.uid === undefined) return undefined;
  return { raw: ctx.rawLinux, root: facts.runtimeRoot, id: facts.id, uid: facts.uid };
}

/** Bytes of a zero-filled file of n bytes, written without timing (for read baselines). */
async function zeroFile(path: string, n: number): Promise<void> {
  const fh = await open(path, 'w');
  const chunk = Buffer.alloc(1024 * 1024);
  try {
    for (let left = n; left > 0; left -= chunk.length) await fh.write(chunk, 0, Math.min(left, chunk.length));
  } finally {
    await fh.close();
  }
}

/** Reads a file in 64 KiB chunks (the daemon's follower's chunk size); resolves with the bytes read. */
function readAll(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    createReadStream(path, { highWaterMark: 64 * 1024 })
      .on('data', (d) => (n += d.length))
      .on('end', () => resolve(n))
      .on('error', reject);
  });
}

/** Spawn a script and stream its output; returns bytes received, exit status, and times. */
async function spawnAndStream(c: WardenClient, handle: string, script: string): Promise<{ bytes: number; status: number; spawnMs: number; streamMs: number; firstByteMs: number }> {
  const t0 = performance.now();
  const { job_id } = await c.spawn({ handle, script });
  const t1 = performance.now();
  let bytes = 0;
  let status = -1;
  let first = NaN;
  for await (const m of c.stream({ handle, job_id })) {
    if (m.data) {
      if (Number.isNaN(first)) first = performance.now() - t1;
      bytes += m.data.length;
    }
    if (m.exit_status !== undefined) status = m.exit_status;
  }
  return { bytes, status, spawnMs: t1 - t0, streamMs: performance.now() - t1, firstByteMs: first };
}

export async function jobsScenario(ctx: BenchContext): Promise<void> {
  const { opts, results, progress, tracker } = ctx;
  const linux = ctx.target.backend === 'linux';
  const main = await ctx.connect();
  const handles: string[] = [];
  try {
    const handle = await tracker.create(main);
    handles.push(handle);
    const facts = await containerFacts(main, handle);

    // ---- Run `true` ------------------------------------------------------------------
    progress.start('jobs: Run true, daemon', opts.runCount);
    const runMs: number[] = [];
    const phase = results.phase('jobs Run true', 'Run');
    for (let i = 0; i < opts.runCount; i++) {
      checkAbort(ctx.signal);
      const t = performance.now();
      const r = await main.run({ handle, script: 'true' });
      runMs.push(performance.now() - t);
      if (r.exit_status !== 0) results.errors.push({ scenario: 'jobs', message: `Run true exited with ${r.exit_status}` });
      progress.tick();
    }
    phase.end(runMs.length, summarize(runMs).p50);
    progress.end();
    results.addSeries('jobs', 'Run true daemon', ['ms'], runMs.map((v) => [round3(v)]));
    let rawRun: number[] | undefined;
    let rawLabel = '';
    const rawTarget = rawLinuxTarget(ctx, facts);
    if (opts.baselines) {
      progress.start('jobs: Run true, raw', opts.runCount);
      if (rawTarget) {
        rawLabel = 'raw `runc exec --user vcap ID /bin/true`';
        const r = await rawTarget.raw.execTrue(opts.runCount, rawTarget.root, rawTarget.id, rawTarget.uid, () => progress.tick(), ctx.signal);
        rawRun = r.ops.map((o) => o.totalMs);
        for (const e of r.errors.slice(0, 3)) results.errors.push({ scenario: 'jobs', message: `raw exec: ${e}` });
      } else if (!linux && ctx.rawInsecure) {
        rawLabel = 'raw `/bin/bash -c true` from a script';
        const r = await ctx.rawInsecure.execTrue(opts.runCount, () => progress.tick(), ctx.signal);
        rawRun = r.ops.map((o) => o.totalMs);
      }
      progress.end();
      if (rawRun) results.addSeries('jobs', 'Run true raw', ['ms'], rawRun.map((v) => [round3(v)]));
    }
    results.latency('jobs', 'Run `true`', 'sequential, 1 conn', summarize(runMs), rawRun ? { ...summarize(rawRun), label: rawLabel } : undefined);
    if (rawTarget) {
      // The same Runs against what they start in the container (the job wrapper and
      // the job's bash): what remains is the daemon's side of a Run.
      progress.start('jobs: Run true, raw job processes', opts.runCount);
      const r = await rawTarget.raw.execJob(opts.runCount, rawTarget.root, rawTarget.id, rawTarget.uid, () => progress.tick(), ctx.signal);
      progress.end();
      for (const e of r.errors.slice(0, 3)) results.errors.push({ scenario: 'jobs', message: `raw exec of the job processes: ${e}` });
      const rawJob = r.ops.map((o) => o.totalMs);
      results.addSeries('jobs', 'Run true raw job processes', ['ms'], rawJob.map((v) => [round3(v)]));
      results.latency('jobs', 'Run `true`, against its in-container processes', 'sequential, 1 conn', summarize(runMs), {
        ...summarize(rawJob), label: 'raw `runc exec` of the job wrapper and bash reading `true`',
      });
    }

    // ---- one large stream --------------------------------------------------------------
    checkAbort(ctx.signal);
    const big = opts.bigStreamBytes;
    progress.start(`jobs: Stream ${formatBytes(big)}`, 1);
    const s = await spawnAndStream(main, handle, `head -c ${big} /dev/zero`);
    progress.tick();
    progress.end();
    if (s.bytes !== big) results.errors.push({ scenario: 'jobs', message: `large stream: got ${s.bytes} of ${big} bytes (exit ${s.status}; job_output_limit?)` });
    let fileMBps: number | undefined;
    if (opts.baselines) {
      const path = join(ctx.tmp, 'stream-baseline.bin');
      await zeroFile(path, big);
      const t = performance.now();
      const n = await readAll(path);
      fileMBps = n / 1e6 / ((performance.now() - t) / 1000);
    }
    const bigMBps = s.bytes / 1e6 / (s.streamMs / 1000);
    results.add({
      scenario: 'jobs', metric: 'Stream throughput, one job', params: formatBytes(big), unit: 'MB/s', value: bigMBps, better: 'higher',
      baseline: fileMBps === undefined ? undefined : { label: 'reading the same bytes from a file, 64 KiB chunks', value: fileMBps },
      note: `first byte after ${s.firstByteMs.toFixed(1)} ms`,
    });
    results.addSeries('jobs', 'large stream', ['bytes', 'spawn_ms', 'stream_ms', 'first_byte_ms', 'file_MBps'], [[s.bytes, round3(s.spawnMs), round3(s.streamMs), round3(s.firstByteMs), fileMBps ?? NaN]]);
    // The same figure against what the host needs at least for a live job's
    // output: the job started by a raw `runc exec` writing into the depot, then read.
    const floorOne = await rawJobFloor(ctx, facts, 1, big);
    if (floorOne !== undefined) {
      results.add({
        scenario: 'jobs', metric: 'Stream throughput, one job, against the host floor', params: formatBytes(big), unit: 'MB/s', value: bigMBps, better: 'higher',
        baseline: { label: 'raw `runc exec` of the same job into a file in the depot, then reading it', value: big / 1e6 / (floorOne / 1000) },
      });
    }

    // ---- concurrent streams --------------------------------------------------------------
    checkAbort(ctx.signal);
    const k = opts.concurrentJobs;
    const perContainer = 10;
    const nContainers = Math.max(1, Math.ceil(k / perContainer));
    progress.start(`jobs: containers for ${k} jobs`, nContainers - 1);
    const targets = [handle];
    for (let i = 1; i < nContainers; i++) {
      checkAbort(ctx.signal);
      const h = await tracker.create(main);
      handles.push(h);
      targets.push(h);
      progress.tick();
    }
    progress.end();
    const conns = await connections(ctx, k);
    progress.start(`jobs: Stream ${k} x ${formatBytes(opts.jobBytes)}`, k);
    const streamPhase = results.phase(`jobs Stream ${k} concurrent jobs`, 'job');
    const t0 = performance.now();
    const each = await Promise.all(
      conns.map(async (c, i) => {
        const r = await spawnAndStream(c, targets[i % targets.length], `head -c ${opts.jobBytes} /dev/zero`);
        progress.tick();
        return r;
      }),
    );
    const wall = performance.now() - t0;
    streamPhase.end(k);
    progress.end();
    await closeAll(conns);
    const total = each.reduce((a, r) => a + r.bytes, 0);
    if (total !== k * opts.jobBytes) results.errors.push({ scenario: 'jobs', message: `concurrent streams: got ${total} of ${k * opts.jobBytes} bytes` });
    let filesMBps: number | undefined;
    if (opts.baselines) {
      const paths = Array.from({ length: k }, (_, i) => join(ctx.tmp, `stream-${i}.bin`));
      await zeroFile(paths[0], opts.jobBytes);
      const { copyFile, rm } = await import('node:fs/promises');
      for (const p of paths.slice(1)) await copyFile(paths[0], p);
      const t = performance.now();
      const n = (await Promise.all(paths.map(readAll))).reduce((a, b) => a + b, 0);
      filesMBps = n / 1e6 / ((performance.now() - t) / 1000);
      await Promise.all(paths.map((p) => rm(p, { force: true })));
    }
    results.add({
      scenario: 'jobs', metric: `Stream throughput, ${k} concurrent jobs`, params: `${k} x ${formatBytes(opts.jobBytes)}`, unit: 'MB/s',
      value: total / 1e6 / (wall / 1000), better: 'higher',
      baseline: filesMBps === undefined ? undefined : { label: `reading ${k} files of the same size at once`, value: filesMBps },
      note: 'wall time from the first Spawn to the last exit status',
    });
    results.addSeries('jobs', 'concurrent streams', ['bytes', 'spawn_ms', 'stream_ms', 'first_byte_ms'], each.map((r) => [r.bytes, round3(r.spawnMs), round3(r.streamMs), round3(r.firstByteMs)]));
    const floorMany = await rawJobFloor(ctx, facts, k, opts.jobBytes);
    if (floorMany !== undefined) {
      results.add({
        scenario: 'jobs', metric: `Stream throughput, ${k} concurrent jobs, against the host floor`, params: `${k} x ${formatBytes(opts.jobBytes)}`, unit: 'MB/s',
        value: total / 1e6 / (wall / 1000), better: 'higher',
        baseline: { label: `${k} raw \`runc exec\` of the same job at once, each into a file in the depot, then read`, value: (k * opts.jobBytes) / 1e6 / (floorMany / 1000) },
      });
    }

    // ---- Link of finished jobs -----------------------------------------------------------
    checkAbort(ctx.signal);
    await linkFinished(ctx, main, targets);
  } finally {
    for (const h of handles) await tracker.destroy(main, h).catch(() => undefined);
    await ctx.noteIds();
    await main.close();
  }
}

async function linkFinished(ctx: BenchContext, main: WardenClient, targets: string[]): Promise<void> {
  const { opts, results, progress } = ctx;
  const n = opts.linkJobs;
  const c = 16;
  const conns = await connections(ctx, c);
  try {
    const jobs: Array<{ handle: string; id: number }> = [];
    const spawnMs: number[] = [];
    progress.start(`jobs: Spawn ${n} jobs`, n);
    await runWorkers(c, { count: n, signal: ctx.signal }, async (i, w) => {
      const handle = targets[i % targets.length];
      const t = performance.now();
      try {
        const { job_id } = await conns[w].spawn({ handle, script: 'echo done' });
        spawnMs.push(performance.now() - t);
        jobs.push({ handle, id: job_id });
        progress.tick();
      } catch (err) {
        results.errors.push({ scenario: 'jobs', message: `spawn: ${messageOf(err)}` });
        progress.tick(1, true);
      }
    });
    progress.end();
    checkAbort(ctx.signal);
    results.addSeries('jobs', 'spawn for link', ['ms'], spawnMs.map((v) => [round3(v)]));
    // Finished: no container lists a running job any more.
    progress.start('jobs: waiting for the jobs to finish', 0, { timeBoundMs: 60_000 });
    const deadline = Date.now() + 600_000;
    for (;;) {
      checkAbort(ctx.signal);
      let running = 0;
      for (const h of targets) running += (await main.info({ handle: h })).job_ids?.length ?? 0;
      progress.note(`${running} running`);
      if (running === 0) break;
      if (Date.now() > deadline) throw new Error(`${running} jobs still running after 10 minutes`);
      await sleep(200);
    }
    progress.end();

    const paths = new Map<string, string>();
    for (const h of targets) paths.set(h, (await main.info({ handle: h })).container_path!);
    let rawMs: number[] | undefined;
    if (opts.baselines) {
      // The same files Link reads, read directly: stdout, stderr, exit_status of each job.
      rawMs = [];
      const queue = [...jobs];
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: c }, async () => {
          for (let j = queue.shift(); j; j = queue.shift()) {
            const dir = join(paths.get(j.handle)!, 'jobs', String(j.id));
            const t = performance.now();
            await Promise.all(['stdout', 'stderr', 'exit_status'].map((f) => readFile(join(dir, f)).catch(() => undefined)));
            rawMs!.push(performance.now() - t);
          }
        }),
      );
      void t0;
    }
    const linkMs: number[] = [];
    progress.start(`jobs: Link ${jobs.length} finished jobs`, jobs.length);
    const queue = [...jobs];
    const phase = results.phase(`jobs Link of ${jobs.length} finished jobs`, 'Link');
    const t0 = performance.now();
    await Promise.all(
      conns.map(async (k) => {
        for (let j = queue.shift(); j; j = queue.shift()) {
          if (ctx.signal.aborted) return;
          const t = performance.now();
          try {
            const r = await k.link({ handle: j.handle, job_id: j.id });
            if (r.exit_status !== 0 || String(r.stdout ?? '').trim() !== 'done') {
              results.errors.push({ scenario: 'jobs', message: `link ${j.id}: status ${r.exit_status}, stdout ${JSON.stringify(String(r.stdout ?? ''))}` });
            }
          } catch (err) {
            results.errors.push({ scenario: 'jobs', message: `link ${j.id}: ${messageOf(err)}` });
          }
          linkMs.push(performance.now() - t);
          progress.tick();
        }
      }),
    );
    const wall = performance.now() - t0;
    phase.end(linkMs.length, summarize(linkMs).p50);
    progress.end();
    results.addSeries('jobs', 'link finished', ['ms'], linkMs.map((v) => [round3(v)]));
    if (rawMs) results.addSeries('jobs', 'link finished raw', ['ms'], rawMs.map((v) => [round3(v)]));
    results.latency('jobs', 'Link of a finished job', `${jobs.length} jobs, c=${c}`, summarize(linkMs), rawMs ? { ...summarize(rawMs), label: 'reading stdout, stderr, exit_status directly' } : undefined,
      `${((jobs.length * 1000) / wall).toFixed(0)} links/s`);
  } finally {
    await closeAll(conns);
  }
}

/**
 * Wall ms of k raw jobs (Linux) writing `bytes` each into files in the depot and
 * read back, in the bench container; undefined without baselines or off Linux.
 */
async function rawJobFloor(ctx: BenchContext, facts: ContainerFacts, k: number, bytes: number): Promise<number | undefined> {
  const t = rawLinuxTarget(ctx, facts);
  if (!t) return undefined;
  const r = await t.raw.execOut(k, t.root, t.id, t.uid, bytes, ctx.signal);
  for (const e of r.errors.slice(0, 3)) ctx.results.errors.push({ scenario: 'jobs', message: `raw exec-out: ${e}` });
  return r.errors.length ? undefined : r.wallMs;
}
