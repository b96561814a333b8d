// The Linux backend: real containers with runc, overlayfs, btrfs and the network
// module. Every method is one worker task (src/backends/linux/tasks.ts); the only
// main-thread work is jobLaunch, which builds an argv without I/O.
import type { Backend, JobLaunch, JobSpec } from '../backend.ts';
import type { WardenConfig } from '../../config/types.ts';
import type { ContainerRecord, NetOutRule } from '../../containers/model.ts';
import type { CopyInRequest, CopyOutRequest, DiskLimits, InfoResponse } from '../../protocol/types.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { hostSettings, type LinuxBackendOptions, type LinuxHostSettings } from './settings.ts';
import { jobLaunch, type HardLimits } from './jobs/launch.ts';
import { liveFacts, runtimeOf } from './container/facts.ts';
import type { OomResult } from './oom.ts';

/** Most records one linux.recoverMany task takes (bounds the task's size and its iptables batch). */
const RECOVER_BATCH = 250;

interface PendingRecover {
  c: ContainerRecord;
  resolve: (alive: boolean) => void;
  reject: (err: Error) => void;
}

export class LinuxBackend implements Backend {
  readonly name = 'linux' as const;
  readonly settings: LinuxHostSettings;
  private readonly pool: WorkerPool;
  private hardLimits: HardLimits = {};
  private pendingRecovers: PendingRecover[] = [];

  constructor(config: WardenConfig, pool: WorkerPool, opts: LinuxBackendOptions = {}) {
    this.settings = hostSettings(config, opts);
    this.pool = pool;
  }

  async setupHost(): Promise<void> {
    const facts = await this.pool.run('linux.setupHost', { host: this.settings });
    this.hardLimits = facts.hardLimits;
  }

  async releaseHost(): Promise<void> {
    await this.pool.run('linux.teardownHost', { host: this.settings });
  }

  async sweep(claimedIds: Set<string>): Promise<void> {
    await this.pool.run('linux.sweep', { host: this.settings, claimed: [...claimedIds] });
  }

  /** On success c.backend holds the LinuxFacts (init pid + start time, cgroups, subvolume, runtime): snapshot it. */
  async create(c: ContainerRecord): Promise<void> {
    c.backend = { ...(await this.pool.run('linux.create', { host: this.settings, c })) };
  }

  /**
   * Calls made together (recovery asks for every container at once) are coalesced
   * into linux.recoverMany tasks: a few host commands for all instead of several each.
   */
  recover(c: ContainerRecord): Promise<boolean> {
    return new Promise((resolve, reject) => {
      if (this.pendingRecovers.length === 0) setImmediate(() => this.flushRecovers());
      this.pendingRecovers.push({ c, resolve, reject });
    });
  }

  private flushRecovers(): void {
    const all = this.pendingRecovers;
    this.pendingRecovers = [];
    for (let i = 0; i < all.length; i += RECOVER_BATCH) {
      const batch = all.slice(i, i + RECOVER_BATCH);
      this.pool.run('linux.recoverMany', { host: this.settings, cs: batch.map((p) => p.c) }).then(
        (outcomes) =>
          batch.forEach((p, k) => {
            const o = outcomes[k]!;
            if ('error' in o) p.reject(new Error(o.error));
            else p.resolve(o.alive);
          }),
        (err: Error) => batch.forEach((p) => p.reject(err)),
      );
    }
  }

  stop(c: ContainerRecord, kill: boolean): Promise<void> {
    return this.pool.run('linux.stop', { c, kill });
  }

  destroy(c: ContainerRecord): Promise<void> {
    return this.pool.run('linux.destroy', { host: this.settings, c });
  }

  jobLaunch(c: ContainerRecord, job: JobSpec): JobLaunch {
    return jobLaunch(runtimeOf(c, this.settings), c, job, this.hardLimits);
  }

  killJob(c: ContainerRecord, job: { id: number; dir: string; pid?: number }): Promise<void> {
    return this.pool.run('linux.killJob', { c, job });
  }

  info(c: ContainerRecord): Promise<InfoResponse> {
    return this.pool.run('linux.info', { c });
  }

  netIn(c: ContainerRecord, hostPort: number, containerPort: number): Promise<void> {
    return this.pool.run('linux.netIn', { host: this.settings, c, hostPort, containerPort });
  }

  netOut(c: ContainerRecord, rule: NetOutRule): Promise<void> {
    return this.pool.run('linux.netOut', { host: this.settings, c, rule });
  }

  copyIn(c: ContainerRecord, req: CopyInRequest): Promise<void> {
    return this.pool.run('linux.copyIn', { c, src: req.src_path, dst: req.dst_path });
  }

  copyOut(c: ContainerRecord, req: CopyOutRequest): Promise<void> {
    return this.pool.run('linux.copyOut', { c, src: req.src_path, dst: req.dst_path, owner: req.owner });
  }

  async limitMemory(c: ContainerRecord, bytes: number): Promise<void> {
    await this.pool.run('linux.limitMemory', { c, bytes });
  }

  async limitCpu(c: ContainerRecord, shares: number): Promise<void> {
    await this.pool.run('linux.limitCpu', { c, shares });
  }

  limitBandwidth(c: ContainerRecord, rate: number, burst: number): Promise<void> {
    return this.pool.run('linux.limitBandwidth', { c, rate, burst });
  }

  limitDisk(c: ContainerRecord, limits: DiskLimits): Promise<DiskLimits> {
    return this.pool.run('linux.limitDisk', { c, limits });
  }

  /**
   * Resolves when the container is OOM-killed ('oom': record the `out of memory` event
   * and stop the container) or destroyed ('gone'). Start it after create and after a
   * successful recover; it holds no pool slot of its own (workers multiplex tasks).
   * baseline: OOM kills already accounted for (result.count of an earlier watch); default
   * the count when the watch starts.
   */
  watchOom(c: ContainerRecord, baseline?: number): Promise<OomResult> {
    return this.pool.run('linux.watchOom', { id: c.id, cgroups: liveFacts(c).cgroups, baseline });
  }
}
