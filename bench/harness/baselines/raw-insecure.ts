// The insecure baselines. A create and a destroy of the insecure backend are
// file operations only, so the raw sequence is done here, in-process, with the
// same calls the daemon's workers make (src/orchestrator/warden-service.ts create and
// destroy, src/backends/insecure/tasks.ts, src/depot/depot-tasks.ts):
// mkdir, an atomic snapshot write (temp file, rename)
// in state born, the root/jobs/run folders, the snapshot again in state active;
// destroy removes the tree. Run and staging go through raw-insecure.sh.
import type { ChildProcess } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../../src/depot/depot-tasks.ts';
import type { RawScope } from '../host-state.ts';
import { runRawScript, mergeRuns, type RawOp, type RawRun } from './script.ts';

const SCRIPT = join(import.meta.dirname, 'raw-insecure.sh');

/** A container record like the daemon's, for snapshot writes of the same size. */
function record(id: string, path: string, state: string): unknown {
  return {
    id, handle: id, state, path, network: '10.240.0.0', host_ip: '10.240.0.1', container_ip: '10.240.0.2', uid: 600000,
    ports: [], grace_time: null, bind_mounts: [], rootfs: '/tmp/rootfs', rootfs_requested: false, events: [],
    net_in: [], net_out: [], limits: {}, jobs: [], created_at: Date.now(), backend: {},
  };
}

export class RawInsecure {
  readonly scope: RawScope;
  private seq = 0;
  private readonly live = new Set<string>();
  private readonly children = new Set<ChildProcess>();

  constructor(dir: string) {
    this.scope = { dir, runtimeRoot: '', cgroupParent: '', ids: new Set() };
  }

  async setup(): Promise<void> {
    await mkdir(this.scope.dir, { recursive: true });
  }

  private nextId(): string {
    const id = `r${(++this.seq).toString(32).padStart(10, '0')}`;
    this.scope.ids.add(id);
    return id;
  }

  /** The insecure create's host operations; returns the id and per-step times. */
  async create(): Promise<{ id: string; op: RawOp }> {
    const id = this.nextId();
    const path = join(this.scope.dir, id);
    this.live.add(id);
    const t0 = performance.now();
    await mkdir(path, { recursive: true, mode: 0o755 });
    const t1 = performance.now();
    writeFileAtomicSync(join(path, 'snapshot.json'), `${JSON.stringify(record(id, path, 'born'), null, 1)}\n`);
    const t2 = performance.now();
    await mkdir(join(path, 'root'), { recursive: true });
    await mkdir(join(path, 'jobs'), { recursive: true });
    await mkdir(join(path, 'run'), { recursive: true });
    const t3 = performance.now();
    writeFileAtomicSync(join(path, 'snapshot.json'), `${JSON.stringify(record(id, path, 'active'), null, 1)}\n`);
    const t4 = performance.now();
    return { id, op: { op: 'create', totalMs: t4 - t0, steps: { folder: t1 - t0, snapshot_born: t2 - t1, folders: t3 - t2, snapshot_active: t4 - t3 }, worker: 0 } };
  }

  async destroy(id: string): Promise<RawOp> {
    const t0 = performance.now();
    await rm(join(this.scope.dir, id), { recursive: true, force: true, maxRetries: 3 });
    this.live.delete(id);
    const ms = performance.now() - t0;
    return { op: 'destroy', totalMs: ms, steps: { remove: ms }, worker: 0 };
  }

  execTrue(n: number, onOp?: (op: RawOp) => void, signal?: AbortSignal): Promise<RawRun> {
    return runRawScript(SCRIPT, ['exec-true', String(n)], { RAW_DIR: this.scope.dir }, 0, { onOp, signal, children: this.children });
  }

  async stagings(workers: number, count: number, env: { appDir: string; outDir: string; script: string }, onOp?: (op: RawOp) => void, signal?: AbortSignal): Promise<RawRun> {
    const runs = await Promise.all(
      Array.from({ length: workers }, (_, w) =>
        runRawScript(
          SCRIPT,
          ['stage', String(count)],
          { RAW_DIR: this.scope.dir, APP_DIR: env.appDir, OUT_DIR: env.outDir, STAGE_SCRIPT: env.script, WORKER: String(w) },
          w,
          { onOp, signal, children: this.children },
        ),
      ),
    );
    return mergeRuns(runs);
  }

  async destroyAll(): Promise<void> {
    for (const id of [...this.live]) await this.destroy(id);
  }

  async cleanup(): Promise<string[]> {
    for (const c of this.children) c.kill('SIGKILL');
    await rm(this.scope.dir, { recursive: true, force: true, maxRetries: 3 });
    this.live.clear();
    return [];
  }
}
