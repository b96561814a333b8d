// Warden::Container::Insecure: no isolation. A container is a folder with a
// private root directory; jobs run as the daemon's user inside it. For
// development and for measuring the daemon itself.
import { join } from 'node:path';
import type { ContainerRecord, NetOutRule } from '../../model/records.ts';
import type { CopyInRequest, CopyOutRequest, DiskLimits, InfoResponse } from '../../protocol/types.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { UnsupportedError, type Backend, type JobLaunch, type JobSpec, type RecoverOutcome } from '../backend.ts';
import { prlimitArgs } from '../../jobs/rlimits.ts';

export const STOP_TIMEOUT_MS = 10_000;

export function rootDir(c: ContainerRecord): string {
  return join(c.path, 'root');
}

function jobDirs(c: ContainerRecord): string[] {
  return c.jobs.filter((j) => j.state === 'running').map((j) => join(c.path, 'jobs', String(j.id)));
}

export class InsecureBackend implements Backend {
  readonly name = 'insecure' as const;
  private readonly pool: WorkerPool;

  constructor(pool: WorkerPool) {
    this.pool = pool;
  }

  async setupHost(): Promise<void> {}

  async sweep(): Promise<void> {}

  async create(c: ContainerRecord): Promise<void> {
    await this.pool.run('insecure.create', {
      path: c.path,
      root: rootDir(c),
      rootfs: c.rootfs_requested ? c.rootfs : undefined,
      bindSources: c.bind_mounts.map((b) => b.src_path),
    });
  }

  /** Nothing on the host to check: every folder is adopted (an older layout's root is moved first). */
  recoverAll(cs: ContainerRecord[]): Promise<RecoverOutcome[]> {
    return Promise.all(
      cs.map((c) =>
        this.pool.run('insecure.adoptRoot', { path: c.path, root: rootDir(c) }).then(
          () => ({ alive: true }),
          (err: Error) => ({ error: err.message }),
        ),
      ),
    );
  }

  async stop(c: ContainerRecord, kill: boolean): Promise<void> {
    await this.pool.run('insecure.stop', { jobDirs: jobDirs(c), kill, timeoutMs: STOP_TIMEOUT_MS });
  }

  async destroy(c: ContainerRecord): Promise<void> {
    await this.pool.run('insecure.stop', { jobDirs: jobDirs(c), kill: true, timeoutMs: 0 });
  }

  jobLaunch(c: ContainerRecord, job: JobSpec): JobLaunch {
    const root = rootDir(c);
    const limits = prlimitArgs(job.rlimits);
    return {
      argv: limits.length > 0 ? ['prlimit', ...limits, '--', '/bin/bash'] : ['/bin/bash'],
      env: { ...job.env, HOME: root, PWD: root },
      cwd: root,
    };
  }

  async killJob(_c: ContainerRecord, job: { dir: string }): Promise<void> {
    await this.pool.run('job.signal', { dir: job.dir, signal: 'SIGKILL' });
  }

  async info(): Promise<InfoResponse> {
    return {};
  }

  async netIn(): Promise<void> {
    // No network isolation: the port is reserved from the pool and reported, nothing to forward.
  }

  async netOut(_c: ContainerRecord, _rule: NetOutRule): Promise<void> {
    // Outbound traffic is not filtered: the rule is recorded, as the original insecure backend did.
  }

  async copyIn(c: ContainerRecord, req: CopyInRequest): Promise<void> {
    await this.pool.run('insecure.copyIn', { root: rootDir(c), src: req.src_path, dst: req.dst_path });
  }

  async copyOut(c: ContainerRecord, req: CopyOutRequest): Promise<void> {
    await this.pool.run('insecure.copyOut', {
      root: rootDir(c),
      src: req.src_path,
      dst: req.dst_path,
      owner: req.owner || undefined,
    });
  }

  async limitMemory(): Promise<never> {
    throw new UnsupportedError('limit_memory is not supported by the insecure backend');
  }

  async limitCpu(): Promise<never> {
    throw new UnsupportedError('limit_cpu is not supported by the insecure backend');
  }

  async limitBandwidth(): Promise<void> {
    throw new UnsupportedError('limit_bandwidth is not supported by the insecure backend');
  }

  async limitDisk(_c: ContainerRecord, _limits: DiskLimits): Promise<DiskLimits> {
    throw new UnsupportedError('limit_disk is not supported by the insecure backend');
  }
}
