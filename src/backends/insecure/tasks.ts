// Worker-side tasks of the insecure backend: a container is a folder, its jobs
// plain processes of the daemon's user.
import { lstat, mkdir, rename, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { runHost } from '../../host/run.ts';
import { assertNoSymlinks } from '../../host/real-path.ts';
import { unpackUntrusted } from '../../host/untrusted-unpack.ts';
import { readExitStatus, readJobPids} from '../../jobs/job-files.ts';
import { resolveInside } from './safe-path.ts';
import { WardenError } from '../../model/errors.ts';
import { isSameProcess } from '../../host/procfs.ts';

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
    if (!(await exists(src))) throw new WardenError(`bind mount source ${src} does not exist`, { code: 'not_found' });
  }
  if (a.rootfs !== undefined && !(await isDir(a.rootfs))) throw new WardenError(`rootfs ${a.rootfs} does not exist`, { code: 'not_found' });
  await mkdir(a.root, { recursive: true });
  await mkdir(join(a.path, 'jobs'), { recursive: true });
  await mkdir(join(a.path, 'run'), { recursive: true });
}

/**
 * A container made by an older build kept its root at tmp/rootfs; the original's
 * (and now our) place is root/. Renamed once at recovery: running jobs keep their cwd.
 */
async function adoptRoot(a: { path: string; root: string }): Promise<void> {
  const old = join(a.path, 'tmp', 'rootfs');
  if (!(await exists(a.root)) && (await lstat(old).catch(() => undefined))?.isDirectory()) await rename(old, a.root);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Signals each job's process group; returns the dirs of jobs that had one (a job just spawned may not have its pid file yet). */
async function signalAll(dirs: string[], signal: NodeJS.Signals): Promise<Set<string>> {
  const reached = new Set<string>();
  for (const dir of dirs) {
    const pids = await readJobPids(dir);
    if (!pids || !(await isSameProcess(pids.pid, pids.startTime))) continue;
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
    if (pids && !(await isSameProcess(pids.supervisorPid, pids.supervisorStartTime))) continue;
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

const COPY_TIMEOUT_MS = 10 * 60_000;
/** The uid the host's tar unpacks as when the daemon is root: nobody's, without capabilities. */
const UNPACK_UID = 65534;

/**
 * rsync-like copy from `src` (a host path) into `dst`: `src/` copies the contents,
 * `src` the entry itself; a single file goes to `dst/<name>` when dst is a folder (or
 * ends in '/'), else to dst itself. Permissions (no setuid bits) and symlinks are
 * kept, hard links materialised. What lands in dst goes through unpackUntrusted,
 * so a symlink a job left there is replaced, never written through.
 */
async function copyEntry(a: { src: string; contentsOnly: boolean; dst: string; dstIsDirHint: boolean; trustedBase: string; owner?: string; context: string }): Promise<void> {
  const st = await lstat(a.src).catch(() => undefined);
  if (!st) throw new WardenError(`${a.src} does not exist`, { code: 'not_found' });
  if (a.contentsOnly && !st.isDirectory()) throw new WardenError(`${a.src} is not a directory`, { code: 'invalid' });
  let into = a.dst;
  let as: string | undefined;
  if (!a.contentsOnly && !st.isDirectory() && !a.dstIsDirHint && !(await lstat(a.dst).catch(() => undefined))?.isDirectory()) {
    into = dirname(a.dst);
    as = basename(a.dst);
  }
  const [dir, entry] = a.contentsOnly ? [a.src, '.'] : [dirname(a.src), basename(a.src)];
  await unpackUntrusted({ file: 'tar', args: ['-c', '--hard-dereference', '-C', dir, '--', entry] }, {
    context: a.context, dst: into, trustedBase: a.trustedBase, uid: UNPACK_UID, owner: a.owner, as, timeoutMs: COPY_TIMEOUT_MS,
  });
}

async function copyIn(a: { root: string; src: string; dst: string }): Promise<void> {
  const context = `copy_in ${a.src} -> ${a.dst}`;
  const src = a.src.replace(/\/+$/, '') || '/';
  // Read as the daemon's user: no symlink may redirect what is read.
  await assertNoSymlinks(src, a.src.endsWith('/'), context);
  const dst = await resolveInside(a.root, a.dst, true);
  await copyEntry({ src, contentsOnly: a.src.endsWith('/'), dst, dstIsDirHint: a.dst.endsWith('/'), trustedBase: a.root, context });
}

/** user[:group] must name an existing user (and group) on the host. */
async function checkOwner(owner: string): Promise<void> {
  const [user, group] = owner.split(':');
  await runHost('getent', ['passwd', user], { context: 'copy_out owner' }).catch(() => {
    throw new WardenError(`unknown owner: no user ${user} on the host`, { code: 'invalid' });
  });
  if (group) {
    await runHost('getent', ['group', group], { context: 'copy_out owner' }).catch(() => {
      throw new WardenError(`unknown owner: no group ${group} on the host`, { code: 'invalid' });
    });
  }
}

async function copyOut(a: { root: string; src: string; dst: string; owner?: string }): Promise<void> {
  const context = `copy_out ${a.src} -> ${a.dst}`;
  // An unknown owner fails before anything is copied.
  if (a.owner) await checkOwner(a.owner);
  const contentsOnly = a.src.endsWith('/');
  const src = await resolveInside(a.root, a.src, contentsOnly);
  await copyEntry({ src, contentsOnly, dst: a.dst, dstIsDirHint: a.dst.endsWith('/'), trustedBase: '/', owner: a.owner, context });
}

export const insecureTasks = {
  'insecure.create': create,
  'insecure.adoptRoot': adoptRoot,
  'insecure.stop': stop,
  'insecure.copyIn': copyIn,
  'insecure.copyOut': copyOut,
};
