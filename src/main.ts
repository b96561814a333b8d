// bin/warden-server: `warden-server --config FILE` runs the daemon in the foreground;
// `warden-server --check-config FILE` validates a config and prints it in full.
// Only what the first steps need is imported here: the daemon starts its spawner
// before it loads the rest (config parsing, the backend, the server).
import { parseArgs } from 'node:util';
import type { Daemon } from './daemon.ts';
import { removeStaleSharedSpawners, startSharedSpawner } from './host/spawner.ts';
import { describeError } from './model/errors.ts';

const usage = `usage: warden-server --config FILE       run the daemon in the foreground
       warden-server --check-config FILE validate FILE, print the effective config (defaults filled in); exit 0 or 1
       warden-server --cleanup --config FILE [--destroy-containers]
                                         remove everything of FILE's config from the host (its daemon must be stopped);
                                         refused while it has containers unless --destroy-containers`;

/** Validates the config file; prints the effective config on stdout and any warnings on stderr. */
async function checkConfig(file: string): Promise<number> {
  const [{ ConfigError, loadConfig }, { formatConfig }] = await Promise.all([import('./config/config.ts'), import('./config/format.ts')]);
  try {
    const config = await loadConfig(file);
    process.stdout.write(`# ${file}: valid; the effective config, defaults filled in:\n${formatConfig(config)}`);
    for (const w of config.warnings ?? []) process.stderr.write(`warden-server: warning: ${w}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`warden-server: invalid config: ${err instanceof ConfigError ? err.message : describeError(err)}\n`);
    return 1;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', short: 'c' },
      'check-config': { type: 'string' },
      cleanup: { type: 'boolean' },
      'destroy-containers': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  if (values['check-config'] !== undefined) {
    process.exitCode = await checkConfig(values['check-config']);
    return;
  }
  if (!values.config) throw new Error(`--config is required\n${usage}`);
  // The host-command spawner first: its Node start (~100 ms of CPU) overlaps the
  // loading of the daemon on another core, and the workers find it ready at their
  // first command (at a restart, the host setup's).
  const spawner = startSharedSpawner();
  // The worker pool's module loads meanwhile: the workers start as soon as the config is read.
  const poolModule = values.cleanup ? undefined : import('./workers/pool.ts');
  poolModule?.catch(() => {}); // a failure shows where it is awaited
  const { loadConfig } = await import('./config/config.ts');
  if (values.cleanup) {
    const { cleanupConfig } = await import('./backends/linux/host/cleanup.ts');
    const done = await cleanupConfig(await loadConfig(values.config), { destroyContainers: !!values['destroy-containers'] });
    for (const line of done) process.stdout.write(`warden-server: ${line}\n`);
    return;
  }

  // SIGHUP (logrotate's postrotate, `systemctl reload`) must not kill a daemon that is
  // still starting. One that comes during the start is applied once the daemon is
  // up: the socket answers a little before startDaemon returns, and a supervisor
  // (or logrotate) may signal as soon as it does.
  let daemon: Daemon | undefined;
  let reloadPending = false;
  const reload = () => {
    if (!daemon) {
      reloadPending = true;
      return;
    }
    daemon.reload().catch((err) => daemon?.log.error({ err: describeError(err) }, 'SIGHUP handling failed'));
  };
  process.on('SIGHUP', reload);
  // The drain signals are handled from the very start: SIGUSR2's default action
  // kills the process, and a supervisor may send it as soon as the socket answers
  // (before startDaemon has returned). One that comes during the start drains
  // right after it.
  let drainSignal: string | undefined;
  const exit = (signal: string) => {
    if (!daemon) {
      // A second one during the start (Ctrl-C twice) gives up at once.
      if (drainSignal !== undefined) process.exit(1);
      drainSignal = signal;
      return;
    }
    daemon
      .shutdown(signal)
      .then(() => process.exit(0))
      .catch((err) => {
        console.error(`warden-server: shutdown failed: ${describeError(err)}`);
        process.exit(1);
      });
  };
  // SIGUSR2 is the original's drain signal; TERM and INT drain the same way.
  for (const s of ['SIGUSR2', 'SIGTERM', 'SIGINT'] as const) process.on(s, () => exit(s));
  // The worker threads boot (on other cores) while this thread loads the rest of
  // the daemon: a restart is that much shorter.
  const config = await loadConfig(values.config);
  const { WorkerPool } = await poolModule!;
  const backend = config.server.container_klass === 'Warden::Container::Linux' ? 'linux' : 'insecure';
  const pool = new WorkerPool({ threads: config.server.worker_threads, preload: ['state', 'job', backend], ...(spawner ? { spawner } : {}) });
  const { startDaemon } = await import('./daemon.ts');
  daemon = await startDaemon(values.config, { config, pool });
  if (drainSignal !== undefined) exit(drainSignal);
  else if (reloadPending) reload();
  process.on('SIGPIPE', () => {});
  // What daemons killed together with their spawner left in the temporary directory.
  void removeStaleSharedSpawners().then((dirs) => {
    if (dirs.length) daemon?.log.info({ dirs }, 'removed the sockets of spawners whose daemon is gone');
  });
}

main().catch((err) => {
  console.error(`warden-server: ${describeError(err)}`);
  process.exit(1);
});
