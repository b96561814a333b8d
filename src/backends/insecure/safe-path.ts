// Resolve a container path to a host path inside the container's root, the way
// a chroot would: `..` stops at the root and absolute symlinks restart at it, so
// no path or symlink can lead outside. (The insecure backend has no mount
// namespace to do this for us.)
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';

const MAX_SYMLINKS = 40;

export class PathEscapeError extends Error {
  override name = 'PathEscapeError';
  /** The request asks for what cannot be (see ErrorCode in src/model/errors.ts). */
  readonly code = 'invalid';
}

/**
 * Host path of `path` (absolute or relative to the root) under `root`.
 * Symlinks in every component but the last are followed inside the root;
 * the last is followed too when `followLast`. Missing components are kept as named.
 */
export async function resolveInside(root: string, path: string, followLast = false): Promise<string> {
  const pending = path.split('/').filter((p) => p !== '' && p !== '.');
  const parts: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '..') {
      parts.pop();
      continue;
    }
    const candidate = join(root, ...parts, name);
    const isLast = pending.length === 0;
    let st;
    try {
      st = await lstat(candidate);
    } catch {
      // Does not exist (yet): the rest is taken literally, with `..` still clamped.
      parts.push(name);
      continue;
    }
    if (st.isSymbolicLink() && (!isLast || followLast)) {
      if (++hops > MAX_SYMLINKS) throw new PathEscapeError(`too many levels of symbolic links in ${path}`);
      const target = await readlink(candidate);
      if (target.startsWith('/')) parts.length = 0;
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    parts.push(name);
  }
  return join(root, ...parts);
}
