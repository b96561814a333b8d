// The daemon under test: either one the harness starts itself (bin/warden-server
// with a temporary YAML config whose pools are sized for the run), or an existing
// one reached through --socket (its pid, and its config when its command line
// names one, are found through /proc).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WardenClient } from '../../src/client/client.ts';
import { loadConfig } from '../../src/config/config.ts';
import type { WardenConfig } from '../../src/config/types.ts';
import { hostSettings, type LinuxHostSettings } from '../../src/backends/linux/settings.ts';
import { cmdline, socketOwner } from './proc.ts';
import { SERVER_BIN, freePort, waitUntilServing, yamlSection } from '../../test/support/daemon-process.ts';
import { sleep } from './util.ts';

export { ROOT, SERVER_BIN, freePort } from '../../test/support/daemon-process.ts';
const TRACE_PRELOAD = join(import.meta.dirname, 'trace', 'spawn-trace.ts');

export type BackendName = 'insecure' | 'linux';

/** The address range every container of a bench run gets its /30 from; the egress guard covers it. */
export const BENCH_RANGE = '10.240.0.0/16';
/** The daemon's pool starts here; raw baselines use /30s from RAW_NET_START up (the top 1,024 of the range). */
export const POOL_START = '10.240.0.0';
export const RAW_NET_START = '10.240.240.0';
/** Networks the daemon's pool may use below RAW_NET_START. */
export const MAX_POOL_SIZE = (240 * 256) / 4;

export interface Target {
  socket: string;
  pid: number | undefined;
  backend: BackendName;
  /** The daemon's config when known (own daemon, or read from the command line of an existing one). */
  config: WardenConfig | undefined;
  /** Linux backend: runtime root, cgroup parent, depot... as the daemon derives them. */
  settings: LinuxHostSettings | undefined;
  own: OwnDaemon | undefined;
}

export interface OwnDaemonOptions {
  backend: BackendName;
  /** Networks (/30s) and uids the pools hold: the most containers alive at once, plus what release_delay holds back. */
  poolSize: number;
  /** Host ports for NetIn. */
  portStart: number;
  portPoolSize: number;
  uidStart: number;
  rootfs: string | undefined;
  workerThreads: number | undefined;
  logLevel: string;
  /** job_output_limit: at least the largest stream the run asks for. */
  jobOutputLimit: number;
  /** Record every process the daemon spawns (bench/harness/trace/spawn-trace.ts) into this file. */
  traceFile?: string;
  /** Write V8 CPU profiles of the daemon's threads into this folder. */
  cpuProfDir?: string;
  /** Extra environment for the daemon (experiments). */
  env?: Record<string, string>;
}

export class OwnDaemon {
  readonly dir: string;
  readonly socket: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly stdioPath: string;
  proc: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;

  private constructor(dir: string) {
    this.dir = dir;
    this.socket = join(dir, 'warden.sock');
    this.configPath = join(dir, 'warden.yml');
    this.logPath = join(dir, 'warden.log');
    this.stdioPath = join(dir, 'stdio.log');
  }

  /** Writes the config; the caller records the daemon before starting it, so a Ctrl-C during the start still cleans up. */
  static async prepare(o: OwnDaemonOptions): Promise<OwnDaemon> {
    const dir = mkdtempSync(join(tmpdir(), 'warden-bench-'));
    const d = new OwnDaemon(dir);
    const server: Record<string, unknown> = {
      unix_domain_path: d.socket,
      unix_domain_permissions: 0o777,
      container_klass: o.backend === 'linux' ? 'Warden::Container::Linux' : 'Warden::Container::Insecure',
      container_depot_path: join(dir, 'depot'),
      container_rootfs_path: o.rootfs ?? join(dir, 'rootfs'),
      container_grace_time: null,
      job_output_limit: o.jobOutputLimit,
      pidfile: join(dir, 'warden.pid'),
    };
    if (o.workerThreads) server.worker_threads = o.workerThreads;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      d.configPath,
      yamlSection('server', server) +
        yamlSection('health_check_server', { port: await freePort() }) +
        yamlSection('logging', { level: o.logLevel, file: d.logPath }) +
        yamlSection('network', { pool_start_address: POOL_START, pool_size: o.poolSize }) +
        yamlSection('port', { pool_start_port: o.portStart, pool_size: o.portPoolSize }) +
        yamlSection('user', { pool_start_uid: o.uidStart, pool_size: o.poolSize }),
    );
    d.traceFile = o.traceFile;
    d.cpuProfDir = o.cpuProfDir;
    d.extraEnv = o.env ?? {};
    return d;
  }

  traceFile: string | undefined;
  cpuProfDir: string | undefined;
  extraEnv: Record<string, string> = {};

  /** performance.now() when the daemon's process was last seen to exit. */
  exitedAt = NaN;

  /**
   * Starts bin/warden-server on the config (again after a stop or a drain: same
   * binary, config, depot, trace and profile options) and waits until it answers a
   * Ping, trying every pollMs. Resolves with when it was spawned and when it answered.
   */
  async launch(o: { pollMs?: number } = {}): Promise<{ spawnedAt: number; servingAt: number }> {
    const pollMs = o.pollMs ?? 50;
    const out = openSync(this.stdioPath, 'a');
    const env = { ...process.env, ...this.extraEnv };
    if (this.traceFile) {
      // Preloaded in the main thread and in every worker (workers inherit NODE_OPTIONS).
      env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${TRACE_PRELOAD}`.trim();
      env.WARDEN_BENCH_TRACE = this.traceFile;
    }
    if (this.cpuProfDir) env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-interval=4000 --cpu-prof-dir=${this.cpuProfDir}`.trim();
    // A process group of its own: a Ctrl-C on the terminal reaches the harness only,
    // which then destroys what it created before it stops the daemon.
    const spawnedAt = performance.now();
    this.proc = spawn(SERVER_BIN, ['--config', this.configPath], { stdio: ['ignore', out, out], detached: true, env });
    closeSync(out);
    const proc = this.proc;
    this.exited = new Promise((res) =>
      proc.once('exit', (code, signal) => {
        this.exitedAt = performance.now();
        res(signal ? null : code);
      }),
    );
    try {
      const servingAt = await waitUntilServing(proc, this.socket, { timeoutMs: 60_000, pollMs });
      return { spawnedAt, servingAt };
    } catch (err) {
      throw new Error(`${(err as Error).message}:\n${this.tail()}`, { cause: err });
    }
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The last lines of the daemon's log and stdio, for error messages. */
  tail(lines = 20): string {
    const read = (p: string) => {
      try {
        return readFileSync(p, 'utf8');
      } catch {
        return '';
      }
    };
    return [read(this.stdioPath), read(this.logPath)].join('\n').trim().split('\n').slice(-lines).join('\n');
  }

  /** SIGTERM (the daemon drains) and wait; SIGKILL after timeoutMs. Resolves with the exit code (null: killed). */
  async stop(timeoutMs = 60_000): Promise<number | null> {
    if (!this.proc) return 0;
    if (!this.running) return this.proc.exitCode ?? null;
    this.proc!.kill('SIGTERM');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited!;
    } finally {
      clearTimeout(t);
    }
  }

  /**
   * A drain as a supervisor's upgrade sends it (SIGUSR2: containers and jobs stay for
   * the next daemon) and its exit. Resolves with the exit code (null: killed after
   * timeoutMs), when the signal was sent and when the process exited (performance.now()).
   */
  async drain(timeoutMs = 60_000): Promise<{ code: number | null; signalledAt: number; exitedAt: number }> {
    if (!this.running) throw new Error('warden-server is not running: nothing to drain');
    const signalledAt = performance.now();
    this.proc!.kill('SIGUSR2');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), timeoutMs);
    try {
      const code = await this.exited!;
      return { code, signalledAt, exitedAt: this.exitedAt };
    } finally {
      clearTimeout(t);
    }
  }

  /** SIGKILL (no drain) and wait for the exit. */
  async kill9(): Promise<void> {
    if (!this.running) return;
    this.proc!.kill('SIGKILL');
    await this.exited;
  }

  async removeDir(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The target for an existing daemon: its pid from the socket, its config from its command line when it has one. */
export async function attachDaemon(socket: string, backendHint: BackendName | undefined): Promise<Target> {
  const c = await WardenClient.connect(socket);
  await c.ping();
  await c.close();
  const pid = await socketOwner(resolve(socket));
  let config: WardenConfig | undefined;
  if (pid) {
    const args = await cmdline(pid);
    const at = args.findIndex((a) => a === '--config' || a === '-c');
    const path = at >= 0 ? args[at + 1] : args.find((a) => a.startsWith('--config='))?.slice('--config='.length);
    if (path) config = await loadConfig(resolve(`/proc/${pid}/cwd`, path)).catch(() => undefined);
  }
  const backend: BackendName =
    backendHint ?? (config?.server.container_klass === 'Warden::Container::Linux' ? 'linux' : 'insecure');
  return {
    socket,
    pid,
    backend,
    config,
    settings: backend === 'linux' && config ? hostSettings(config) : undefined,
    own: undefined,
  };
}

export async function ownTarget(d: OwnDaemon, backend: BackendName): Promise<Target> {
  const config = await loadConfig(d.configPath);
  return {
    socket: d.socket,
    pid: d.pid,
    backend,
    config,
    settings: backend === 'linux' ? hostSettings(config) : undefined,
    own: d,
  };
}
