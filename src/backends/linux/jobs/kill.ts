// killJob: SIGKILL every process of one job at once. A job is the session that
// `runc exec` started (runc makes the job's wrapper a session leader, see
// leader.ts): every process of the container in that session dies, and the
// runtime process that waits for it.
import type { ContainerRecord } from '../../../model/records.ts';
import { readPids } from '../cgroups/cgroups.ts';
import { signal } from '../../../host/procfs.ts';
import { liveFacts } from '../container/facts.ts';
import { readExitStatus, readJobPids } from '../../../jobs/job-files.ts';
import { jobLeader, statAll } from './leader.ts';

/** How long a kill waits for the leader of a job that is just starting. */
const LEADER_WAIT_MS = 2_000;
const LOOK_AGAIN_MS = 20;

export async function killJobProcesses(c: ContainerRecord, job: { id: number; dir: string }): Promise<void> {
  const f = liveFacts(c);
  // A job killed as it starts (its output passed the limit within milliseconds)
  // may not be in the container yet: wait for it, always. Not waiting let `yes`
  // run on past its kill and fill the depot (41 GB in 4 minutes, in a CI run).
  const deadline = Date.now() + LEADER_WAIT_MS;
  let leader: number | undefined;
  for (;;) {
    const pids = await readJobPids(job.dir);
    if (pids) leader = await jobLeader(pids, await statAll(await readPids(f.cgroups)));
    if (leader !== undefined || Date.now() >= deadline || (await readExitStatus(job.dir)) !== undefined) break;
    await new Promise((r) => setTimeout(r, LOOK_AGAIN_MS));
  }
  if (leader === undefined || leader === f.initPid) return;
  for (let round = 0; round < 3; round++) {
    let found = 0;
    for (const st of await statAll(await readPids(f.cgroups))) {
      if (st.session === leader || st.pid === leader) {
        signal(st.pid, 'SIGKILL');
        found++;
      }
    }
    if (found === 0) break;
    await new Promise((r) => setTimeout(r, LOOK_AGAIN_MS));
  }
}
