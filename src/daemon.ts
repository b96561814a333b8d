// The daemon: wires config, logging, the worker pool, the backend and the
// service together; recovers the depot; listens; drains on a signal.
import { readFileSync } from 'node:fs';
import { rm, unlink, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Backend } from './backends/backend.ts';
import { InsecureBackend } from './backends/insecure/insecure-backend.ts';
import { loadConfig } from './config/config.ts';
import { pinoLevel } from './config/log-level.ts';
import type { WardenConfig } from './config/types.ts';
import { describeError } from './model/errors.ts';
import { parseHardLimits } from './jobs/rlimits.ts';
import type { DaemonMetrics } from './metrics/metrics.ts';
import { DeferredObserver } from './metrics/deferred-observer.ts';
import { createPools } from './pools/pools.ts';
import { startHealthCheck, startHealthSocket, type HealthRoutes } from './server/health.ts';
import { Listener } from './server/listener.ts';
import { recover, scanDepot } from './orchestrator/recovery.ts';
import { WardenService } from './orchestrator/warden-service.ts';
import { WorkerPool } from './workers/pool.ts';
import { stringify64 } from './protocol/json64.ts';

export interface Daemon {
  config: WardenConfig;
  service: WardenService;
  log: Logger;
  /** The Prometheus metrics, loaded just after the daemon began to serve. */
  metrics(): Promise<DaemonMetrics>;
  /** Drain and stop: containers and jobs keep running for the next daemon. */
  shutdown(reason: string): Promise<void>;
  /** SIGHUP: reopen logging.file (after logrotate moved it) and re-read logging.level. */
  reload(): Promise<void>;
}

/** This build's version (package.json), for logs and warden_build_info. */
export const VERSION: string = (() => {
  try {
    return String(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
})();

type Destination = DestinationStream & { reopen?(): void; flush?(cb?: (err?: Error) => void): void };

export function createLogger(config: WardenConfig): { log: Logger; destination: Destination } {
  const destination = config.logging.file
    ? pino.destination({ dest: config.logging.file, mkdir: true, sync: false })
    : pino.destination({ dest: 1, sync: false });
  const log = pino({ level: pinoLevel(config.logging.level), base: { pid: process.pid } }, destination);
  return { log, destination };
}

/** Keys whose values differ between two configs (a.b.c), to say what a SIGHUP does not apply. */
function changedKeys(a: unknown, b: unknown, prefix = ''): string[] {
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) =>
      changedKeys((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], prefix ? `${prefix}.${k}` : k),
    );
  }
  return stringify64(a) === stringify64(b) ? [] : [prefix];
}

async function createBackend(config: WardenConfig, pool: WorkerPool): Promise<Backend> {
  if (config.server.container_klass === 'Warden::Container::Linux') {
    const { LinuxBackend } = await import('./backends/linux/linux-backend.ts');
    return new LinuxBackend(config, pool);
  }
  return new InsecureBackend(pool);
}

/** What main() made before loading the daemon's modules (see startEarly). */
export interface EarlyStart {
  config: WardenConfig;
  pool: WorkerPool;
}

export async function startDaemon(configPath: string, early?: EarlyStart): Promise<Daemon> {
  // Start-up phases, in the 'warden started' line: clients wait meanwhile.
  const startMs: Record<string, number> = { boot: Math.round(performance.now()) };
  let startLap = performance.now();
  const lapStart = (phase: string) => {
    startMs[phase] = Math.round(performance.now() - startLap);
    startLap = performance.now();
  };
  const config = early?.config ?? (await loadConfig(configPath));
  const { log, destination } = createLogger(config);
  for (const w of config.warnings ?? []) log.warn({ config: configPath }, w);
  // Read once at start: what the daemon may grant jobs (no CAP_SYS_RESOURCE here).
  const hardLimits = parseHardLimits(readFileSync('/proc/self/limits', 'utf8'));
  const pool = early?.pool ?? new WorkerPool({ threads: config.server.worker_threads });
  const backend = await createBackend(config, pool);
  const service = new WardenService({
    config,
    pool,
    backend,
    pools: createPools(config),
    logger: log,
    hardLimits,
    jobEnv: { LANG: process.env.LANG ?? 'en_US.UTF-8', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
  });

  let health: Server | undefined;
  let healthSocket: Server | undefined;
  let draining = false;
  const listener = new Listener(service, log, {
    path: config.server.unix_domain_path,
    permissions: config.server.unix_domain_permissions,
    maxFrameBytes: config.server.max_frame_bytes,
    maxBufferedBytes: config.server.max_buffered_bytes,
    frameIdleTimeout: config.server.frame_idle_timeout,
  });
  // The metrics load once the daemon serves (or at the first scrape, if sooner):
  // prom-client is not what a restarting daemon's clients should wait for.
  const observer = new DeferredObserver();
  service.observer = observer;
  let metricsLoading: Promise<DaemonMetrics> | undefined;
  const metrics = (): Promise<DaemonMetrics> =>
    (metricsLoading ??= import('./metrics/metrics.ts').then(({ DaemonMetrics }) => {
      const m = new DaemonMetrics({
        service,
        workers: pool,
        connections: () => listener.connectionCount,
        draining: () => draining,
        backend: backend.name,
        version: VERSION,
      });
      observer.attach(m);
      if (observer.dropped > 0) log.warn({ dropped: observer.dropped }, 'metrics: events before the metrics loaded were not counted');
      return m;
    }));
  // Recovery's destroys and sweep, which run on while the daemon serves.
  let recoveryCleanup: Promise<void> = Promise.resolve();
  try {
    lapStart('init');
    // The depot is read while the host is prepared (recover scans again if the
    // depot was mounted meanwhile).
    const scanning = scanDepot(pool, service.depot);
    scanning.catch(() => {});
    await backend.setupHost();
    lapStart('host');
    recoveryCleanup = (await recover(service, backend, pool, log, scanning)).cleanup;
    lapStart('recovery');
    await listener.listen();
    lapStart('listen');
    const routes: HealthRoutes = {
      draining: () => draining,
      metrics: async () => {
        const m = await metrics();
        return { contentType: m.contentType, body: await m.text() };
      },
      containers: (handles) => service.bulkInfo(handles),
    };
    const hc = config.health_check_server;
    if (hc.port > 0) {
      // Any local user reaches the port: /containers (handles, addresses, paths) only when asked for.
      health = await startHealthCheck(hc.port, hc.containers_on_tcp ? routes : { ...routes, containers: undefined });
    }
    if (hc.unix_domain_path) healthSocket = await startHealthSocket(hc.unix_domain_path, routes);
    if (config.server.pidfile) await writeFile(config.server.pidfile, `${process.pid}\n`);
  } catch (err) {
    await recoveryCleanup;
    await backend.close?.().catch(() => {});
    await pool.close().catch(() => {});
    log.flush?.();
    throw err;
  }
  log.info(
    {
      backend: backend.name, version: VERSION, containers: service.registry.size, max_containers: config.server.max_containers,
      // dist/main.js: the bundle (scripts/build); src/main.ts: the sources, slower to start.
      entry: process.argv[1],
      // Since the process started (Node's own start included): how long clients waited.
      startup_ms: Math.round(performance.now()),
      ms: startMs,
    },
    'warden started',
  );
  // After recovery's clean-up (the reconnecting clients' first requests come meanwhile).
  void recoveryCleanup.then(() => metrics()).catch((err) => log.error({ err: describeError(err) }, 'metrics could not be loaded'));

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      // From here /healthz answers 503, so balancers and upgrade scripts see the drain.
      draining = true;
      log.info({ reason }, 'draining');
      // How long each phase took, in the 'drained, exiting' line.
      const ms: Record<string, number> = {};
      let t = performance.now();
      const lap = (phase: string) => {
        ms[phase] = Math.round(performance.now() - t);
        t = performance.now();
      };
      await listener.drain();
      lap('connections');
      // A sweep cut short by the workers' end would only be redone next start,
      // but releasing the host under it would not be safe.
      await recoveryCleanup;
      await service.snapshotAll();
      lap('snapshots');
      // Nothing left for the next daemon to adopt: leave no pool-level state behind.
      if (service.registry.size === 0 && backend.releaseHost) {
        await backend.releaseHost().catch((err) => log.warn({ err: describeError(err) }, 'releasing host state at drain failed'));
      }
      if (config.server.pidfile) await unlink(config.server.pidfile).catch(() => {});
      service.stopping = true;
      await service.stopGuards();
      lap('watchers');
      await backend.close?.().catch((err) => log.warn({ err: describeError(err) }, 'leaving the daemon cgroup failed'));
      await pool.close();
      lap('workers');
      health?.close();
      healthSocket?.close();
      if (config.health_check_server.unix_domain_path) await rm(config.health_check_server.unix_domain_path, { force: true }).catch(() => {});
      log.info({ ms }, 'drained, exiting');
      await new Promise<void>((resolve) => log.flush(() => resolve()));
    })();
    return stopping;
  };

  let reloading: Promise<void> = Promise.resolve();
  const reload = (): Promise<void> => {
    reloading = reloading.then(async () => {
      if (config.logging.file) {
        destination.reopen?.();
        log.info({ file: config.logging.file }, 'log file reopened');
      }
      let fresh: WardenConfig;
      try {
        fresh = await loadConfig(configPath);
      } catch (err) {
        log.warn({ config: configPath, err: describeError(err) }, 'SIGHUP: config not re-read; logging.level unchanged');
        return;
      }
      const level = pinoLevel(fresh.logging.level);
      if (level !== log.level) {
        // Said at info, under whichever of the two levels shows it.
        const line = { from: log.level, to: level };
        const shownBefore = log.isLevelEnabled('info');
        if (shownBefore) log.info(line, 'log level changed');
        log.level = level;
        if (!shownBefore) log.info(line, 'log level changed');
        config.logging.level = fresh.logging.level;
      }
      const { warnings: _w, source: _s, ...before } = config;
      const { warnings: _fw, source: _fs, ...after } = fresh;
      const pending = changedKeys(before, after);
      if (pending.length > 0) log.warn({ keys: pending }, 'SIGHUP re-reads only logging.level; these changes need a restart');
    });
    return reloading;
  };
  return { config, service, log, metrics, shutdown, reload };
}
