// How a job runs: `runc exec --process <job.dir>/process.json` with /bin/bash
// reading the script from stdin. Pure (no I/O): it runs on the daemon's main
// thread; the worker that starts the job writes the process spec into the job's
// folder (JobLaunch.files), and the supervisor hands runc the job_end file as
// fd 3 (JobLaunch.fd3): the supervisor execs runc itself, no shell between. No
// --pid-file: runc writes it O_SYNC, a disk flush per job; kill and stop find the
// job's process from runc's pid instead (leader.ts).
import { join } from 'node:path';
import type { ContainerRecord } from '../../../model/records.ts';
import type { JobLaunch, JobSpec } from '../../backend.ts';
import { DEFAULT_ROOT_CAPS, PATH_ENV } from '../bundle/spec.ts';
import type { Runtime } from '../runtime/runc.ts';
import { JOBS_GROUP_SUFFIX } from '../cgroups/cgroups.ts';
import { stringify64 } from '../../../protocol/json64.ts';

/** Warden rlimit names → OCI rlimit types. */
const RLIMITS: Record<string, string> = {
  as: 'RLIMIT_AS', core: 'RLIMIT_CORE', cpu: 'RLIMIT_CPU', data: 'RLIMIT_DATA', fsize: 'RLIMIT_FSIZE',
  locks: 'RLIMIT_LOCKS', memlock: 'RLIMIT_MEMLOCK', msgqueue: 'RLIMIT_MSGQUEUE', nice: 'RLIMIT_NICE',
  nofile: 'RLIMIT_NOFILE', nproc: 'RLIMIT_NPROC', rss: 'RLIMIT_RSS', rtprio: 'RLIMIT_RTPRIO',
  sigpending: 'RLIMIT_SIGPENDING', stack: 'RLIMIT_STACK',
};

/** Hard limits of the daemon's process by Warden name (from the setupHost task): without CAP_SYS_RESOURCE nothing can go above them. */
export type HardLimits = Record<string, number>;

/** runc's process spec of the job, in its folder. */
const PROCESS_FILE = 'process.json';

/**
 * The process runc starts: a bash that runs the job's bash (the script on stdin)
 * as its child and writes to fd 3 (the job folder's job_end, see
 * job-supervisor.sh) how it ended, as bash's `jobs -l` says it in the C locale:
 * runc reports a job killed by signal N as 128+N, like `exit 128+N`, and the
 * original reported signal deaths as 255. Job control gives the job its own
 * process group without ignoring SIGINT/SIGQUIT; it is off again while waiting
 * so that a stopped job is waited for, not reported. TERM and friends sent to
 * every process of the container (stop) must not end the wrapper before its job:
 * caught until the job is forked (the job starts with them at their defaults), then
 * ignored, so that they never interrupt the wait: a TERM arriving as the job ended
 * made bash lose the job's status (`wait` gave -1, the wrapper exited 255 and wrote
 * no job_end), and a job that handled TERM with `exit 37` was reported as 255.
 */
export const JOB_WRAPPER = [
  'set -m',
  "trap 'LC_ALL=C; jobs -l >&3' CHLD",
  "trap 'again=1' TERM INT HUP QUIT",
  '/bin/bash 3>&- <&0 &',
  'c=$!',
  "trap '' TERM INT HUP QUIT",
  'set +m',
  'again=1',
  'while ((again)); do again=0; wait "$c"; s=$?; done',
  'exit "$s"',
].join('\n');

export function processSpec(c: ContainerRecord, job: JobSpec, hard: HardLimits = {}): Record<string, unknown> {
  const root = job.privileged;
  const uid = root ? 0 : c.uid;
  const home = root ? '/root' : '/home/vcap';
  const user = root ? 'root' : 'vcap';
  const env = new Map<string, string>([['PATH', PATH_ENV.slice(5)]]);
  for (const [k, v] of Object.entries(job.env ?? {})) env.set(k, v);
  env.set('HOME', home);
  env.set('USER', user);
  const rlimits = Object.entries(job.rlimits ?? {})
    .filter(([name, v]) => RLIMITS[name] !== undefined && (typeof v === 'bigint' || Number.isFinite(v)) && v >= 0)
    .map(([name, v]) => {
      // Compared as is (a bigint and a number compare exactly): no rounding of 2^64-1.
      const h = hard[name];
      const value = h !== undefined && h < v ? h : v;
      return { type: RLIMITS[name], hard: value, soft: value };
    });
  const caps = root ? DEFAULT_ROOT_CAPS : [];
  return {
    terminal: false,
    user: { uid, gid: uid, additionalGids: [] },
    args: ['/bin/bash', '-c', JOB_WRAPPER, 'warden-job'],
    env: [...env].map(([k, v]) => `${k}=${v}`),
    cwd: home,
    capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
    noNewPrivileges: !root,
    rlimits,
  };
}

/** The supervisor runs argv with the script on stdin; argv's exit status is the job's (128+N when killed by signal N: job_end tells which). */
export function jobLaunch(rt: Runtime, c: ContainerRecord, job: JobSpec, hard: HardLimits = {}, supervisorCgroupProcs?: string): JobLaunch {
  const spec = stringify64(processSpec(c, job, hard));
  const memory = (c.backend as { cgroups?: { memory?: string } } | undefined)?.cgroups?.memory;
  return {
    argv: [rt.binary, '--root', rt.root, 'exec', '--preserve-fds', '1', '--process', join(job.dir, PROCESS_FILE), c.id],
    files: { [PROCESS_FILE]: spec },
    fd3: 'job_end',
    env: {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      // The supervisor outlives the daemon: it leaves the daemon's own cgroup first (job-supervisor.sh).
      ...(supervisorCgroupProcs ? { WARDEN_SUPERVISOR_CGROUP_PROCS: supervisorCgroupProcs } : {}),
    },
    cwd: job.dir,
    // Memory only, in the container's jobs group beside its own: the pids and freezer
    // groups list the container's own processes (stop and destroy signal those), and
    // a supervisor must outlive its job.
    ...(memory === undefined ? {} : { cgroupProcs: [join(`${memory}${JOBS_GROUP_SUFFIX}`, 'cgroup.procs')] }),
  };
}
