// The daemon: wires config, logging, the worker pool, the backend and the
// service together; recovers the depot; listens; drains on a signal.
import { readFileSync } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { pino, type Logger } from 'pino';
import type { Backend } from './backends/backend.ts';
import { InsecureBackend } from './backends/insecure/insecure-backend.ts';
import { loadConfig } from './config/config.ts';
import { pinoLevel } from './config/log-level.ts';
import type { WardenConfig } from './config/types.ts';
import { describeError } from './errors.ts';
import { parseHardLimits } from './jobs/rlimits.ts';
import { createPools } from './pools/pools.ts';
import { startHealthCheck } from './server/health.ts';
import { Listener } from './server/listener.ts';
import { recover } from './service/recovery.ts';
import { WardenService } from './service/warden-service.ts';
import { WorkerPool } from './workers/pool.ts';

export interface Daemon {
  config: WardenConfig;
  service: WardenService;
  log: Logger;
  /** Drain and stop: containers and jobs keep running for the next daemon. */
  shutdown(reason: string): Promise<void>;
}

export function createLogger(config: WardenConfig): Logger {
  const dest = config.logging.file
    ? pino.destination({ dest: config.logging.file, mkdir: true, sync: false })
    : pino.destination({ dest: 1, sync: false });
  return pino({ level: pinoLevel(config.logging.level), base: { pid: process.pid } }, dest);
}

async function createBackend(config: WardenConfig, pool: WorkerPool): Promise<Backend> {
  if (config.server.container_klass === 'Warden::Container::Linux') {
    const { LinuxBackend } = await import('./backends/linux/linux-backend.ts');
    return new LinuxBackend(config, pool);
  }
  return new InsecureBackend(pool);
}

export async function startDaemon(configPath: string): Promise<Daemon> {
  const config = await loadConfig(configPath);
  const log = createLogger(config);
  for (const w of config.warnings ?? []) log.warn({ config: configPath }, w);
  // Read once at start: what the daemon may grant jobs (no CAP_SYS_RESOURCE here).
  const hardLimits = parseHardLimits(readFileSync('/proc/self/limits', 'utf8'));
  const pool = new WorkerPool({ threads: config.server.worker_threads });
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
  const listener = new Listener(service, log, {
    path: config.server.unix_domain_path,
    permissions: config.server.unix_domain_permissions,
    maxFrameBytes: config.server.max_frame_bytes,
  });
  try {
    await backend.setupHost();
    await recover(service, backend, pool, log);
    await listener.listen();
    if (config.health_check_server.port > 0) health = await startHealthCheck(config.health_check_server.port);
    if (config.server.pidfile) await writeFile(config.server.pidfile, `${process.pid}\n`);
  } catch (err) {
    await pool.close().catch(() => {});
    log.flush?.();
    throw err;
  }
  log.info({ backend: backend.name, containers: service.registry.size }, 'warden started');

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info({ reason }, 'draining');
      await listener.drain();
      health?.close();
      await service.snapshotAll();
      if (config.server.pidfile) await unlink(config.server.pidfile).catch(() => {});
      await pool.close();
      log.info('drained, exiting');
      await new Promise<void>((resolve) => log.flush(() => resolve()));
    })();
    return stopping;
  };
  return { config, service, log, shutdown };
}
