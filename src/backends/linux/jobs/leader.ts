// Which process in the container is a job's: the one its `runc exec` started.
// runc's init stages are clones of runc (CLONE_PARENT), and the last one calls
// setsid() and execs the job's wrapper; runc waits for it, so it stays runc's
// child. Its host pid is therefore the child of the job's runc (the supervisor
// records runc's pid and start time in the job's `pid` file) that leads a session
// of its own, in the container's cgroup. Read this way, no pid file is written
// per job: runc's --pid-file opens its file O_SYNC, a flush of the depot's disk
// that cost 5-6 ms of a 25 ms Run.
import type { ProcStat } from '../../../host/procfs.ts';
import { isSameProcess, procStat } from '../../../host/procfs.ts';
import type { JobPids } from '../../../jobs/job-files.ts';

/** Stats of the processes in a container's cgroup, read once for several jobs. */
export async function statAll(pids: readonly number[]): Promise<ProcStat[]> {
  const out: ProcStat[] = [];
  for (const pid of pids) {
    const st = await procStat(pid);
    if (st) out.push(st);
  }
  return out;
}

/**
 * The job's session leader among the container's processes: undefined while runc
 * has not started it yet, and once runc is gone (the job ended).
 */
export async function jobLeader(job: JobPids, container: readonly ProcStat[]): Promise<number | undefined> {
  const found = container.find((st) => st.ppid === job.pid && st.session === st.pid);
  if (found === undefined) return undefined;
  // A reused pid is not the job's runc: it must still be the process the supervisor recorded.
  return (await isSameProcess(job.pid, job.startTime)) ? found.pid : undefined;
}
