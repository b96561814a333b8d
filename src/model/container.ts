// One container as the daemon holds it: the snapshotted record, its live jobs,
// which connections reference it, its grace timer, and a lock that orders the
// requests that change it.
import { join } from 'node:path';
import { StateError } from './errors.ts';
import { Job } from '../jobs/job.ts';
import type { InfoResponse } from '../protocol/types.ts';
import { Mutex } from './mutex.ts';
import type { ContainerRecord, ContainerState } from './records.ts';

export class Container {
  readonly record: ContainerRecord;
  readonly jobs = new Map<number, Job>();
  /** Connections (by id) that named this container. */
  readonly references = new Set<number>();
  /** Info taken just before destroy, for Link/Stream answers that finish afterwards. */
  obituary: InfoResponse | undefined;
  graceTimer: NodeJS.Timeout | undefined;
  readonly lock = new Mutex();
  /** Snapshot writes in flight: at most one running and one queued. */
  snapshotting: Promise<void> | undefined;
  snapshotQueued: Promise<void> | undefined;
  /** Digest of the snapshot on disk (its value, in snapshotText form), as last written or read: an unchanged one is not written again. */
  snapshotDigest: string | undefined;
  /** A Destroy is under way: its snapshot is removed and not written again (recovery then finishes the destroy). */
  destroying = false;
  /** The backend's Info figures being read: concurrent Infos share the read (orchestrator/info.ts). */
  hostFiguresReading: Promise<InfoResponse> | undefined;
  /** Link, Stream and Run reads of job output in flight: a Destroy lets them finish before the folder goes. */
  readonly reads = new Set<Promise<void>>();

  constructor(record: ContainerRecord) {
    this.record = record;
  }

  get id(): string {
    return this.record.id;
  }

  get handle(): string {
    return this.record.handle;
  }

  get state(): ContainerState {
    return this.record.state;
  }

  set state(s: ContainerState) {
    this.record.state = s;
  }

  get snapshotPath(): string {
    return join(this.record.path, 'snapshot.json');
  }

  jobDir(id: number): string {
    return join(this.record.path, 'jobs', String(id));
  }

  assertState(...allowed: ContainerState[]): void {
    if (!allowed.includes(this.state)) throw new StateError(allowed, this.state);
  }

  addJob(job: Job): void {
    this.jobs.set(job.id, job);
    this.record.jobs.push(job.record);
  }

  forgetJob(job: Job): void {
    job.forgotten = true;
    this.jobs.delete(job.id);
    this.record.jobs = this.record.jobs.filter((j) => j.id !== job.id);
  }

  runningJobIds(): number[] {
    // Every Info and Link asks; a container may hold hundreds of finished, unlinked jobs.
    const ids: number[] = [];
    for (const j of this.jobs.values()) if (j.running) ids.push(j.id);
    return ids;
  }
}
