// Worker-side state tasks: atomic snapshot writes, the depot scan at start,
// folder creation and removal.
// Layer: src/depot/ owns the files of the depot the daemon itself writes
// (snapshot.json, .job_ids); the host state a backend makes is not its business.
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, readdirSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { jobIdOfFolder, readExitStatusSync } from '../jobs/job-files.ts';
import { parse64, stringify64 } from '../protocol/json64.ts';
import { snapshotDigest, snapshotText } from './snapshot-writer.ts';
import { FORGOTTEN_LINE, FORGOTTEN_LIST_PREFIX } from './folder-remover.ts';

/** Folders of forgotten jobs as daemons before the lists hid them: renamed to this prefix and the job id. */
const HIDDEN_PREFIX = '.gone-';

/**
 * Write a file so that a daemon that dies at any point leaves the old or the new
 * content, never a mix: a temporary file, then a rename over the name (the
 * rename is in the kernel once it returns, whatever happens to the process).
 *
 * Synchronous: it runs in a worker, whose calls block only that worker for the
 * few microseconds a small write takes, where async calls would queue three
 * trips on libuv's threadpool, which the whole process shares with the main
 * thread's Info and Link reads.
 *
 * No fsync, as in the original. The only loss it would guard against is a power
 * loss or kernel crash, and after one every container is gone with the host:
 * recovery destroys them all, and a snapshot it cannot read (empty or torn) is
 * handled as a half-made container. And the fsync was not cheap: the
 * depot is btrfs on a loop device, whose flush writes back the whole image file,
 * every other container's copied-in data with it; 8 ms a snapshot quiet (0.65 ms
 * without), far more while others stage, on every request that changes a container.
 */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never made, or already renamed
    }
    throw err;
  }
}

/**
 * The depot's folders, and the device the depot was on while they were read (-1
 * when it changed meanwhile): a daemon scans while it prepares the host and
 * scans again when that mounted the depot meanwhile.
 */
export interface DepotScan {
  dev: number;
  entries: DepotEntry[];
  /** The lists of forgotten jobs' folders the last daemon left (folder-remover.ts): removed once the folders are. */
  forgottenLists: string[];
}

export interface DepotEntry {
  id: string;
  path: string;
  /** Parsed snapshot.json, or undefined when there is none (or it does not parse). */
  snapshot?: unknown;
  /** snapshotDigest of that snapshot as the writer would write it: a restart rewrites only what differs. */
  digest?: string;
  /** Jobs found in <path>/jobs: id and exit status when it has ended. */
  jobs: { id: number; exit_status?: number }[];
  /** Folders of forgotten jobs, listed (or hidden) and not yet deleted when the daemon stopped (folder-remover.ts). */
  hidden: string[];
}

/**
 * The depot as the last daemon left it. Synchronous: it runs in a worker while
 * the daemon is down and nothing else waits on that worker, and a few hundred
 * small reads done in a row take a few ms, where queued on the threadpool one
 * by one they took 100 ms for 100 containers.
 */
async function scanDepot(a: { depot: string }): Promise<DepotScan> {
  mkdirSync(a.depot, { recursive: true });
  const dev = statSync(a.depot).dev;
  const forgotten = readForgottenLists(a.depot);
  const entries = scanFolders(a.depot, forgotten.jobs);
  return { dev: statSync(a.depot).dev === dev ? dev : -1, entries, forgottenLists: forgotten.lists };
}

/** The lists of forgotten jobs in the depot, and the job folders they name (container id -> job folder names). */
function readForgottenLists(depot: string): { lists: string[]; jobs: Map<string, Set<string>> } {
  const lists: string[] = [];
  const jobs = new Map<string, Set<string>>();
  for (const name of listOrNone(depot)) {
    if (!name.startsWith(FORGOTTEN_LIST_PREFIX)) continue;
    const path = join(depot, name);
    lists.push(path);
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    // Only whole lines: a write cut short (a full disk) must not name a shorter job id.
    const lines = text.split('\n');
    lines.pop();
    for (const line of lines) {
      const m = FORGOTTEN_LINE.exec(line);
      if (!m) continue;
      const set = jobs.get(m[1]!) ?? new Set<string>();
      set.add(m[2]!);
      jobs.set(m[1]!, set);
    }
  }
  return { lists, jobs };
}

function scanFolders(depot: string, forgotten: Map<string, Set<string>>): DepotEntry[] {
  const out: DepotEntry[] = [];
  for (const ent of readdirSync(depot, { withFileTypes: true })) {
    if (!ent.isDirectory() || ent.name.startsWith('.')) continue;
    const path = join(depot, ent.name);
    const entry: DepotEntry = { id: ent.name, path, jobs: [], hidden: [] };
    // Temp files of snapshot writes a crash interrupted.
    for (const f of listOrNone(path)) {
      if (f.startsWith('snapshot.json.tmp-')) ignoreGone(() => unlinkSync(join(path, f)));
    }
    try {
      entry.snapshot = parse64(readFileSync(join(path, 'snapshot.json'), 'utf8'));
      // Here rather than on the main thread, which a restart's clients wait for.
      entry.digest = snapshotDigest(snapshotText(entry.snapshot));
    } catch {
      entry.snapshot = undefined;
    }
    const listed = forgotten.get(ent.name);
    for (const name of listOrNone(join(path, 'jobs'))) {
      if (name.startsWith(HIDDEN_PREFIX) || listed?.has(name)) {
        entry.hidden.push(join(path, 'jobs', name));
        continue;
      }
      const id = jobIdOfFolder(name);
      if (id === undefined) continue;
      entry.jobs.push({ id, exit_status: readExitStatusSync(join(path, 'jobs', name)) });
    }
    out.push(entry);
  }
  return out;
}

function listOrNone(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

async function readText(a: { path: string }): Promise<string | undefined> {
  try {
    return await readFile(a.path, 'utf8');
  } catch {
    return undefined;
  }
}

/** What is at each path: a folder, something else, or nothing (Create's rootfs and bind mount checks). */
async function pathKinds(a: { paths: string[] }): Promise<PathKind[]> {
  return Promise.all(
    a.paths.map((p) =>
      stat(p).then(
        (st) => (st.isDirectory() ? 'directory' : 'other'),
        () => 'missing' as const,
      ),
    ),
  );
}

type PathKind = 'directory' | 'other' | 'missing';

/**
 * Create's one trip to the depot: checks the paths the request names (rootfs,
 * bind mount sources) and, when they are all there, makes the container's
 * folder and writes its first snapshot (state born: a crash during the
 * backend's work then leaves a record that recovery destroys). Nothing is made
 * when a path is missing; the kinds say which.
 */
async function prepareContainer(a: { path: string; snapshot: unknown; check: { rootfs?: string; sources: string[] } }): Promise<{
  rootfs?: PathKind;
  sources: PathKind[];
}> {
  const [rootfs, ...sources] = await pathKinds({ paths: [a.check.rootfs ?? '/', ...a.check.sources] });
  const kinds = { rootfs: a.check.rootfs === undefined ? undefined : rootfs, sources };
  if ((kinds.rootfs !== undefined && kinds.rootfs !== 'directory') || sources.includes('missing')) return kinds;
  await mkdir(a.path, { recursive: true, mode: 0o755 });
  writeFileAtomicSync(join(a.path, 'snapshot.json'), `${stringify64(a.snapshot, 1)}\n`);
  return kinds;
}

/**
 * rm -rf. A folder of plain files (a job's: output, status, pid), the common
 * case, goes with one readdir, an unlink each and an rmdir, synchronously in the
 * worker (a few microseconds each, and none of them waits on the threadpool the
 * main thread reads through): a Link removes one such folder per job. Anything
 * else (subfolders, a file, a racing writer) is left to fs.rm, async, as a
 * large tree would hold the worker up.
 */
export async function removeTree(path: string): Promise<void> {
  const whole = () => rm(path, { recursive: true, force: true, maxRetries: 3 });
  let entries;
  try {
    entries = readdirSync(path, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    return whole();
  }
  if (entries.some((e) => e.isDirectory())) return whole();
  try {
    for (const e of entries) ignoreGone(() => unlinkSync(join(path, e.name)));
    ignoreGone(() => rmdirSync(path));
  } catch {
    return whole();
  }
}

/**
 * Each folder of `paths` removed as removeTree does (a batch of finished jobs'
 * folders). It runs on WorkerPool's janitor thread, where nothing a request waits
 * for queues behind it.
 */
async function removeTrees(a: { paths: string[] }): Promise<void> {
  for (const path of a.paths) await removeTree(path).catch(() => {});
}

function ignoreGone(op: () => void): void {
  try {
    op();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export const depotTasks = {
  'state.prepareContainer': prepareContainer,
  'state.pathKinds': pathKinds,
  'state.writeText': async (a: { path: string; text: string }) => writeFileAtomicSync(a.path, a.text),
  /** One write at the end of the file (made when missing): a list of forgotten jobs (folder-remover.ts). */
  'state.appendText': async (a: { path: string; text: string }) => appendFileSync(a.path, a.text, { mode: 0o600 }),
  'state.readText': readText,
  'state.scanDepot': scanDepot,
  'state.deviceOf': async (a: { path: string }) => statSync(a.path).dev,
  'state.mkdir': async (a: { path: string; mode?: number }) => {
    await mkdir(a.path, { recursive: true, mode: a.mode });
  },
  'state.removeTree': (a: { path: string }) => removeTree(a.path),
  'state.removeTrees': removeTrees,
};
