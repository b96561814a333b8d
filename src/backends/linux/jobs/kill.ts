// killJob: SIGKILL every process of one job at once. A job is the session that
// `runc exec` started (runc makes the job's bash a session leader; its pid is in
// <job.dir>/container.pid): every process of the container in that session dies,
// and the runtime process that waits for it.
import { readFile } from 'node:fs/promises';
import type { ContainerRecord } from '../../../model/records.ts';
import { readPids } from '../cgroups/cgroups.ts';
import { procStat, signal } from '../../../host/procfs.ts';
import { liveFacts } from '../container/facts.ts';
import { jobPidFile } from './launch.ts';
import { readExitStatus } from '../../../jobs/job-files.ts';

/** How long a kill waits for the pid file of a job that is just starting. */
const PID_FILE_WAIT_MS = 2_000;

/**
 * The job's session leader from the pid file runc writes once the job's bash
 * runs; undefined when the job ended first or the file never came.
 */
async function readPidFile(dir: string, waitMs: number): Promise<number | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const text = await readFile(jobPidFile(dir), 'utf8').catch(() => '');
    const pid = Number(text.trim());
    if (pid > 0) return pid;
    if (Date.now() >= deadline || (await readExitStatus(dir)) !== undefined) return undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function killJobProcesses(c: ContainerRecord, job: { id: number; dir: string }): Promise<void> {
  const f = liveFacts(c);
  // A job killed as it starts (its output passed the limit within milliseconds)
  // may have no pid file yet: wait for it, always. Not waiting when the daemon
  // had no pid of its own for the job let `yes` run on past its kill and fill
  // the depot (41 GB in 4 minutes, in a CI run).
  const leader = await readPidFile(job.dir, PID_FILE_WAIT_MS);
  if (leader !== undefined && leader !== f.initPid) {
    for (let round = 0; round < 3; round++) {
      let found = 0;
      for (const pid of await readPids(f.cgroups)) {
        const st = await procStat(pid);
        if (st && (st.session === leader || pid === leader)) {
          signal(pid, 'SIGKILL');
          found++;
        }
      }
      if (found === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
