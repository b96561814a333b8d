// Command-line options of bin/warden-bench.
import { parseArgs } from 'node:util';

export const SCENARIOS = ['protocol', 'lifecycle', 'jobs', 'staging', 'density', 'restart', 'chaos'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const USAGE = `usage: warden-bench [SCENARIO...] [options]

Load-tests a Warden daemon and shows where the time goes. Scenarios (default: all
but chaos, in this order): ${SCENARIOS.join(', ')}. restart drains the daemon
(SIGUSR2) with containers and running jobs, starts the next one on the same depot and
times until it serves and until every job is reachable (the harness's own daemon
only: left out of the default with --socket). chaos kills the daemon with SIGKILL
again and again under load, restarts it, and checks that no container or job was
lost and nothing leaked (the harness's own daemon only; name it to run it).

Target
  --socket PATH            an existing daemon (its pid and config are found through /proc)
  --backend insecure|linux the daemon to start when no --socket is given (default insecure)
  --rootfs PATH            Linux rootfs for the own daemon (default /tmp/warden-test-rootfs,
                           built by scripts/build-rootfs --test when missing)
  --worker-threads N       the own daemon's server.worker_threads (default: its own default)
  --log-level LEVEL        the own daemon's logging.level (default info)
  --trace                  record every process the own daemon spawns and every fs call it
                           makes (bench/harness/trace/spawn-trace.ts, preloaded) and report,
                           per phase, where the time of a request goes
  --daemon-env K=V         an environment variable for the own daemon (repeatable), for
                           experiments such as UV_THREADPOOL_SIZE=16
  --cpu-prof               run the own daemon with V8's --cpu-prof and report its self time
                           by file and function (main thread; workers when they exit cleanly)
  --perf                   record every CPU with \`perf record -a\` (package linux-perf) and
                           report, per phase, the CPU of one operation by process: the
                           daemon's tree (threads, spawner, forks before their exec, host
                           commands, container processes) against the raw baseline's

Sizes
  --containers N           density: live containers (default 10000 insecure, 1000 linux)
  --concurrency LIST       client connections: lifecycle and protocol run at each value
                           (default 1,4,16,64); density and staging use the last one
                           (defaults 16 and 32)
  --duration S             seconds per lifecycle and protocol level (default 10 and 3)
  --count N                lifecycle: cycles per level instead of a duration
  --stagings N             staging: stagings in all (default 2 per concurrent staging)
  --stream-bytes BYTES     staging: output each staging script writes (default 1 MiB)
  --app-bytes BYTES        staging: size of the directory copied in (default 1 MiB, 16 files)
  --run-count N            jobs: Run of \`true\` (default 200)
  --big-stream-bytes BYTES jobs: stdout of the one large job (default 100 MiB)
  --concurrent-jobs N      jobs: concurrent streamed jobs (default 100)
  --job-bytes BYTES        jobs: stdout of each concurrent job (default 1 MiB)
  --link-jobs N            jobs: finished jobs linked (default 1000)
  --restart-containers N   restart: containers, each running one job (default 100; --quick 3)
  --restart-rounds N       restart: drains and restarts (default 3; --quick 1; 0: none, a
                           control for the check that every job survived)
  --kills N                chaos: SIGKILLs of the daemon (default 100; --quick 3)
  --chaos-seconds S        chaos: at most this long (default 3600; --quick 120)
  --no-baselines           skip the baselines (development only: no ratios)

Output
  --out DIR                results.json, report.html, plots/*.svg, summary.md
                           (default bench/results/<time>-<backend>)
  --quick                  smoke mode: a few containers, a few seconds, every scenario
  -h, --help
`;

export interface BenchOptions {
  scenarios: ScenarioName[];
  socket: string | undefined;
  backend: 'insecure' | 'linux' | undefined;
  rootfs: string | undefined;
  workerThreads: number | undefined;
  logLevel: string;
  traceSpawns: boolean;
  cpuProf: boolean;
  perf: boolean;
  daemonEnv: Record<string, string>;
  containers: number;
  /** --containers was given (else the default follows the backend, known once the target is). */
  containersExplicit: boolean;
  levels: number[];
  densityConcurrency: number;
  stagingConcurrency: number;
  durationS: number;
  protocolDurationS: number;
  count: number | undefined;
  stagings: number;
  streamBytes: number;
  appBytes: number;
  runCount: number;
  bigStreamBytes: number;
  concurrentJobs: number;
  jobBytes: number;
  linkJobs: number;
  restartContainers: number;
  restartRounds: number;
  kills: number;
  chaosSeconds: number;
  baselines: boolean;
  out: string | undefined;
  quick: boolean;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

function bytes(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const m = /^(\d+(?:\.\d+)?)\s*(k|ki|kib|m|mi|mib|g|gi|gib|b)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`--${name} takes a size like 1048576, 512KiB or 100MiB, got ${JSON.stringify(text)}`);
  const unit = (m[2] ?? 'b').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.round(Number(m[1]) * mult);
}

function count(name: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} takes an integer >= ${min}, got ${JSON.stringify(text)}`);
  return n;
}

function seconds(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text.replace(/s$/, ''));
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} takes a positive number of seconds, got ${JSON.stringify(text)}`);
  return n;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      socket: { type: 'string' },
      backend: { type: 'string' },
      rootfs: { type: 'string' },
      'worker-threads': { type: 'string' },
      'log-level': { type: 'string' },
      trace: { type: 'boolean' },
      'cpu-prof': { type: 'boolean' },
      perf: { type: 'boolean' },
      'daemon-env': { type: 'string', multiple: true },
      containers: { type: 'string' },
      concurrency: { type: 'string' },
      duration: { type: 'string' },
      count: { type: 'string' },
      stagings: { type: 'string' },
      'stream-bytes': { type: 'string' },
      'app-bytes': { type: 'string' },
      'run-count': { type: 'string' },
      'big-stream-bytes': { type: 'string' },
      'concurrent-jobs': { type: 'string' },
      'job-bytes': { type: 'string' },
      'link-jobs': { type: 'string' },
      'restart-containers': { type: 'string' },
      'restart-rounds': { type: 'string' },
      kills: { type: 'string' },
      'chaos-seconds': { type: 'string' },
      'no-baselines': { type: 'boolean' },
      out: { type: 'string' },
      quick: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const scenarios = positionals.flatMap((p) => p.split(',')).filter(Boolean);
  for (const s of scenarios) {
    if (!(SCENARIOS as readonly string[]).includes(s)) throw new UsageError(`unknown scenario ${JSON.stringify(s)}: choose from ${SCENARIOS.join(', ')}`);
  }
  const backend = values.backend;
  if (backend !== undefined && backend !== 'insecure' && backend !== 'linux') {
    throw new UsageError(`--backend takes insecure or linux, got ${JSON.stringify(backend)}`);
  }
  const quick = !!values.quick;
  const linux = backend === 'linux';
  let levels: number[] | undefined;
  if (values.concurrency !== undefined) {
    levels = values.concurrency.split(',').map((v) => count('concurrency', v.trim(), 1));
    if (levels.length === 0) throw new UsageError('--concurrency needs at least one value');
  }
  const last = levels?.at(-1);
  const stagingConcurrency = last ?? (quick ? 2 : 32);
  const o: BenchOptions = {
    // By default all but chaos, and but restart on a daemon the harness did not start.
    scenarios: scenarios.length
      ? SCENARIOS.filter((s) => scenarios.includes(s))
      : SCENARIOS.filter((s) => s !== 'chaos' && !(s === 'restart' && values.socket !== undefined)),
    socket: values.socket,
    backend,
    rootfs: values.rootfs,
    workerThreads: values['worker-threads'] === undefined ? undefined : count('worker-threads', values['worker-threads'], 1),
    logLevel: values['log-level'] ?? 'info',
    traceSpawns: !!values.trace,
    cpuProf: !!values['cpu-prof'],
    perf: !!values.perf,
    daemonEnv: Object.fromEntries(
      (values['daemon-env'] ?? []).map((kv) => {
        const at = kv.indexOf('=');
        if (at < 1) throw new UsageError(`--daemon-env takes NAME=VALUE, got ${JSON.stringify(kv)}`);
        return [kv.slice(0, at), kv.slice(at + 1)];
      }),
    ),
    containers: count('containers', values.containers, quick ? 8 : linux ? 1000 : 10000),
    containersExplicit: values.containers !== undefined,
    levels: levels ?? (quick ? [1, 2] : [1, 4, 16, 64]),
    densityConcurrency: last ?? (quick ? 2 : 16),
    stagingConcurrency,
    durationS: seconds('duration', values.duration, quick ? 0.3 : 10),
    protocolDurationS: seconds('duration', values.duration, quick ? 0.2 : 3),
    count: values.count === undefined ? undefined : count('count', values.count, 1),
    stagings: count('stagings', values.stagings, quick ? stagingConcurrency : stagingConcurrency * 2),
    streamBytes: bytes('stream-bytes', values['stream-bytes'], quick ? 64 * 1024 : 1024 * 1024),
    appBytes: bytes('app-bytes', values['app-bytes'], quick ? 64 * 1024 : 1024 * 1024),
    runCount: count('run-count', values['run-count'], quick ? 5 : 200),
    bigStreamBytes: bytes('big-stream-bytes', values['big-stream-bytes'], quick ? 2 * 1024 * 1024 : 100 * 1024 * 1024),
    concurrentJobs: count('concurrent-jobs', values['concurrent-jobs'], quick ? 4 : 100),
    jobBytes: bytes('job-bytes', values['job-bytes'], quick ? 64 * 1024 : 1024 * 1024),
    linkJobs: count('link-jobs', values['link-jobs'], quick ? 10 : 1000),
    restartContainers: count('restart-containers', values['restart-containers'], quick ? 3 : 100),
    // 0: no restart at all, the same jobs Stopped and Linked (a control for the check).
    restartRounds: count('restart-rounds', values['restart-rounds'], quick ? 1 : 3, 0),
    kills: count('kills', values.kills, quick ? 3 : 100),
    chaosSeconds: seconds('chaos-seconds', values['chaos-seconds'], quick ? 120 : 3600),
    baselines: !values['no-baselines'],
    out: values.out,
    quick,
  };
  if (o.socket && (o.rootfs || o.workerThreads || o.traceSpawns || o.cpuProf || values['log-level'] || values['daemon-env'])) {
    throw new UsageError('--rootfs, --worker-threads, --log-level, --trace, --cpu-prof and --daemon-env apply to the daemon the harness starts, not to --socket');
  }
  return o;
}
