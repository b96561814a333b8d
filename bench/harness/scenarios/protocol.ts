// protocol: Ping and Echo round trips per second from C connections, beside a
// raw unix-socket echo server (bench/protocol/raw-echo-server.ts, its own
// process) answering the very same bytes through the same client loop
// (bench/protocol/round-trips.ts).
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { encodeRequest } from '../../../src/protocol/codec.ts';
import { measureRoundTrips } from '../../protocol/round-trips.ts';
import type { BenchContext } from '../context.ts';
import { round3, summarize } from '../util.ts';

const SERVER = join(import.meta.dirname, '../../protocol/raw-echo-server.ts');

function startRawServer(socketPath: string): Promise<ChildProcess> {
  const child = fork(SERVER, [socketPath], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`raw echo server exited with ${code} before listening`)));
    child.once('error', reject);
  });
}

export async function protocolScenario(ctx: BenchContext): Promise<void> {
  const { opts, results, progress } = ctx;
  const requests = [
    { label: 'Ping', frame: encodeRequest('Ping', {}) },
    { label: 'Echo 1 KiB', frame: encodeRequest('Echo', { message: 'x'.repeat(1024) }) },
  ];
  const raw = opts.baselines ? await startRawServer(join(ctx.tmp, 'raw-echo.sock')) : undefined;
  const warmupMs = opts.quick ? 50 : 500;
  const durationMs = opts.protocolDurationS * 1000;
  try {
    for (const req of requests) {
      const rows: number[][] = [];
      for (const c of opts.levels) {
        const targets = [{ name: 'daemon', socket: ctx.target.socket }, ...(raw ? [{ name: 'raw', socket: join(ctx.tmp, 'raw-echo.sock') }] : [])];
        const figures: Record<string, { rate: number; lat: ReturnType<typeof summarize> }> = {};
        for (const t of targets) {
          if (ctx.signal.aborted) return;
          progress.start(`protocol ${req.label} c=${c} ${t.name}`, 0, { timeBoundMs: warmupMs + durationMs });
          const r = await measureRoundTrips({ socketPath: t.socket, frame: req.frame, connections: c, warmupMs, durationMs, signal: ctx.signal });
          progress.tick(r.count);
          progress.end();
          const rate = r.elapsedMs > 0 ? (r.count * 1000) / r.elapsedMs : NaN;
          figures[t.name] = { rate, lat: summarize(r.latencies) };
          results.addSeries('protocol', `${req.label} c=${c} ${t.name} latency`, ['ms'], r.latencies.map((v) => [round3(v)]));
        }
        const d = figures.daemon;
        const b = figures.raw;
        const label = 'raw unix-socket echo of the same frames';
        results.add({
          scenario: 'protocol', metric: `${req.label} round trips`, params: `c=${c}`, unit: '/s', value: d.rate, better: 'higher', n: d.lat.n,
          baseline: b ? { label, value: b.rate } : undefined,
        });
        results.latency('protocol', `${req.label} latency`, `c=${c}`, d.lat, b ? { ...b.lat, label } : undefined);
        rows.push([c, d.rate, b?.rate ?? NaN, d.lat.p50, d.lat.p90, d.lat.p99, b?.lat.p50 ?? NaN, b?.lat.p90 ?? NaN, b?.lat.p99 ?? NaN]);
      }
      results.addSeries('protocol', `${req.label} by concurrency`, ['connections', 'daemon_rate', 'raw_rate', 'daemon_p50', 'daemon_p90', 'daemon_p99', 'raw_p50', 'raw_p90', 'raw_p99'], rows);
    }
  } finally {
    raw?.kill('SIGTERM');
  }
}
