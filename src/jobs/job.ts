// A job as the main thread tracks it: its record (snapshotted) and the state
// of its followers. Output and exit status live in the job's folder.
import type { JobRecord } from '../model/records.ts';

export class Job {
  readonly record: JobRecord;
  readonly dir: string;
  /** Link/Stream requests reading it right now. */
  readers = 0;
  /** Linked or streamed to completion: no longer answers Link/Stream. */
  forgotten = false;
  /** Killed for passing the output limit: it reports 255, as the original did. */
  outputExceeded = false;
  /** Its folder was gone before an exit was recorded (the guard reports 255). */
  vanished = false;
  /** The status Link/Stream report, once settled (see JobRequests.settleExit). */
  settled: Promise<number> | undefined;
  /** Settles when the job's guard (limit watch, syslog forwarding) is done with its folder. */
  guarded: Promise<unknown> = Promise.resolve();
  /** Resolves with the exit status once the job has ended. */
  readonly exited: Promise<number>;
  private resolveExit!: (status: number) => void;

  constructor(record: JobRecord, dir: string) {
    this.record = record;
    this.dir = dir;
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
    if (record.state === 'exited') this.resolveExit(record.exit_status ?? 0);
  }

  get id(): number {
    return this.record.id;
  }

  get running(): boolean {
    return this.record.state === 'running';
  }

  markExited(status: number): void {
    if (this.record.state === 'exited') return;
    this.record.state = 'exited';
    this.record.exit_status = status;
    this.resolveExit(status);
  }
}
