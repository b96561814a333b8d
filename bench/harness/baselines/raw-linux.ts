// Drives raw-linux.sh: the same runc and host-tool calls a Linux create, destroy,
// Run and staging make, without the daemon. Its containers live in a folder of
// their own on the daemon's btrfs depot (same filesystem), under a runc root and
// a cgroup parent of their own, with /30s from the top of the bench range, so the
// daemon never sees them; every id is recorded as it starts so that cleanup()
// can take down whatever an interrupted run left.
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildConfig } from '../../../src/backends/linux/bundle/spec.ts';
import { JOB_WRAPPER } from '../../../src/backends/linux/jobs/launch.ts';
import { hierarchies, parentCgroups } from '../../../src/backends/linux/cgroups/cgroups.ts';
import { DEFAULT_PIDS_LIMIT, type LinuxHostSettings } from '../../../src/backends/linux/settings.ts';
import { parseIpv4 } from '../../../src/model/ipv4.ts';
import type { BindMount } from '../../../src/protocol/types.ts';
import { RAW_NET_START } from '../daemon.ts';
import type { RawScope } from '../host-state.ts';
import { runRawScript, mergeRuns, type RawOp, type RawRun } from './script.ts';

export type { RawOp, RawRun };

const SCRIPT = join(import.meta.dirname, 'raw-linux.sh');
/** /30s available to raw containers (10.240.240.0 - 10.240.255.255). */
export const RAW_SLOTS = 1024;
const UID_BASE = 700000;

export class RawLinux {
  readonly scope: RawScope;
  private readonly env: Record<string, string>;
  /** Ids created and not yet destroyed (cleanup takes them down). */
  private readonly live = new Set<string>();
  private readonly templates = new Map<string, string>();
  private readonly children = new Set<import('node:child_process').ChildProcess>();

  private constructor(scope: RawScope, env: Record<string, string>) {
    this.scope = scope;
    this.env = env;
  }

  static async setup(s: LinuxHostSettings, run: string, tmp: string): Promise<RawLinux> {
    const scope: RawScope = {
      dir: join(s.depot, `.bench-raw-${run}`),
      runtimeRoot: `/run/warden/bench-raw-${run}`,
      cgroupParent: `warden-bench-raw-${run}`,
      ids: new Set(),
    };
    await mkdir(scope.dir, { recursive: true });
    await mkdir(scope.runtimeRoot, { recursive: true, mode: 0o700 });
    const parents = await parentCgroups(scope.cgroupParent);
    for (const p of parents) await mkdir(p, { recursive: true });
    const byController: Record<string, string> = {};
    for (const h of await hierarchies()) for (const c of h.controllers) byController[c] = join(h.own, scope.cgroupParent);
    const resolv = s.dnsServers.length
      ? s.dnsServers.map((d) => `nameserver ${d}\n`).join('')
      : (await readFile('/etc/resolv.conf', 'utf8').catch(() => '')).split('\n').filter((l) => /^\s*(nameserver|search|options)\s/.test(l)).join('\n') + '\n';
    const raw = new RawLinux(scope, {
      RAW_DIR: scope.dir,
      DEPOT: s.depot,
      ROOTFS: s.baseRootfs,
      RUNC_ROOT: scope.runtimeRoot,
      CG_PARENTS: parents.join(':'),
      CG_PIDS: byController.pids ?? byController.memory ?? '',
      CG_MEMORY: byController.memory ?? '',
      CG_CPU: byController.cpu ?? '',
      CG_UNIFIED: byController.unified ?? '',
      RESOLV: resolv,
      MTU: String(s.mtu),
      NET_BASE: String(parseIpv4(RAW_NET_START)),
      UID_BASE: String(UID_BASE),
      TMP: tmp,
    });
    raw.env.CONFIG_TEMPLATE = await raw.template(tmp, []);
    return raw;
  }

  /** The bundle config the daemon would write (same builder), with placeholders for the script to fill. */
  async template(tmp: string, bindMounts: BindMount[], limits: { memory?: number; cpu?: number } = {}): Promise<string> {
    const key = JSON.stringify([bindMounts, limits]);
    const known = this.templates.get(key);
    if (known) return known;
    const config = await buildConfig({
      root: '@ROOT@',
      hostname: '@HOSTNAME@',
      cgroupsPath: `${this.scope.cgroupParent}/instance-@ID@`,
      bindMounts,
      memoryLimit: limits.memory,
      cpuShares: limits.cpu,
      pidsLimit: DEFAULT_PIDS_LIMIT,
      // The raw script writes no /etc/group: /dev/fuse stays root's.
      fuseGid: 0,
    });
    const path = join(tmp, `raw-config-${this.templates.size}.json`);
    await writeFile(path, JSON.stringify(config, null, 1));
    this.templates.set(key, path);
    return path;
  }

  /** Runs the script once; ops are reported as they come (onOp) and returned. */
  runScript(args: string[], extraEnv: Record<string, string>, worker: number, onOp?: (op: RawOp) => void, signal?: AbortSignal): Promise<RawRun> {
    return runRawScript(SCRIPT, args, { ...this.env, ...extraEnv }, worker, {
      onOp,
      signal,
      children: this.children,
      onBegin: (id) => {
        this.live.add(id);
        this.scope.ids.add(id);
      },
      onEnd: (id) => this.live.delete(id),
    });
  }

  /** `workers` scripts at once, each running create+destroy cycles (count each, or until untilMs from now). */
  async cycles(workers: number, o: { count?: number; untilMs?: number; onOp?: (op: RawOp) => void; signal?: AbortSignal; slotBase?: number }): Promise<RawRun> {
    if (workers > RAW_SLOTS) throw new Error(`raw baseline: at most ${RAW_SLOTS} workers`);
    const until = o.untilMs === undefined ? '0' : String(Math.round((Date.now() + o.untilMs) * 1000));
    const runs = await Promise.all(
      Array.from({ length: workers }, (_, w) =>
        this.runScript(['cycle', String(o.count ?? 0)], { NET_INDEX: String((o.slotBase ?? 0) + w), UNTIL_US: until }, w, o.onOp, o.signal),
      ),
    );
    return mergeRuns(runs);
  }

  /** k containers created one after another and kept (for the memory baseline); destroy them with destroyAll(). */
  async createKept(k: number, onOp?: (op: RawOp) => void, signal?: AbortSignal): Promise<RawRun> {
    if (k > RAW_SLOTS) throw new Error(`raw baseline: at most ${RAW_SLOTS} containers at once`);
    return this.runScript(['create', String(k)], { NET_INDEX: '0' }, 0, onOp, signal);
  }

  /** Destroys every raw container still alive, one after another. */
  async destroyAll(onOp?: (op: RawOp) => void): Promise<RawRun> {
    const ids = [...this.live];
    if (ids.length === 0) return { ops: [], cpuSeconds: 0, errors: [], ids: [], notes: [] };
    const r = await this.runScript(['destroy', ...ids], {}, 0, onOp);
    for (const id of ids) this.live.delete(id);
    return r;
  }

  execTrue(n: number, runtimeRoot: string, id: string, uid: number, onOp?: (op: RawOp) => void, signal?: AbortSignal): Promise<RawRun> {
    return this.runScript(['exec-true', String(n), runtimeRoot, id, String(uid)], {}, 0, onOp, signal);
  }

  /** n x `runc exec` of what a Run starts in the container: the job wrapper and bash reading `true` on stdin. */
  execJob(n: number, runtimeRoot: string, id: string, uid: number, onOp?: (op: RawOp) => void, signal?: AbortSignal): Promise<RawRun> {
    return this.runScript(['exec-job', String(n), runtimeRoot, id, String(uid)], { JOB_WRAPPER }, 0, onOp, signal);
  }

  /**
   * `k` jobs at once, each `runc exec` of a shell writing `bytes` into a file in the
   * depot and the file read back: what a Spawn and Stream of that job cost the host
   * at least. Resolves with the wall time of all of them.
   */
  async execOut(k: number, runtimeRoot: string, id: string, uid: number, bytes: number, signal?: AbortSignal): Promise<RawRun & { wallMs: number }> {
    const t0 = performance.now();
    const runs = await Promise.all(
      Array.from({ length: k }, (_, w) => this.runScript(['exec-out', runtimeRoot, id, String(uid), String(bytes)], {}, w, undefined, signal)),
    );
    return { ...mergeRuns(runs), wallMs: performance.now() - t0 };
  }

  /** `workers` scripts at once, each running `count` raw stagings. */
  async stagings(
    workers: number,
    count: number,
    env: { appDir: string; outDir: string; script: string; limitMem: number; limitDisk: number; limitCpu: number; portBase: number; template: string },
    onOp?: (op: RawOp) => void,
    signal?: AbortSignal,
  ): Promise<RawRun> {
    const runs = await Promise.all(
      Array.from({ length: workers }, (_, w) =>
        this.runScript(
          ['stage', String(count)],
          {
            NET_INDEX: String(w),
            APP_DIR: env.appDir,
            OUT_DIR: env.outDir,
            STAGE_SCRIPT: env.script,
            LIMIT_MEM: String(env.limitMem),
            LIMIT_DISK: String(env.limitDisk),
            LIMIT_CPU: String(env.limitCpu),
            PORT_BASE: String(env.portBase),
            CONFIG_TEMPLATE: env.template,
          },
          w,
          onOp,
          signal,
        ),
      ),
    );
    return mergeRuns(runs);
  }

  /** Takes down whatever is left and removes the folder, runtime root and cgroup parents. */
  async cleanup(): Promise<string[]> {
    const problems: string[] = [];
    for (const c of this.children) c.kill('SIGKILL');
    // Ids the scripts started: destroy is idempotent (each step tolerates what is gone).
    const leftover = [...this.live];
    if (leftover.length) {
      const r = await this.destroyAll();
      problems.push(...r.errors.filter((e) => !/does not exist|No such file|not mounted|no mount point|Could not find/i.test(e)));
    }
    await rm(this.scope.dir, { recursive: true, force: true }).catch((e: Error) => problems.push(`rm ${this.scope.dir}: ${e.message}`));
    await rm(this.scope.runtimeRoot, { recursive: true, force: true }).catch((e: Error) => problems.push(`rm ${this.scope.runtimeRoot}: ${e.message}`));
    for (const p of await parentCgroups(this.scope.cgroupParent)) {
      await rmdir(p).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') problems.push(`rmdir ${p}: ${e.message}`);
      });
    }
    return problems;
  }
}
