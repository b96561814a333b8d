// A real daemon (bin/warden-server, Linux backend) for daemon-level tests: the tiny
// test rootfs, a private pool (one per test file, so files run in parallel), port and
// uid ranges of its own, the egress guard for the pool, and an account of everything
// of the daemon's that is left on the host (hostLeaks) for the end of every file.
//
// A daemon owns its depot: runc root /run/warden/runc-<tag>, cgroup parent
// warden-<tag> (tag = hash of the depot path), depot on a loop-mounted btrfs image
// <dir>/warden-depot.img. Every leak check is scoped to those and to the ids of
// containers this daemon ever had (read from its log, its depot, its runtime root,
// its cgroups and the pool's addresses), so other work on the host never counts.
import { lstat, readFile, readdir, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { DaemonStartError, TestDaemon, type DaemonOptions } from '../daemon.ts';
import { WardenClient } from '../../../src/client/client.ts';
import type { CreateRequest, InfoResponse } from '../../../src/protocol/types.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { hostSettings, type LinuxHostSettings } from '../../../src/backends/linux/settings.ts';
import { containerCgroups, daemonGroupName, hierarchies, parentCgroups, type CgroupPaths } from '../../../src/backends/linux/cgroups/cgroups.ts';
import { CGROUP_LINK_ROOT } from '../../../src/backends/linux/cgroups/links.ts';
import { teardownHost } from '../../../src/backends/linux/host/setup.ts';
import { sweepHost } from '../../../src/backends/linux/container/sweep.ts';
import { mountAt } from '../../../src/backends/linux/disk/depot.ts';
import { cidrContains, parseCidr, parseIpv4 } from '../../../src/model/ipv4.ts';
import { installEgressGuard, removeEgressGuard } from '../egress-guard.ts';
import { ensureTestRootfs } from './linux-host.ts';

// The one waiting helper, shared with the insecure tests.
export { sleep, waitFor } from '../wait.ts';
import { sleep, waitFor } from '../wait.ts';

/** Whether pid is a live process (a zombie waiting for this VM's lazy pid 1 does not count). */
export async function processAlive(pid: number): Promise<boolean> {
  const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return st !== '' && !/\) [ZX] /.test(st);
}

export interface LinuxDaemonOptions {
  /** The address pool, e.g. 10.245.1.0/24: distinct per test file. */
  pool: string;
  /** Start of this file's host port range (100 ports) and uid range (pool-sized). */
  portStart: number;
  uidStart: number;
  uidPoolSize?: number;
  /** Host ports in the pool (default 100). */
  portPoolSize?: number;
  server?: Record<string, unknown>;
  network?: Record<string, unknown>;
  /** The daemon's folder, prepared by the caller (e.g. with a small depot image at <dir>/warden-depot.img). */
  dir?: string;
  /** Extra health_check_server keys (e.g. containers_on_tcp). */
  health?: Record<string, unknown>;
  /** The warden-server to start (another build's); default this tree's. */
  bin?: string;
  /** How long the start may take before the daemon is killed (default 30 s). */
  startTimeoutMs?: number;
}

/** A container as network tests use it (LinuxDaemon.box). */
export interface Box {
  handle: string;
  id: string;
  ip: string;
  hostIp: string;
  initPid: number;
}

export interface RunResult {
  exit_status: number;
  stdout: string;
  stderr: string;
  info?: InfoResponse;
}

/** A Linux daemon that did not start: killed, and what it made on the host cleaned. */
export class LinuxDaemonStartError extends DaemonStartError {
  override name = 'LinuxDaemonStartError';
  readonly settings: LinuxHostSettings;
  constructor(message: string, dir: string, settings: LinuxHostSettings, options?: ErrorOptions) {
    super(message, dir, options);
    this.settings = settings;
  }
}

export class LinuxDaemon {
  readonly daemon: TestDaemon;
  readonly settings: LinuxHostSettings;
  readonly pool: string;
  /** Ids of every container this daemon had that the tests know of (plus what hostLeaks finds). */
  readonly ids = new Set<string>();
  private readonly clients = new Set<WardenClient>();
  private cleanedUp = false;

  private constructor(daemon: TestDaemon, settings: LinuxHostSettings, pool: string) {
    this.daemon = daemon;
    this.settings = settings;
    this.pool = pool;
  }

  /** Builds the test rootfs (once per host), installs the egress guard, starts the daemon. */
  static async start(o: LinuxDaemonOptions): Promise<LinuxDaemon> {
    const rootfs = await ensureTestRootfs();
    await installEgressGuard(o.pool);
    const opts: DaemonOptions = {
      backend: 'linux',
      server: { container_rootfs_path: rootfs, worker_threads: 2, ...o.server },
      network: { pool_network: o.pool, release_delay: 0, ...o.network },
      port: { pool_start_port: o.portStart, pool_size: o.portPoolSize ?? 100 },
      user: { pool_start_uid: o.uidStart, pool_size: o.uidPoolSize ?? 64 },
      ...(o.dir === undefined ? {} : { dir: o.dir }),
      health: o.health,
      startTimeoutMs: o.startTimeoutMs,
    };
    let daemon: TestDaemon;
    try {
      daemon = await TestDaemon.prepare(opts);
    } catch (err) {
      await removeEgressGuard().catch(() => undefined);
      throw err;
    }
    const d = new LinuxDaemon(daemon, hostSettings(await loadConfig(daemon.configPath)), o.pool);
    try {
      await daemon.launch(o.bin);
    } catch (err) {
      // The daemon is killed; what it made on the host (cgroups, runc root, depot
      // mount, pool rules) goes now, not with the next run's sweep.
      const problems = await d.cleanup({ restart: false });
      const more = problems.length ? `\ncleanup after the failed start: ${problems.join('; ')}` : '';
      throw new LinuxDaemonStartError(`${(err as Error).message}${more}`, daemon.dir, d.settings, { cause: err });
    }
    return d;
  }

  get running(): boolean {
    const p = this.daemon.proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  /** A client that cleanup() closes. */
  async client(): Promise<WardenClient> {
    const c = await this.daemon.client();
    this.clients.add(c);
    return c;
  }

  async closeClients(): Promise<void> {
    await Promise.all([...this.clients].map((c) => c.close().catch(() => undefined)));
    this.clients.clear();
  }

  /** Create through the given client; records the id (from Info) for the leak check. */
  async create(client: WardenClient, req: CreateRequest = {}): Promise<{ handle: string; id: string; info: InfoResponse }> {
    const { handle } = await client.create(req);
    const info = await client.info({ handle });
    const id = info.container_path!.split('/').pop()!;
    this.ids.add(id);
    return { handle, id, info };
  }

  /** A container for network tests: its handle, id, addresses and init pid. */
  async box(client: WardenClient, req: CreateRequest = {}): Promise<Box> {
    const c = await this.create(client, req);
    return { handle: c.handle, id: c.id, ip: c.info.container_ip!, hostIp: c.info.host_ip!, initPid: await this.initPid(c.info.container_path!) };
  }

  /** Run a script in the container (Run request); never throws for a non-zero status. */
  async run(client: WardenClient, handle: string, script: string, privileged = false): Promise<RunResult> {
    const r = await client.run({ handle, script, privileged });
    return { exit_status: r.exit_status ?? -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), info: r.info };
  }

  /** Start the daemon again on the same depot (after a kill or a drain). */
  async restart(): Promise<void> {
    if (this.running) throw new Error('daemon still running');
    await this.closeClients();
    await this.daemon.launch();
  }

  /** Host pid of a container's init, from <container_path>/run/wshd.pid. */
  async initPid(containerPath: string): Promise<number> {
    return Number((await readFile(join(containerPath, 'run', 'wshd.pid'), 'utf8')).trim());
  }

  /** The container's cgroup directories (runc puts them under the daemon's own cgroup, which is ours). */
  cgroups(id: string): Promise<CgroupPaths> {
    return containerCgroups(this.settings.cgroupParent, id);
  }

  /** Ids the daemon ever logged (create, destroy, recovery), and what is on the host now. */
  private async refreshIds(): Promise<void> {
    for (const m of this.daemon.log().matchAll(/"id":"([0-9a-v]{11})"/g)) this.ids.add(m[1]!);
    for (const name of await readdir(this.settings.depot).catch(() => [] as string[])) if (/^[0-9a-z]{1,11}$/.test(name)) this.ids.add(name);
    for (const id of await this.runtimeContainers()) this.ids.add(id);
    for (const parent of await parentCgroups(this.settings.cgroupParent)) {
      for (const name of await readdir(parent).catch(() => [] as string[])) {
        const m = /^instance-(.+)$/.exec(name);
        if (m) this.ids.add(m[1]!);
      }
    }
    const pool = parseCidr(this.pool)!;
    const addrs = await execa('ip', ['-o', '-4', 'addr', 'show'], { reject: false });
    for (const line of addrs.stdout.split('\n')) {
      const m = /^\d+:\s+w-([0-9a-z]+)-0\s+inet\s+([\d.]+)\//.exec(line);
      const ip = m ? parseIpv4(m[2]!) : undefined;
      if (m && ip !== undefined && cidrContains(pool, ip)) this.ids.add(m[1]!);
    }
  }

  /**
   * Everything of this daemon's left on the host, as readable lines (empty: nothing).
   * While the depot is mounted its own loop device is expected; after cleanup() nothing
   * at all may remain (depot image, runtime root, cgroup parents, folder).
   */
  async hostLeaks(): Promise<string[]> {
    await this.refreshIds();
    const ids = [...this.ids];
    const mentions = (line: string) => ids.some((id) => line.includes(`i-${id}`) || line.includes(`w-${id}-`) || line.includes(`instance-${id}`));
    const found: string[] = [];

    for (const name of await readdir('/sys/class/net')) {
      const m = /^w-([0-9a-z]+)-[0-2]$/.exec(name);
      if (m && this.ids.has(m[1]!)) found.push(`interface ${name}`);
    }
    for (const table of ['filter', 'nat', 'mangle']) {
      const out = await execa('iptables', ['-w', '-t', table, '-S'], { reject: false });
      for (const line of out.stdout.split('\n')) {
        if (mentions(line)) found.push(`iptables ${table}: ${line}`);
        else if (this.cleanedUp && line.includes(` ${this.pool} `)) found.push(`iptables ${table} (pool rule): ${line}`);
      }
    }
    const qdiscs = await execa('tc', ['qdisc', 'show'], { reject: false });
    for (const line of qdiscs.stdout.split('\n')) if (mentions(line)) found.push(`qdisc: ${line}`);

    for (const parent of await parentCgroups(this.settings.cgroupParent)) {
      const names = await readdir(parent).catch(() => undefined);
      if (names === undefined) continue;
      for (const name of names) if (name.startsWith('instance-')) found.push(`cgroup ${join(parent, name)}`);
      if (this.cleanedUp) found.push(`cgroup parent ${parent}`);
    }
    // The daemon's own cgroup (cpu hierarchy) is there while it runs; it goes when it exits.
    const own = await this.daemonCgroup();
    if (own && this.cleanedUp && (await stat(own).catch(() => undefined))) found.push(`daemon cgroup ${own}`);
    // The original's view, /tmp/warden/cgroup/<controller>/instance-<id>: one symlink each.
    for (const controller of await readdir(CGROUP_LINK_ROOT).catch(() => [] as string[])) {
      for (const id of ids) {
        const link = join(CGROUP_LINK_ROOT, controller, `instance-${id}`);
        if (await lstat(link).catch(() => undefined)) found.push(`cgroup link ${link}`);
      }
    }

    const depot = this.settings.depot;
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    for (const line of mountinfo.split('\n')) {
      const point = line.split(' ')[4];
      if (point && point.startsWith(`${depot}/`)) found.push(`mount ${point}`);
      if (point === depot && this.cleanedUp) found.push(`depot mount ${point}`);
    }
    const depotMount = await mountAt(depot);
    const losetup = await execa('losetup', ['-n', '-O', 'NAME', '-j', this.settings.depotImage], { reject: false });
    for (const dev of losetup.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
      if (depotMount?.source === dev && !this.cleanedUp) continue;
      found.push(`loop device ${dev} of ${this.settings.depotImage}`);
    }
    if (depotMount && depotMount.fstype === 'btrfs') {
      // A destroy does not wait for btrfs's cleaner; its qgroup goes when the cleaner is done.
      await execa('btrfs', ['subvolume', 'sync', depot], { reject: false, timeout: 300_000 });
      const qg = await execa('btrfs', ['qgroup', 'show', '--raw', depot], { reject: false });
      for (const line of qg.stdout.split('\n')) {
        const m = /^0\/(\d+)\s/.exec(line.trim());
        if (m && m[1] !== '5') found.push(`qgroup 0/${m[1]} in ${depot}`);
      }
    }

    for (const p of await this.containerProcesses()) found.push(`process ${p}`);

    for (const id of await this.runtimeContainers()) found.push(`runtime container ${id}`);
    if (this.cleanedUp && (await stat(this.settings.runtimeRoot).catch(() => undefined))) found.push(`runtime root ${this.settings.runtimeRoot}`);

    for (const e of await readdir(depot, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) found.push(`depot folder ${join(depot, e.name)}`);
    }
    if (this.cleanedUp) {
      for (const p of [this.daemon.dir, this.settings.depotImage]) if (await stat(p).catch(() => undefined)) found.push(`file ${p}`);
    }
    return found;
  }

  /** The daemon's own cgroup in the cpu hierarchy (see cgroups/daemon-cgroup.ts), or undefined without one. */
  async daemonCgroup(): Promise<string | undefined> {
    const cpu = (await hierarchies()).find((h) => h.controllers.includes('cpu'));
    return cpu ? join(cpu.own, daemonGroupName(this.settings.cgroupParent)) : undefined;
  }

  /** Containers under the daemon's runc root (`runc list` would create a missing root: look first). */
  private async runtimeContainers(): Promise<string[]> {
    if (!(await stat(this.settings.runtimeRoot).catch(() => undefined))) return [];
    const list = await execa('runc', ['--root', this.settings.runtimeRoot, 'list', '-q'], { reject: false });
    return list.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  /** Processes in the daemon's container cgroups, or whose command line names its depot (job supervisors, runc exec). */
  async containerProcesses(): Promise<string[]> {
    const out: string[] = [];
    const marker = `/${this.settings.cgroupParent}/`;
    for (const pid of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
      const [cg, cmd, st] = await Promise.all([
        readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => ''),
        readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''),
        readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''),
      ]);
      // A zombie holds nothing but its pid; this VM's pid 1 reaps re-parented ones lazily (~1 s).
      if (/\) Z /.test(st)) continue;
      const cmdline = cmd.split('\0').join(' ').trim();
      if (cg.includes(marker) || cmdline.includes(`${this.settings.depot}/`)) out.push(`${pid} ${cmdline.slice(0, 120)}`);
    }
    return out;
  }

  /** Destroy every container, with a few connections at once. */
  async destroyAll(concurrency = 6): Promise<string[]> {
    const errors: string[] = [];
    const c = await this.client();
    const { handles = [] } = await c.list();
    const queue = [...handles];
    await Promise.all(
      Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
        const k = await this.client();
        for (let h = queue.shift(); h !== undefined; h = queue.shift()) {
          await k.destroy({ handle: h }).catch((e: Error) => errors.push(`destroy ${h}: ${e.message}`));
        }
      }),
    );
    return errors;
  }

  /**
   * Destroys everything, stops the daemon, unmounts the depot (its loop device goes with
   * it), removes the image, the folder and the egress guard; returns what leaked (also
   * anything a last-resort sweep had to clean so the host stays usable).
   */
  async cleanup(opts: { restart?: boolean } = {}): Promise<string[]> {
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
      }
    };
    // Killed by a test that failed half-way: a new daemon recovers and then destroys.
    if (!this.running && opts.restart !== false) await step('restart for cleanup', () => this.daemon.launch());
    if (this.running) {
      await step('destroy all', async () => problems.push(...(await this.destroyAll())));
      await this.closeClients();
      await step('stop', async () => {
        const exited = this.daemon.signal('SIGTERM');
        const code = await Promise.race([exited, sleep(45_000).then(() => 'timeout' as const)]);
        if (code !== 0) problems.push(`daemon exit on SIGTERM: ${code}`);
      });
    }
    if (this.running) {
      // Hung, or still starting up: the sweep below cleans what it leaves.
      await step('kill', () => this.daemon.kill9());
    }
    const leaks = await this.hostLeaks();
    if (leaks.length) {
      problems.push(...leaks.map((l) => `left after destroy: ${l}`));
      // Clean the host anyway so other files and later runs are not affected.
      await sweepHost(this.settings, { claimed: new Set() }).catch((e: Error) => problems.push(`sweep: ${e.message}`));
    }
    await teardownHost(this.settings).catch((e: Error) => problems.push(`teardown: ${e.message}`));
    if (problems.length) {
      // Keep the daemon's log for the post-mortem (the folder goes next).
      const keep = `/tmp/warden-daemon-test-${this.pool.replace(/[./]/g, '_')}.log`;
      await execa('cp', [this.daemon.logPath, keep], { reject: false });
      problems.push(`daemon log kept at ${keep}`);
    }
    await rm(this.settings.depotImage, { force: true });
    if (!(await mountAt(this.settings.depot))) await rm(this.daemon.dir, { recursive: true, force: true });
    await removeEgressGuard().catch((e: Error) => problems.push(`egress guard: ${e.message}`));
    this.cleanedUp = true;
    problems.push(...(await this.hostLeaks()));
    return problems;
  }
}

/** Whether something listens on TCP port inside the network namespace of pid (host's ss, no traffic). */
export async function listening(pid: number, port: number): Promise<boolean> {
  const r = await execa('nsenter', [`--net=/proc/${pid}/ns/net`, '--', 'ss', '-Hltn', `sport = :${port}`], { reject: false });
  return r.exitCode === 0 && r.stdout.trim() !== '';
}

export async function waitListening(pid: number, port: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(`a listener on port ${port} in the namespace of ${pid}`, () => listening(pid, port), timeoutMs, 25);
}

export interface TcpResult {
  /** What the server sent until it closed. */
  data: Buffer;
  /** Error code (ECONNREFUSED, ...) or 'timeout'; undefined when the server closed normally. */
  error?: string;
  /** From connect to the server's close, in ms. */
  ms: number;
}

/**
 * One TCP exchange from the host: connect, send `send` (a string, or that many bytes),
 * read until the server closes. Traffic goes only where the caller points it (loopback
 * or a local container).
 */
export function tcpExchange(host: string, port: number, send: string | number = '', timeoutMs = 5_000): Promise<TcpResult> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const chunks: Buffer[] = [];
    let t0 = 0;
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), error, ms: t0 ? performance.now() - t0 : 0 });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    s.on('connect', () => {
      t0 = performance.now();
      if (typeof send === 'string') {
        if (send) s.write(send);
        return;
      }
      const chunk = Buffer.alloc(64 * 1024, 120);
      let sent = 0;
      const pump = () => {
        while (sent < send) {
          const k = Math.min(chunk.length, send - sent);
          sent += k;
          if (!s.write(chunk.subarray(0, k))) return void s.once('drain', pump);
        }
      };
      pump();
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => finish());
    s.on('close', () => finish());
    s.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}
