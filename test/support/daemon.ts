// Start the real daemon (bin/warden-server) as a separate process on a temp
// socket and depot, for integration tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WardenClient } from '../../src/client/client.ts';
import { SERVER_BIN, freePort, waitUntilServing, yamlSection, type NotServingError } from './daemon-process.ts';

export { CLIENT_BIN, ROOT, SERVER_BIN, freePort } from './daemon-process.ts';

export interface DaemonOptions {
  backend?: 'insecure' | 'linux';
  /** Extra YAML appended under `server:` (indented two spaces by the caller). */
  server?: Record<string, unknown>;
  network?: Record<string, unknown>;
  port?: Record<string, unknown>;
  user?: Record<string, unknown>;
  /** Extra keys under `health_check_server:` (after its port). */
  health?: Record<string, unknown>;
  /** Reuse this folder (depot, socket) instead of a new one: a restart on the same depot. */
  dir?: string;
  /** The warden-server to start (another build's, e.g. an old one for an upgrade); default this tree's. */
  bin?: string;
  /** How long the daemon may take to answer Ping before it is killed and the start fails (default 30 s). */
  startTimeoutMs?: number;
}

/** A daemon that did not start (and was killed); dir is its folder. */
export class DaemonStartError extends Error {
  override name = 'DaemonStartError';
  readonly dir: string;
  constructor(message: string, dir: string, options?: ErrorOptions) {
    super(message, options);
    this.dir = dir;
  }
}

export class TestDaemon {
  readonly dir: string;
  readonly socket: string;
  readonly depot: string;
  readonly configPath: string;
  readonly logPath: string;
  proc: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private startTimeoutMs = 30_000;

  private constructor(dir: string) {
    this.dir = dir;
    this.socket = join(dir, 'warden.sock');
    this.depot = join(dir, 'depot');
    this.configPath = join(dir, 'warden.yml');
    this.logPath = join(dir, 'warden.log');
  }

  /**
   * Starts a daemon. A start that fails (exit, or no answer in time) kills it and,
   * for a folder made here with the insecure backend, removes the folder; the Linux
   * harness (LinuxDaemon) cleans what a Linux daemon made on the host.
   */
  static async start(opts: DaemonOptions = {}): Promise<TestDaemon> {
    const d = await TestDaemon.prepare(opts);
    try {
      await d.launch(opts.bin);
    } catch (err) {
      if (!opts.dir && opts.backend !== 'linux') rmSync(d.dir, { recursive: true, force: true });
      throw err;
    }
    return d;
  }

  /** Writes the config (in a new folder unless opts.dir); launch() starts the daemon. */
  static async prepare(opts: DaemonOptions = {}): Promise<TestDaemon> {
    const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'warden-test-'));
    const d = new TestDaemon(dir);
    if (opts.startTimeoutMs !== undefined) d.startTimeoutMs = opts.startTimeoutMs;
    if (!opts.dir || !existsSync(d.configPath)) {
      const server = {
        unix_domain_path: d.socket,
        unix_domain_permissions: 0o777,
        container_klass: opts.backend === 'linux' ? 'Warden::Container::Linux' : 'Warden::Container::Insecure',
        container_depot_path: d.depot,
        container_rootfs_path: join(dir, 'rootfs'),
        container_grace_time: null,
        pidfile: join(dir, 'warden.pid'),
        worker_threads: 2,
        ...opts.server,
      };
      writeFileSync(
        d.configPath,
        yamlSection('server', server) +
          yamlSection('health_check_server', { port: await freePort(), ...opts.health }) +
          yamlSection('logging', { level: 'debug', file: d.logPath }) +
          (opts.network ? yamlSection('network', opts.network) : '') +
          (opts.port ? yamlSection('port', opts.port) : '') +
          (opts.user ? yamlSection('user', opts.user) : ''),
      );
    }
    return d;
  }

  /** Start the daemon (again); `bin` runs another build's warden-server on this config and depot (an upgrade). */
  async launch(bin: string = SERVER_BIN): Promise<void> {
    // A process group of its own, as under a supervisor: tests may signal the whole group.
    const recoveriesBefore = this.recoveriesLogged();
    const startedAt = Date.now();
    this.proc = spawn(bin, ['--config', this.configPath], { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    const proc = this.proc;
    this.exited = new Promise((res) => proc.once('exit', (code, signal) => res(signal ? null : code)));
    try {
      await waitUntilServing(proc, this.socket, { timeoutMs: this.startTimeoutMs });
      // The daemon serves before recovery has destroyed what it did not adopt and
      // swept the host; tests look at the host after a start, so wait for that too.
      if (recoveriesBefore !== undefined) {
        while (this.recoveriesLogged()! <= recoveriesBefore) {
          if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`warden-server exited with ${proc.exitCode ?? proc.signalCode} before its recovery was done`);
          if (Date.now() - startedAt > this.startTimeoutMs) throw new Error(`warden-server logged no 'recovery done' within ${this.startTimeoutMs} ms`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    } catch (err) {
      // Exited, or hung (or listening elsewhere): never leave it behind.
      await this.killGroup();
      const what = (err as NotServingError).reason === 'exited' ? (err as Error).message : `${(err as Error).message} (killed)`;
      throw new DaemonStartError(`${what.replace('warden-server', `warden-server in ${this.dir}`)}; log:\n${this.log()}`, this.dir, { cause: err });
    }
  }

  /** SIGKILL to the daemon's process group (its own, see launch) and wait for its exit. */
  async killGroup(): Promise<void> {
    const proc = this.proc;
    if (!proc?.pid) return;
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      /* the group is gone */
    }
    await this.exited;
  }

  /** health_check_server.port from the written config. */
  get healthPort(): number {
    const m = /^health_check_server:\n {2}port: (\d+)$/m.exec(readFileSync(this.configPath, 'utf8'));
    if (!m) throw new Error(`no health_check_server.port in ${this.configPath}`);
    return Number(m[1]);
  }

  get pid(): number {
    return this.proc!.pid!;
  }

  /**
   * How many 'recovery done' lines the log holds; undefined when the config does
   * not log info lines to logPath (then starts do not wait for the line).
   */
  private recoveriesLogged(): number | undefined {
    let config: string;
    try {
      config = readFileSync(this.configPath, 'utf8');
    } catch {
      return undefined;
    }
    const logging = /^logging:\n((?: {2}.*\n?)*)/m.exec(config)?.[1] ?? '';
    const toFile = logging.includes(`file: ${JSON.stringify(this.logPath)}`);
    const level = /^ {2}level: "?([a-z0-9]+)"?$/m.exec(logging)?.[1];
    if (!toFile || !level || !/^(debug\d?|info)$/.test(level)) return undefined;
    return this.log().split('"msg":"recovery done"').length - 1;
  }

  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  client(): Promise<WardenClient> {
    return WardenClient.connect(this.socket);
  }

  /** Send a signal and wait for the exit code (null when killed by a signal). */
  async signal(sig: NodeJS.Signals): Promise<number | null> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc?.exitCode ?? null;
    this.proc.kill(sig);
    return this.exited!;
  }

  /** Signal the daemon's whole process group, as supervisors do, and wait for the exit. */
  async signalGroup(sig: NodeJS.Signals): Promise<number | null> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc?.exitCode ?? null;
    process.kill(-this.pid, sig);
    return this.exited!;
  }

  /** Drain (SIGUSR2) and wait for the exit. */
  drain(): Promise<number | null> {
    return this.signal('SIGUSR2');
  }

  kill9(): Promise<number | null> {
    return this.signal('SIGKILL');
  }

  /** Destroy every container, stop the daemon, remove the folder. */
  async cleanup(): Promise<void> {
    try {
      if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
        const c = await this.client();
        const { handles = [] } = await c.list();
        for (const handle of handles) await c.destroy({ handle }).catch(() => {});
        await c.close();
      }
    } catch {
      /* daemon already gone */
    }
    await this.signal('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
