// Worker-side tasks of the insecure backend: a container is a folder, its jobs
// plain processes of the daemon's user.
import { lstat, mkdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { run } from '../../host/command.ts';
import { readExitStatus, readJobPids, isAlive } from '../../jobs/job-files.ts';
import { resolveInside } from './safe-path.ts';

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function create(a: { path: string; root: string; rootfs?: string; bindSources: string[] }): Promise<void> {
  for (const src of a.bindSources) {
    if (!(await exists(src))) throw new Error(`bind mount source ${src} does not exist`);
  }
  if (a.rootfs !== undefined && !(await isDir(a.rootfs))) throw new Error(`rootfs ${a.rootfs} does not exist`);
  await mkdir(a.root, { recursive: true });
  await mkdir(join(a.path, 'jobs'), { recursive: true });
  await mkdir(join(a.path, 'run'), { recursive: true });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Signals each job's process group; returns the dirs of jobs that had one (a job just spawned may not have its pid file yet). */
async function signalAll(dirs: string[], signal: NodeJS.Signals): Promise<Set<string>> {
  const reached = new Set<string>();
  for (const dir of dirs) {
    const pids = await readJobPids(dir);
    if (!pids || !(await isAlive(pids.pid, pids.startTime))) continue;
    reached.add(dir);
    try {
      process.kill(-pids.pid, signal);
    } catch {
      /* already gone */
    }
  }
  return reached;
}

/** Jobs among dirs that have not recorded an exit status and whose supervisor still runs. */
async function running(dirs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const dir of dirs) {
    if ((await readExitStatus(dir)) !== undefined) continue;
    const pids = await readJobPids(dir);
    if (pids && !(await isAlive(pids.supervisorPid, pids.supervisorStartTime))) continue;
    if (!(await exists(dir))) continue;
    out.push(dir);
  }
  return out;
}

/** TERM every job, KILL after the timeout (or at once), and wait until their exits are recorded. */
async function stop(a: { jobDirs: string[]; kill: boolean; timeoutMs: number }): Promise<void> {
  let left = await running(a.jobDirs);
  if (left.length === 0) return;
  if (!a.kill) {
    // Once per job: a job that handles TERM must not see it twice.
    const termed = await signalAll(left, 'SIGTERM');
    const deadline = Date.now() + a.timeoutMs;
    while (left.length > 0 && Date.now() < deadline) {
      await sleep(25);
      left = await running(left);
      for (const dir of await signalAll(left.filter((d) => !termed.has(d)), 'SIGTERM')) termed.add(dir);
    }
  }
  for (let i = 0; left.length > 0 && i < 200; i++) {
    await signalAll(left, 'SIGKILL');
    await sleep(25);
    left = await running(left);
  }
}

/** rsync-like copy: `src/` copies the contents, `src` the entry itself; permissions and symlinks kept. */
async function copyEntry(src: string, contentsOnly: boolean, dst: string, dstIsDirHint: boolean): Promise<string> {
  if (contentsOnly) {
    if (!(await isDir(src))) throw new Error(`${src} is not a directory`);
    await mkdir(dst, { recursive: true });
    await tarPipe(src, '.', dst);
    return dst;
  }
  const st = await lstat(src).catch(() => undefined);
  if (!st) throw new Error(`${src} does not exist`);
  if (st.isDirectory()) {
    await mkdir(dst, { recursive: true });
    await tarPipe(dirname(src), basename(src), dst);
    return join(dst, basename(src));
  }
  const target = dstIsDirHint || (await isDir(dst)) ? join(dst, basename(src)) : dst;
  await mkdir(dirname(target), { recursive: true });
  await run('cp', ['-P', '--preserve=mode,timestamps', '--remove-destination', '--', src, target]);
  return target;
}

async function tarPipe(dir: string, entry: string, dst: string): Promise<void> {
  // Arguments travel as positional parameters, never spliced into the script.
  await run('bash', [
    '-c',
    'set -o pipefail; tar -c --hard-dereference -C "$1" -- "$2" | tar -x -p -C "$3"',
    'copy',
    dir,
    entry,
    dst,
  ]);
}

async function copyIn(a: { root: string; src: string; dst: string }): Promise<void> {
  const dst = await resolveInside(a.root, a.dst, true);
  await copyEntry(a.src.replace(/\/+$/, '') || '/', a.src.endsWith('/'), dst, a.dst.endsWith('/'));
}

/** user[:group] must name an existing user (and group) on the host. */
async function checkOwner(owner: string): Promise<void> {
  const [user, group] = owner.split(':');
  await run('getent', ['passwd', user]).catch(() => {
    throw new Error(`unknown owner: no user ${user} on the host`);
  });
  if (group) {
    await run('getent', ['group', group]).catch(() => {
      throw new Error(`unknown owner: no group ${group} on the host`);
    });
  }
}

async function copyOut(a: { root: string; src: string; dst: string; owner?: string }): Promise<void> {
  // An unknown owner fails before anything is copied.
  if (a.owner) await checkOwner(a.owner);
  const contentsOnly = a.src.endsWith('/');
  const src = await resolveInside(a.root, a.src, contentsOnly);
  const result = await copyEntry(src, contentsOnly, a.dst, a.dst.endsWith('/'));
  if (a.owner) await run('chown', ['-R', '-h', '--', a.owner, result]);
}

export const insecureTasks = {
  'insecure.create': create,
  'insecure.stop': stop,
  'insecure.copyIn': copyIn,
  'insecure.copyOut': copyOut,
};
