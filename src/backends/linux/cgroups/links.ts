// The original's view of container cgroups: it mounted each v1 hierarchy at
// /tmp/warden/cgroup/<subsystem> and named a container's group instance-<id>
// there, and operators' tools and the original's specs read
// /tmp/warden/cgroup/memory/instance-<id>/memory.limit_in_bytes. Our groups sit
// under each daemon's parent (<own>/warden-<tag>/instance-<id>), so each container
// gets one symlink per controller, /tmp/warden/cgroup/<controller>/instance-<id>
// -> its real group: made at create and recovery, removed at destroy and by the
// boot sweep. Symlinks rather than bind mounts of the hierarchies: several daemons
// (depots) on one host each keep their containers there without fighting over one
// mount point, and a symlink left by a crash is a name in /tmp, not a mount.
import { mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { lstat, mkdir, readdir, readlink, unlink } from '../../../host/thread-fs.ts';
import { join } from 'node:path';
import { instanceName } from '../paths.ts';
import type { CgroupPaths } from './cgroups.ts';

export const CGROUP_LINK_ROOT = '/tmp/warden/cgroup';

/** Controllers that get a link: v1 subsystems (not the v2 group, not named hierarchies like name=systemd). */
function linked(paths: CgroupPaths): Array<[string, string]> {
  return Object.entries(paths).filter(([c]) => c !== 'unified' && !c.includes('='));
}

/**
 * Makes root (and its parents) as root-owned directories; refuses a symlink or a
 * folder someone else owns there: /tmp is everyone's, and links made through a
 * planted path would go where that someone chose.
 */
export async function prepareLinkRoot(root: string): Promise<void> {
  const parts = root.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const dir = `/${parts.slice(0, i).join('/')}`;
    const st = await lstat(dir).catch(() => undefined);
    if (!st) {
      await mkdir(dir, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      continue;
    }
    // /tmp itself is root's, sticky and world-writable: only what we make under it must be ours alone.
    if (!st.isDirectory() || st.uid !== 0 || (dir !== '/tmp' && st.mode & 0o022)) {
      throw new Error(`${dir} must be a directory owned by root and writable by root only (for ${root}); remove it and start again`);
    }
  }
}

/** Controller folders under a link root this thread has made (or found): a restart then does not make each again per container. */
const madeDirs = new Set<string>();

/**
 * Synchronous (a worker's): a few operations in /tmp per controller, which at a
 * restart, for hundreds of containers, took longer queued on the threadpool than
 * done in a row. A link already right (every restart) costs one readlink; for a
 * new container (`fresh`) the link is made first, one symlink each, and looked at
 * only if it is there after all: a failed call costs Node an exception object,
 * eight a create otherwise.
 */
export async function linkContainerCgroups(root: string, id: string, paths: CgroupPaths, opts: { fresh?: boolean } = {}): Promise<void> {
  for (const [controller, dir] of linked(paths)) {
    const sub = join(root, controller);
    if (!madeDirs.has(sub)) {
      mkdirSync(sub, { recursive: true, mode: 0o755 });
      madeDirs.add(sub);
    }
    const link = join(sub, instanceName(id));
    if (opts.fresh && madeNew(dir, link)) continue;
    let target: string | undefined;
    try {
      target = readlinkSync(link);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // EINVAL: there, and not a symlink.
      if (code === 'EINVAL') throw new Error(`${link} exists and is not a symlink`);
      if (code !== 'ENOENT') throw err;
    }
    if (target === dir) continue;
    if (target !== undefined) unlinkSync(link);
    try {
      symlinkSync(dir, link);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // The folder went since it was made (a clean-up of /tmp): make it again.
      mkdirSync(sub, { recursive: true, mode: 0o755 });
      symlinkSync(dir, link);
    }
  }
}

/** Makes link -> dir if nothing is there (true); false if something is. */
function madeNew(dir: string, link: string): boolean {
  try {
    symlinkSync(dir, link);
    return true;
  } catch (err) {
    // ENOENT: the folder went since it was made; the usual path makes it again.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' || (err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Removes the container's links under every controller; missing ones are fine. */
export async function unlinkContainerCgroups(root: string, id: string): Promise<void> {
  for (const controller of await readdir(root).catch(() => [] as string[])) {
    const link = join(root, controller, instanceName(id));
    const st = await lstat(link).catch(() => undefined);
    if (st?.isSymbolicLink()) {
      await unlink(link).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }
}

/**
 * Boot sweep: removes links into one of our parents (so never another daemon's) of
 * containers that orphan() says no one claims.
 */
export async function sweepCgroupLinks(root: string, parents: string[], orphan: (id: string) => boolean): Promise<void> {
  for (const controller of await readdir(root).catch(() => [] as string[])) {
    const sub = join(root, controller);
    for (const name of await readdir(sub).catch(() => [] as string[])) {
      const m = /^instance-(.+)$/.exec(name);
      if (!m || !orphan(m[1])) continue;
      const target = await readlink(join(sub, name)).catch(() => undefined);
      if (target && parents.some((p) => target.startsWith(`${p}/`))) {
        await unlink(join(sub, name)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
    }
  }
}
