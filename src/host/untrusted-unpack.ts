// The host end of a copy out of a container: a tar stream that the container made,
// and so a hostile one (a privileged job can replace the container's tar). It is
// unpacked by the host's tar run as an unprivileged uid with no capabilities and no
// new privileges (so it cannot make device nodes, setuid-root files or write outside
// its folder), into a fresh private staging folder; what it made is then checked as
// root (only regular files, folders and symlinks stay; no setuid/setgid/sticky bits;
// hard links materialised, so no inode is shared with anything else), given its
// owner, and moved into place entry by entry without ever following a symlink that
// was in the destination before.
import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, constants, lchown, lstat, mkdir, readdir, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { runHost, runPipeline, type PipelineCommand } from './run.ts';
import { realDirs } from './real-path.ts';
import { WardenError } from '../model/errors.ts';

/** Owner of copied files when the request names none: root, as the original (rsync as root) left them. */
const DEFAULT_OWNER = '0:0';
/** Where the staging folder lives in the destination: a name no archive entry can guess. */
const STAGING_PREFIX = '.warden-copy-';

export interface UnpackOptions {
  /** What is being done, for error messages ("copy_out abc:/x -> /y"). */
  context: string;
  /** Absolute host folder to unpack into; made (as real folders) when missing. */
  dst: string;
  /** Everything at or below this path is taken as it is (a trusted prefix); default '/': all of dst is checked. */
  trustedBase?: string;
  /** Unprivileged uid (and gid) the host's tar runs as when the daemon is root. */
  uid: number;
  /** `user[:group]` that gets what was copied and, as in the original, dst itself and all below it. */
  owner?: string;
  /** Place the stream's one top-level entry under this name in dst (rsync's `cp a b` form). */
  as?: string;
  timeoutMs: number;
}

/** Only device nodes the unprivileged tar could not make: skipped, as the original's rsync skipped them. */
const SKIPPED_LINE = /^tar: .*: Cannot mknod: Operation not permitted$|^tar: Exiting with failure status due to previous errors$/;

/** How long a source may go on once tar has read the whole archive. */
const SOURCE_GRACE_MS = 10_000;

const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * Unpacks the tar stream that the `source` command writes into opts.dst. The source
 * starts only once the staging folder is ready; both run as one pipeline of the
 * thread's spawner, so the container's bytes never pass through the daemon. Either
 * side's failure rejects, with both sides' stderr.
 */
export async function unpackUntrusted(source: PipelineCommand, opts: UnpackOptions): Promise<void> {
  const { context, dst } = opts;
  const staging = join(dst, `${STAGING_PREFIX}${randomBytes(16).toString('hex')}`);
  const inner = join(staging, 'x');
  let made = false;
  try {
    await realDirs(dst, opts.trustedBase ?? '/', context);
    // Root's, 0700: nothing else on the host can reach into it while the copy runs.
    await mkdir(staging, { mode: 0o700 });
    made = true;
    await mkdir(inner, { mode: 0o700 });
    if (isRoot()) await chown(inner, opts.uid, opts.uid);
    await extract(source, inner, opts);
    const owner = opts.owner || (isRoot() ? DEFAULT_OWNER : undefined);
    // A numeric owner is set by the walk that checks every entry anyway; names
    // resolve through the host's users, as chown does (-R never follows a symlink, -h changes the link).
    const ids = owner === undefined ? undefined : numericOwner(owner);
    await sanitize(inner, ids);
    if (ids) await lchown(inner, ids.uid, ids.gid);
    else if (owner !== undefined) await chownTree(owner, inner, context);
    await merge(inner, dst, context, opts.as);
  } finally {
    if (made) await rm(staging, { recursive: true, force: true });
  }
  // The original ran `chown -R owner dst_path`: dst itself and everything below it.
  if (opts.owner) await chownTree(opts.owner, opts.as === undefined ? dst : join(dst, opts.as), context);
}

/** `uid:gid` or `uid` (group left as it is, -1), as chown takes them; undefined for names. */
export function numericOwner(owner: string): { uid: number; gid: number } | undefined {
  const m = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(owner);
  if (!m) return undefined;
  const uid = Number(m[1]);
  const gid = m[2] === undefined ? -1 : Number(m[2]);
  // Past 2^32 - 2 (the largest id; 2^32 - 1 means "unchanged") chown would refuse it too: leave it to chown's message.
  if (uid > 0xfffffffe || gid > 0xfffffffe) return undefined;
  return { uid, gid };
}

async function chownTree(owner: string, path: string, context: string): Promise<void> {
  await runHost('chown', ['-R', '-h', '--', owner, path], { context });
}

async function extract(source: PipelineCommand, cwd: string, opts: UnpackOptions): Promise<void> {
  // -p keeps the modes (setuid bits go in sanitize); the process may own only what it makes.
  const tar = ['tar', '-x', '-p', '--no-same-owner', '--delay-directory-restore', '-f', '-'];
  const drop = isRoot()
    ? ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', '--bounding-set=-all', '--inh-caps=-all', '--no-new-privs', '--']
    : [];
  const [file, ...args] = [...drop, ...tar];
  // cwd is entered as root before the uid changes: tar never needs to traverse the 0700 staging folder.
  const r = await runPipeline(
    source,
    { file: file!, args, cwd, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' }, cleanEnv: true },
    // What the source still writes once tar is done is dropped, so that it can end; it gets a moment to.
    { context: opts.context, timeoutMs: opts.timeoutMs, sourceGraceMs: SOURCE_GRACE_MS },
  );
  const problems: string[] = [];
  if (r.sink.failure !== undefined) {
    const lines = r.sink.stderr.split('\n').filter((l) => l !== '');
    const onlySkipped = r.sink.exitCode === 2 && lines.length > 0 && lines.every((l) => SKIPPED_LINE.test(l));
    if (!onlySkipped) problems.push(`destination: ${r.sink.failure}`);
  }
  if (r.stoppedAfterGrace) {
    if (problems.length === 0) problems.push('source: went on writing after the end of the archive');
  } else if (r.source.failure !== undefined) {
    problems.push(`source: ${r.source.failure}`);
  }
  if (problems.length) throw new WardenError(`${opts.context}: ${problems.join('; ')}`, { code: 'invalid' });
}

/**
 * Walks what the unprivileged tar made (nothing else writes there now) and keeps only
 * regular files, folders and symlinks, with permission bits only (no 07000), and
 * every regular file its own inode; with ids, each kept entry gets that owner (the
 * link itself for a symlink: lchown never follows one).
 */
async function sanitize(dir: string, ids?: { uid: number; gid: number }): Promise<void> {
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (st.isDirectory()) {
      await sanitize(p, ids);
      await chmod(p, st.mode & 0o777);
    } else if (st.isFile()) {
      if (st.nlink > 1) {
        // A hard link (to a sibling, or anything else): make it a file of its own.
        const copy = join(dir, `${STAGING_PREFIX}${randomBytes(8).toString('hex')}`);
        await copyFile(p, copy, constants.COPYFILE_EXCL);
        await rename(copy, p);
      }
      await chmod(p, st.mode & 0o777);
    } else if (!st.isSymbolicLink()) {
      // FIFOs and anything else the stream made: not copied (the original skipped them too).
      await unlink(p);
      continue;
    }
    if (ids) await lchown(p, ids.uid, ids.gid);
  }
}

/**
 * Moves every entry of `from` into `to` (a real folder). A folder merges into an
 * existing real folder; anything else replaces what is there by rename, which
 * replaces a symlink instead of writing through it. A symlink that was in the
 * destination is never followed: it is replaced, or, where it stands for a folder
 * the copy brings, removed first.
 */
async function merge(from: string, to: string, ctx: string, as?: string): Promise<void> {
  const names = await readdir(from);
  if (as !== undefined && names.length > 1) throw new WardenError(`${ctx}: expected one entry, got ${names.length}`, { code: 'invalid' });
  for (const name of names) {
    const s = join(from, name);
    const t = join(to, as ?? name);
    const incoming = await lstat(s);
    const existing = await lstat(t).catch(() => undefined);
    if (incoming.isDirectory() && existing?.isDirectory()) {
      await merge(s, t, ctx);
      await chmod(t, incoming.mode & 0o777);
      await rmdir(s);
      continue;
    }
    if (existing?.isDirectory()) throw new WardenError(`${ctx}: cannot replace the folder ${t} with a file`, { code: 'invalid' });
    if (incoming.isDirectory() && existing) await unlink(t);
    await rename(s, t);
  }
}
