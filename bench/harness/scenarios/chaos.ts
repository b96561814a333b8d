// chaos: for a bounded time, many connections run a mix of creates, spawns, streams,
// runs, copies and destroys while the daemon is killed with SIGKILL at random moments
// and started again on the same depot. Then, with the daemon up and the load stopped:
//   - every container is whole (listed, Info answers, a Run works) or gone; one whose
//     Create was acknowledged and that was never destroyed must still be listed, and
//     one whose Destroy was acknowledged must not be;
//   - every job whose Spawn was acknowledged, in a container still listed, can be
//     Linked and gives the exit status its script ends with (else it is lost: the
//     error is its reason);
// and the run's cleanup destroys everything and checks the host for leaks, as after
// every scenario. Needs the harness's own daemon (it kills and restarts it).
import { copyFile, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WardenClient, WardenError } from '../../../src/client/client.ts';
import type { BenchContext } from '../context.ts';
import { messageOf, sleep } from '../util.ts';

type Op = 'create' | 'spawn' | 'stream' | 'run' | 'copy_in' | 'copy_out' | 'destroy';
const OPS: Op[] = ['create', 'spawn', 'stream', 'run', 'copy_in', 'copy_out', 'destroy'];

interface OpCount {
  tried: number;
  ok: number;
  /** Failed because the daemon went away under it (connection closed or refused). */
  cut: number;
  /** Answered with an error by a running daemon. */
  refused: number;
}

interface Known {
  /** Create acknowledged. */
  created: boolean;
  /** A Destroy was sent (acknowledged or not). */
  destroyAsked: boolean;
  destroyed: boolean;
  /** job id → the exit status its script ends with (a job read to its end by Stream or Link is forgotten: not here). */
  jobs: Map<number, number>;
  /** Jobs whose Stream the kill cut: the daemon may have read them to the end (and forgotten them) before the reply was lost. */
  streamCut: Set<number>;
  /** Paths copied in (acknowledged): what copy_out copies back. */
  copied: string[];
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const between = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

/** The daemon went away under the request: not the daemon's answer. */
function isCut(err: unknown): boolean {
  if (err instanceof WardenError) return false;
  return /ECONNREFUSED|ECONNRESET|EPIPE|ENOENT|closed|socket hang up|ended|not connected|destroyed/i.test(messageOf(err));
}

export async function chaosScenario(ctx: BenchContext): Promise<void> {
  const { opts, results, progress, tracker, target } = ctx;
  const own = target.own;
  if (!own) throw new Error('chaos kills and restarts the daemon: run it on the harness\'s own daemon (no --socket)');
  const conns = opts.densityConcurrency;
  const deadline = performance.now() + opts.chaosSeconds * 1000;
  // Load between kills: long enough for Linux creates (seconds each on a loaded host) to finish often.
  const linux = target.backend === 'linux';
  const [loadLo, loadHi] = opts.quick ? (linux ? [1000, 4000] : [200, 800]) : linux ? [2000, 8000] : [300, 2500];
  const counts = Object.fromEntries(OPS.map((o) => [o, { tried: 0, ok: 0, cut: 0, refused: 0 }])) as Record<Op, OpCount>;
  const refusals: string[] = [];
  const known = new Map<string, Known>();
  const appDir = join(ctx.tmp, 'chaos-app');
  await mkdir(appDir, { recursive: true });
  await writeFile(join(appDir, 'file.txt'), 'chaos\n'.repeat(1000));
  let copies = 0;
  let stop = false;

  const attempt = async (op: Op, fn: () => Promise<unknown>): Promise<void> => {
    counts[op].tried++;
    try {
      await fn();
      counts[op].ok++;
    } catch (err) {
      if (isCut(err)) counts[op].cut++;
      else {
        counts[op].refused++;
        if (refusals.length < 200) refusals.push(`${op}: ${messageOf(err)}`);
      }
      throw err;
    }
  };

  const live = () => [...known.entries()].filter(([, k]) => k.created && !k.destroyAsked).map(([h]) => h);

  const worker = async () => {
    let k: WardenClient | undefined;
    while (!stop && !ctx.signal.aborted) {
      if (!k) {
        k = await WardenClient.connect(target.socket).catch(() => undefined);
        if (!k) {
          await sleep(100);
          continue;
        }
      }
      const handles = live();
      let op: Op = handles.length < 3 ? 'create' : pick(['create', 'spawn', 'spawn', 'stream', 'run', 'copy_in', 'copy_out', 'destroy'] as const);
      const c = k;
      try {
        if (op === 'create') {
          const handle = tracker.nextHandle();
          tracker.live.add(handle);
          const entry: Known = { created: false, destroyAsked: false, destroyed: false, jobs: new Map(), streamCut: new Set(), copied: [] };
          known.set(handle, entry);
          await attempt(op, async () => {
            await c.create({ handle });
            entry.created = true;
          });
        } else {
          const handle = pick(handles);
          const entry = known.get(handle)!;
          if (op === 'copy_out' && entry.copied.length === 0) op = 'copy_in';
          if (op === 'spawn' || op === 'stream') {
            const code = Math.floor(Math.random() * 10);
            await attempt(op, async () => {
              const { job_id } = await c.spawn({ handle, script: `echo started; sleep 0.2; echo done; exit ${code}` });
              entry.jobs.set(job_id, code);
              if (op === 'stream') {
                let status: number | undefined;
                try {
                  for await (const m of c.stream({ handle, job_id })) if (m.exit_status !== undefined) status = m.exit_status;
                } catch (err) {
                  if (isCut(err)) entry.streamCut.add(job_id);
                  throw err;
                }
                // Read to its end: the daemon forgets it (as the original did).
                entry.jobs.delete(job_id);
                // A Destroy from another connection kills it (137): not a wrong status.
                if (status !== code && !entry.destroyAsked) throw new WardenError({ message: `stream of job ${job_id} ended with ${status}, script exits ${code}` });
              }
            });
          } else if (op === 'run') {
            await attempt(op, async () => {
              const r = await c.run({ handle, script: 'echo ok' });
              if (r.exit_status !== 0) throw new WardenError({ message: `run: exit ${r.exit_status}` });
            });
          } else if (op === 'copy_in') {
            const dst = `/tmp/app-${++copies}`;
            await attempt(op, () => c.copyIn({ handle, src_path: `${appDir}/`, dst_path: dst }));
            entry.copied.push(dst);
          } else if (op === 'copy_out') {
            const dst = join(ctx.tmp, `chaos-out-${++copies}`);
            await attempt(op, () => c.copyOut({ handle, src_path: `${pick(entry.copied)}/file.txt`, dst_path: dst }));
            await rm(dst, { recursive: true, force: true });
          } else {
            entry.destroyAsked = true;
            await attempt(op, async () => {
              await c.destroy({ handle });
              entry.destroyed = true;
              tracker.live.delete(handle);
            });
          }
        }
      } catch (err) {
        if (isCut(err)) {
          await c.close().catch(() => undefined);
          k = undefined;
        }
      }
    }
    await k?.close().catch(() => undefined);
  };

  progress.start(`chaos: ${opts.kills} kills, ${conns} connections`, opts.kills);
  const workers = Array.from({ length: conns }, () => worker());
  let kills = 0;
  const restartMs: number[] = [];
  try {
    while (kills < opts.kills && performance.now() < deadline && !ctx.signal.aborted) {
      await sleep(between(loadLo, loadHi));
      await own.kill9();
      kills++;
      const t0 = performance.now();
      await own.launch();
      restartMs.push(performance.now() - t0);
      target.pid = own.pid;
      progress.tick();
    }
  } finally {
    stop = true;
    await Promise.all(workers);
    progress.end();
  }

  // The checks, on the daemon as the last restart left it.
  const lost: string[] = [];
  const c = await ctx.connect();
  const listed = new Set((await c.list()).handles ?? []);
  let whole = 0;
  let jobsRead = 0;
  let consumed = 0;
  for (const [handle, k] of known) {
    if (listed.has(handle)) {
      if (k.destroyed) {
        lost.push(`container ${handle}: Destroy was acknowledged, but it is still listed`);
        continue;
      }
      try {
        const info = await c.info({ handle });
        const r = await c.run({ handle, script: 'echo whole' });
        if (r.exit_status !== 0 || String(r.stdout) !== 'whole\n') throw new Error(`Run gave exit ${r.exit_status}, stdout ${JSON.stringify(String(r.stdout))}`);
        if (info.state !== 'active') throw new Error(`state ${info.state}`);
        whole++;
      } catch (err) {
        lost.push(`container ${handle}: listed but not whole: ${messageOf(err)}`);
        continue;
      }
      for (const [job_id, code] of k.jobs) {
        try {
          const r = await c.link({ handle, job_id });
          if (r.exit_status !== code) {
            lost.push(`job ${handle}/${job_id}: exit status ${r.exit_status}, script exits ${code} (stdout ${JSON.stringify(String(r.stdout ?? ''))}, stderr ${JSON.stringify(String(r.stderr ?? '').slice(0, 200))})`);
          }
          else jobsRead++;
        } catch (err) {
          if (k.streamCut.has(job_id) && /no such job/.test(messageOf(err))) consumed++;
          else lost.push(`job ${handle}/${job_id} lost: ${messageOf(err)}`);
        }
      }
    } else if (k.created && !k.destroyAsked) {
      lost.push(`container ${handle}: Create was acknowledged and it was never destroyed, but it is gone`);
    }
  }
  await ctx.noteIds();

  const total = (f: keyof OpCount) => OPS.reduce((a, o) => a + counts[o][f], 0);
  const mean = restartMs.length ? restartMs.reduce((a, b) => a + b, 0) / restartMs.length : NaN;
  results.add({ scenario: 'chaos', metric: 'restart after SIGKILL (to first Ping)', params: `${kills} restarts`, unit: 'ms', value: mean, better: 'lower', n: restartMs.length });
  results.finding('chaos', `${kills} SIGKILLs, ${total('tried')} operations from ${conns} connections; checked ${whole} whole containers and ${jobsRead} job exit statuses (${consumed} more read to their end by a Stream whose reply a kill cut); lost: ${lost.length}`,
    ['operation', 'tried', 'ok', 'cut by a kill', 'refused by the daemon'],
    [...OPS.map((o) => [o, String(counts[o].tried), String(counts[o].ok), String(counts[o].cut), String(counts[o].refused)]),
      ['all', String(total('tried')), String(total('ok')), String(total('cut')), String(total('refused'))]]);
  if (refusals.length) {
    // Grouped by their text without handles and numbers; one example of each as it was.
    const groups = new Map<string, { n: number; example: string }>();
    for (const r of refusals) {
      const key = r.replace(/bench-\S+/g, 'H').replace(/\d+/g, 'N');
      const g = groups.get(key) ?? { n: 0, example: r };
      g.n++;
      groups.set(key, g);
    }
    results.finding('chaos', 'errors answered by a running daemon (after a kill: e.g. an unknown handle whose Create was cut)', ['example', 'times'],
      [...groups.values()].map((g) => [g.example.slice(0, 300), String(g.n)]));
  }
  for (const l of lost) results.errors.push({ scenario: 'chaos', message: l });
  if (lost.length) {
    // The run's cleanup removes the daemon's folder: keep its log for the post-mortem.
    const keep = join(tmpdir(), `warden-chaos-${process.pid}.log`);
    await copyFile(own.logPath, keep).catch(() => undefined);
    results.errors.push({ scenario: 'chaos', message: `daemon log kept at ${keep}` });
  }
  progress.log(`chaos: ${kills} kills survived, ${total('tried')} operations tried (${total('ok')} ok, ${total('cut')} cut by a kill, ${total('refused')} refused), ${whole} containers whole, ${jobsRead} jobs read, ${lost.length} lost`);
}
