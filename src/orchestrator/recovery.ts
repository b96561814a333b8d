// Start-up recovery: walk the depot, re-adopt every container whose snapshot
// says it was active or stopped and whose backend state is still there, and
// destroy the rest (folders without a snapshot, half-created containers,
// containers whose processes are gone). Nothing is left unclaimed.
// The daemon serves once every live container is listed again; destroying the
// rest and sweeping the host's leftovers follow while it serves, with Creates
// held until they are done (a new container must never meet a leftover's
// interface, chain or cgroup, nor be taken for one by the sweep).
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.ts';
import { Container } from '../model/container.ts';
import { newContainerRecord, type ContainerRecord, type JobRecord } from '../model/records.ts';
import type { ContainerRegistry } from '../model/registry.ts';
import { fromSnapshot } from '../depot/snapshot-format.ts';
import { snapshotDigest, snapshotText } from '../depot/snapshot-writer.ts';
import type { DepotEntry, DepotScan } from '../depot/depot-tasks.ts';
import { describeError } from '../model/errors.ts';
import { Job } from '../jobs/job.ts';
import type { Pools } from '../pools/pools.ts';
import type { TaskRunner } from '../workers/pool.ts';
import { takeRecorded } from './resources.ts';
import { JOB_IDS_FILE } from './jobs.ts';


/** What recovery needs of the orchestrator, and nothing more. */
export interface RecoveryTarget {
  readonly depot: string;
  readonly registry: ContainerRegistry;
  readonly pools: Pools;
  /** Start following container deaths (before any container is listed). */
  watchContainerEvents(): void;
  /** c is listed again: its job watchers, grace timer, deaths meanwhile, snapshot. */
  adopt(c: Container): Promise<void>;
  /** Job ids continue above this. */
  startJobIdsAt(next: number): void;
  /** Delete the forgotten jobs' folders the last daemon left, then its lists of them; never rejects. */
  removeLeftoverJobFolders(folders: readonly string[], lists: readonly string[]): Promise<void>;
  /** Creates wait until done has settled. */
  holdCreatesUntil(done: Promise<void>): void;
}

/** Containers destroyed at once during recovery (each is several host commands). */
const DISCARD_CONCURRENCY = 4;

export interface RecoveryReport {
  recovered: string[];
  /** Filled in by the time cleanup settles. */
  destroyed: string[];
  /** Destroying what was not adopted, then the host sweep; never rejects. */
  cleanup: Promise<void>;
  /** After cleanup: the job folders the last daemon left listed as forgotten are deleted, then its lists; never rejects. */
  hiddenDeleted: Promise<void>;
}

/** A minimal record for a folder without a usable snapshot: enough for the backend to tear down by id. */
function orphanRecord(e: DepotEntry): ContainerRecord {
  return newContainerRecord({ id: e.id, handle: e.id, state: 'born', path: e.path });
}

/**
 * Start a scan of the depot (recover() takes it). The daemon starts it while
 * the backend prepares the host, which may mount the depot meanwhile: recover()
 * then scans again.
 */
export function scanDepot(pool: TaskRunner, depot: string): Promise<DepotScan> {
  return pool.run('state.scanDepot', { depot });
}

export async function recover(
  service: RecoveryTarget,
  backend: Backend,
  pool: TaskRunner,
  log: Logger,
  early?: Promise<DepotScan>,
): Promise<RecoveryReport> {
  const report: RecoveryReport = { recovered: [], destroyed: [], cleanup: Promise.resolve(), hiddenDeleted: Promise.resolve() };
  // How long each phase took, in the 'recovery done' line: the daemon is down meanwhile.
  const ms: Record<string, number> = {};
  let t = performance.now();
  const lap = (phase: string) => {
    const now = performance.now();
    ms[phase] = Math.round(now - t);
    t = now;
  };
  service.watchContainerEvents();
  // An early scan (made while the host was prepared) counts only if the depot is
  // still on the device it read: setupHost may have mounted the depot meanwhile.
  const [earlyScan, dev, jobIds] = await Promise.all([
    early?.catch(() => undefined),
    pool.run('state.deviceOf', { path: service.depot }).catch(() => -1),
    pool.run('state.readText', { path: join(service.depot, JOB_IDS_FILE) }),
  ]);
  const scan = earlyScan && earlyScan.dev !== -1 && earlyScan.dev === dev ? earlyScan : await scanDepot(pool, service.depot);
  const { entries } = scan;
  const ceiling = Number(jobIds?.trim() ?? 0) || 0;
  let highestJob = ceiling;
  lap('scan');

  const discard = async (record: ContainerRecord, why: string) => {
    log.info({ id: record.id, why }, 'recovery: destroying container');
    try {
      await backend.destroy(record);
      await pool.run('state.removeTree', { path: record.path });
    } catch (err) {
      log.error({ id: record.id, err: describeError(err) }, 'recovery: destroy failed; the sweep will retry');
    }
    report.destroyed.push(record.id);
  };

  // Every candidate is asked at once (recoverAll) and destroys run a few at a time:
  // recovery keeps the daemon down, and per-container round trips (host commands
  // cost tens of ms each) made 100 containers take 30 s.
  // Depot order still decides which of two live records with one handle (or one
  // network, uid or port) wins; resources are taken only once a record is known
  // alive, so a dead record never costs a live one its network.
  const candidates: { e: DepotEntry; snap: ContainerRecord }[] = [];
  const discards: { record: ContainerRecord; why: string }[] = [];
  for (const e of entries) {
    for (const j of e.jobs) highestJob = Math.max(highestJob, j.id);
    // Either snapshot shape (the original's, or our record as earlier builds wrote
    // it); the path is where the folder is now, the handle the snapshot's.
    const snap = fromSnapshot(e.snapshot, e.path);
    if (!snap) {
      discards.push({ record: orphanRecord(e), why: 'no snapshot' });
    } else if (snap.state !== 'active' && snap.state !== 'stopped') {
      discards.push({ record: snap, why: `snapshot state ${snap.state}` });
    } else {
      candidates.push({ e, snap });
    }
  }
  const outcomes = await backend.recoverAll(candidates.map(({ snap }) => snap)).catch((err: Error) => candidates.map(() => ({ error: err.message })));
  const alive = outcomes.map((o, i) => {
    if ('error' in o) log.error({ id: candidates[i]!.snap.id, err: o.error }, 'recovery: backend could not re-adopt');
    return 'alive' in o && o.alive;
  });
  lap('recover');
  const snapshots: Promise<void>[] = [];
  for (const [i, { e, snap }] of candidates.entries()) {
    const why = !alive[i]
      ? 'its processes are gone'
      : service.registry.has(snap.handle)
        ? 'duplicate handle'
        : !takeRecorded(service.pools, snap)
          ? 'its network, uid or ports are taken by another container'
          : undefined;
    if (why !== undefined) {
      discards.push({ record: snap, why });
      continue;
    }
    const c = new Container(snap);
    // The file as read: adopt's snapshot is written only if the record differs from it.
    c.snapshotDigest = e.digest ?? snapshotDigest(snapshotText(e.snapshot));
    const known = new Map<number, JobRecord>(snap.jobs.map((j) => [j.id, j]));
    snap.jobs = [];
    // The job folders are the truth about jobs: a folder exists until the job is forgotten.
    for (const found of e.jobs) {
      const rec: JobRecord = known.get(found.id) ?? { id: found.id, state: 'running', privileged: false, discard_output: false };
      if (found.exit_status !== undefined) {
        rec.state = 'exited';
        rec.exit_status = found.exit_status;
      } else {
        rec.state = 'running';
        delete rec.exit_status;
      }
      const job = new Job(rec, c.jobDir(found.id));
      c.addJob(job);
    }
    service.registry.add(c);
    snapshots.push(service.adopt(c));
    report.recovered.push(snap.handle);
  }
  // The snapshots (jobs that ended meanwhile, the current shape) are written while
  // the daemon already serves: a write queued after them by a request coalesces
  // with them, and a drain waits for them.
  void Promise.all(snapshots);
  service.startJobIdsAt(highestJob + 1);
  lap('adopt');

  // Creates are held meanwhile, so no id appears; one a client destroys meanwhile
  // is its Destroy's to tear down, not the sweep's.
  const adopted = service.registry.all().map((c) => c.id);
  report.cleanup = (async () => {
    const queue = [...discards];
    await Promise.all(
      Array.from({ length: Math.min(DISCARD_CONCURRENCY, queue.length) }, async () => {
        for (let d = queue.shift(); d !== undefined; d = queue.shift()) await discard(d.record, d.why);
      }),
    );
    lap('destroy');
    try {
      await backend.sweep(new Set([...adopted, ...service.registry.all().map((c) => c.id)]));
    } catch (err) {
      log.error({ err: describeError(err) }, 'recovery: the sweep of leftovers failed; the next start sweeps again');
    }
    lap('sweep');
    log.info({ recovered: report.recovered.length, destroyed: report.destroyed.length, ms }, 'recovery done');
  })();
  // Folders of jobs linked just before the last daemon stopped (folder-remover.ts):
  // deleted after the cleanup, without holding Creates.
  const hidden = entries.flatMap((e) => e.hidden);
  report.hiddenDeleted = report.cleanup.then(() => service.removeLeftoverJobFolders(hidden, scan.forgottenLists));
  service.holdCreatesUntil(report.cleanup);
  return report;
}
