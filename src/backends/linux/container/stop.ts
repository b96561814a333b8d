// stop: TERM to every process of the container except its init, KILL what is left
// after the timeout (kill: KILL at once). The init (and the container) stays until
// destroy. The init's own session holds only the init: jobs come in through
// `runc exec`, which puts each in a new session, so "not in the init's session"
// is exactly "everything but the init".
import { access, readdir } from '../../../host/thread-fs.ts';
import { join } from 'node:path';
import type { ContainerRecord } from '../../../model/records.ts';
import { jobIdOfFolder, readJobPids } from '../../../jobs/job-files.ts';
import { readPids } from '../cgroups/cgroups.ts';
import { jobLeader, statAll } from '../jobs/leader.ts';
import { signal, isSameProcess, type ProcStat } from '../../../host/procfs.ts';
import { liveFacts } from './facts.ts';

export const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 50;

async function nonInitPids(c: ContainerRecord): Promise<number[]> {
  const f = liveFacts(c);
  return (await statAll(await readPids(f.cgroups))).filter((st) => st.pid !== f.initPid && st.session !== f.initPid).map((st) => st.pid);
}

/** How long a Stop waits for jobs that are still being started (runc exec's setup). */
const STARTING_WAIT_MS = 5_000;

const exists = (path: string) => access(path).then(() => true, () => false);

/**
 * Whether some job of c is still on its way in: its folder has no exit status and
 * its leader is not in the container yet (see leader.ts), and its supervisor or
 * runc exec is alive or has not recorded its pids yet. A kill before then would
 * miss the job, which would then run on in a stopped container.
 */
async function jobsStarting(c: ContainerRecord): Promise<boolean> {
  const jobs = join(c.path, 'jobs');
  let container: ProcStat[] | undefined;
  for (const name of await readdir(jobs).catch(() => [] as string[])) {
    if (jobIdOfFolder(name) === undefined) continue;
    const dir = join(jobs, name);
    if (await exists(join(dir, 'exit_status'))) continue;
    const pids = await readJobPids(dir);
    if (!pids) return true;
    container ??= await statAll(await readPids(liveFacts(c).cgroups));
    if ((await jobLeader(pids, container)) !== undefined) continue;
    if ((await isSameProcess(pids.pid, pids.startTime)) || (await isSameProcess(pids.supervisorPid, pids.supervisorStartTime))) return true;
  }
  return false;
}

export async function stopContainerProcesses(c: ContainerRecord, kill: boolean, timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
  // Let jobs that are being started get into the container first (bounded): then
  // the signals below reach them.
  const startingDeadline = Date.now() + STARTING_WAIT_MS;
  while (Date.now() < startingDeadline && (await jobsStarting(c))) await new Promise((r) => setTimeout(r, 20));
  const first = await nonInitPids(c);
  if (first.length === 0) return;
  for (const pid of first) signal(pid, kill ? 'SIGKILL' : 'SIGTERM');
  const deadline = Date.now() + (kill ? 0 : timeoutMs);
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const left = await nonInitPids(c);
    if (left.length === 0) return;
    if (Date.now() >= deadline) break;
  }
  // KILL until nothing is left (new forks may race the first round); bounded.
  const killDeadline = Date.now() + 5_000;
  for (;;) {
    const left = await nonInitPids(c);
    if (left.length === 0) return;
    if (Date.now() >= killDeadline) {
      throw new Error(`stop ${c.id}: ${left.length} processes survive SIGKILL (pids ${left.slice(0, 10).join(' ')}; in D state?)`);
    }
    for (const pid of left) signal(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
