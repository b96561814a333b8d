// Protocol benchmark: Ping and Echo round trips per second against the real
// daemon (bin/warden-server, insecure backend, started by the test helper),
// beside a raw unix-socket echo server in its own process answering the very
// same bytes, driven by the same client loop. The ratio daemon/raw is what the
// daemon's framing, decoding, dispatch, encoding and logging cost per request.
//
//   node bench/protocol.ts [--seconds N] [--connections C[,C...]] [--warmup S]
//                          [--echo-bytes N] [--log-level LEVEL]
//
// --seconds      measured time per run (default 3; 0.2 with BENCH_QUICK=1)
// --connections  concurrent connections, one request in flight each (default 1,8)
// --warmup       seconds before each measurement (default 0.5; 0.05 with BENCH_QUICK=1)
// --echo-bytes   Echo message size (default 1024)
// --log-level    the daemon's logging.level (default: the test helper's, debug, which
//                logs every request; "info" is the daemon's default in production)
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeRequest } from '../src/protocol/codec.ts';
import { freePort, TestDaemon } from '../test/support/daemon.ts';
import { formatBytes, formatDuration, formatRate, formatRatio, renderTable } from './lib/format.ts';
import { positiveNumber, QUICK, usageError } from './lib/options.ts';
import { quantile, sorted } from './lib/stats.ts';
import { measureRoundTrips } from './protocol/round-trips.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    connections: { type: 'string', multiple: true },
    warmup: { type: 'string' },
    'echo-bytes': { type: 'string' },
    'log-level': { type: 'string' },
  },
  strict: true,
});
const seconds = positiveNumber('seconds', values.seconds, QUICK ? 0.2 : 3);
const warmupSeconds = positiveNumber('warmup', values.warmup, QUICK ? 0.05 : 0.5);
const echoBytes = Math.round(positiveNumber('echo-bytes', values['echo-bytes'], 1024));
const connectionCounts = (values.connections ?? ['1,8']).flatMap((v) => v.split(',')).map((v) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usageError(`--connections takes positive integers, got ${JSON.stringify(v)}`);
  return n;
});

interface Target {
  name: 'daemon' | 'raw';
  socketPath: string;
}

interface Figures {
  perSecond: number;
  p50: number;
  p99: number;
}

/** Everything this run started, torn down by cleanup() whatever happens. */
class Resources {
  /** The daemon being started: a Ctrl-C during its start waits for it, then stops it. */
  daemon: Promise<TestDaemon> | undefined;
  daemonDir: string | undefined;
  raw: ChildProcess | undefined;
  rawDir: string | undefined;
  readonly abort = new AbortController();
  #cleaning: Promise<void> | undefined;

  cleanup(): Promise<void> {
    this.#cleaning ??= (async () => {
      this.raw?.kill('SIGTERM');
      if (this.rawDir) rmSync(this.rawDir, { recursive: true, force: true });
      const daemon = await this.daemon?.catch(() => undefined);
      await daemon?.cleanup().catch((err: unknown) => console.error(`stopping the daemon: ${(err as Error).message}`));
      // A daemon that failed to come up leaves its folder behind.
      if (this.daemonDir) rmSync(this.daemonDir, { recursive: true, force: true });
    })();
    return this.#cleaning;
  }
}

/**
 * The daemon as the integration tests start it; with a log level, the same config
 * written beforehand with that level (TestDaemon launches a config it finds in `dir`).
 */
async function startDaemon(res: Resources, logLevel: string | undefined): Promise<TestDaemon> {
  if (logLevel === undefined) return TestDaemon.start({ backend: 'insecure' });
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-'));
  res.daemonDir = dir;
  const yaml = (section: string, entries: Record<string, unknown>) =>
    `${section}:\n${Object.entries(entries).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join('\n')}\n`;
  writeFileSync(
    join(dir, 'warden.yml'),
    yaml('server', {
      unix_domain_path: join(dir, 'warden.sock'),
      unix_domain_permissions: 0o777,
      container_klass: 'Warden::Container::Insecure',
      container_depot_path: join(dir, 'depot'),
      container_rootfs_path: join(dir, 'rootfs'),
      container_grace_time: null,
      pidfile: join(dir, 'warden.pid'),
      worker_threads: 2,
    }) +
      yaml('health_check_server', { port: await freePort() }) +
      yaml('logging', { level: logLevel, file: join(dir, 'warden.log') }),
  );
  return TestDaemon.start({ dir });
}

function startRawServer(res: Resources): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-raw-'));
  res.rawDir = dir;
  const socketPath = join(dir, 'raw.sock');
  const child = fork(join(import.meta.dirname, 'protocol/raw-echo-server.ts'), [socketPath], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  res.raw = child;
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(socketPath));
    child.once('exit', (code) => reject(new Error(`raw echo server exited with ${code} before listening`)));
    child.once('error', reject);
  });
}

async function measure(target: Target, frame: Buffer, connections: number, signal: AbortSignal): Promise<Figures> {
  const r = await measureRoundTrips({
    socketPath: target.socketPath,
    frame,
    connections,
    warmupMs: warmupSeconds * 1000,
    durationMs: seconds * 1000,
    signal,
  });
  const lat = sorted(r.latencies);
  return { perSecond: r.elapsedMs > 0 ? (r.count * 1000) / r.elapsedMs : NaN, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
}

async function main(res: Resources): Promise<void> {
  const requests = [
    { label: 'Ping', frame: encodeRequest('Ping', {}) },
    { label: `Echo ${formatBytes(echoBytes)}`, frame: encodeRequest('Echo', { message: 'x'.repeat(echoBytes) }) },
  ];
  res.daemon = startDaemon(res, values['log-level']);
  const daemon = await res.daemon;
  if (res.abort.signal.aborted) return;
  const targets: Target[] = [
    { name: 'daemon', socketPath: daemon.socket },
    { name: 'raw', socketPath: await startRawServer(res) },
  ];
  console.log(`warden protocol benchmark: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}`);
  console.log(
    `daemon pid ${daemon.pid} (insecure backend, log level ${values['log-level'] ?? 'debug (test helper)'}); ` +
      `raw echo server pid ${res.raw!.pid}; ${seconds} s per run after ${warmupSeconds} s warmup${QUICK ? ' (BENCH_QUICK)' : ''}`,
  );

  const rows: string[][] = [];
  for (const req of requests) {
    for (const connections of connectionCounts) {
      const figures: Partial<Record<Target['name'], Figures>> = {};
      for (const target of targets) {
        if (res.abort.signal.aborted) return;
        const f = await measure(target, req.frame, connections, res.abort.signal);
        figures[target.name] = f;
        console.error(
          `  ${req.label}, ${connections} conn, ${target.name}: ${formatRate(f.perSecond)} rt/s, p50 ${formatDuration(f.p50)}, p99 ${formatDuration(f.p99)}`,
        );
      }
      const d = figures.daemon!;
      const r = figures.raw!;
      rows.push([
        req.label,
        String(connections),
        formatRate(d.perSecond),
        formatDuration(d.p50),
        formatDuration(d.p99),
        formatRate(r.perSecond),
        formatDuration(r.p50),
        formatDuration(r.p99),
        formatRatio(d.perSecond / r.perSecond),
        formatRatio(d.p50 / r.p50),
        formatRatio(d.p99 / r.p99),
      ]);
    }
  }
  console.log('');
  console.log(
    renderTable(
      [
        { title: 'request' },
        { title: 'conns', right: true },
        { title: 'daemon rt/s', right: true },
        { title: 'p50', right: true },
        { title: 'p99', right: true },
        { title: 'raw rt/s', right: true },
        { title: 'p50', right: true },
        { title: 'p99', right: true },
        { title: 'daemon/raw rt/s', right: true },
        { title: 'p50', right: true },
        { title: 'p99', right: true },
      ],
      rows,
    ),
  );
  console.log('');
  console.log('rt/s: round trips per second over all connections, one request in flight per connection.');
  console.log('daemon/raw: the daemon\'s figure over the raw echo server\'s (below 1x for rt/s, above 1x for latency is the daemon\'s cost).');
}

const res = new Resources();
let interrupted = false;
const onSignal = (signal: NodeJS.Signals) => {
  if (interrupted) return;
  interrupted = true;
  console.error(`\n${signal}: stopping, cleaning up`);
  res.abort.abort();
  void res.cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

main(res)
  .catch((err: unknown) => {
    if (!interrupted) {
      console.error(`bench/protocol: ${(err as Error)?.stack ?? String(err)}`);
      process.exitCode = 1;
    }
  })
  .finally(() => (interrupted ? undefined : res.cleanup()));
