// Host paths that a copy reads or writes must not be redirected by a symlink: an
// earlier copy out of a container can have left one (pointing anywhere on the host)
// in a folder the client later names. Every component is checked with lstat.
import { lstat, mkdir } from './thread-fs.ts';
import { join, relative, resolve, sep } from 'node:path';
import { WardenError } from '../model/errors.ts';

export class SymlinkInPathError extends Error {
  override name = 'SymlinkInPathError';
  /** The request asks for what cannot be (see ErrorCode in src/model/errors.ts). */
  readonly code = 'invalid';
}

/** Components of `path` below `base` (path must be at or below base). */
function componentsBelow(path: string, base: string): string[] {
  const rel = relative(resolve(base), resolve(path));
  if (rel.startsWith('..')) throw new SymlinkInPathError(`${path} is not below ${base}`);
  return rel === '' ? [] : rel.split(sep);
}

/**
 * Makes sure `path` is a real folder: every component below `base` either is a folder
 * (not a symlink to one) or is missing and is made. Throws naming the first
 * component that is a symlink or not a folder.
 */
export async function realDirs(path: string, base: string, context: string): Promise<void> {
  let at = resolve(base);
  for (const name of componentsBelow(path, base)) {
    at = join(at, name);
    const st = await lstat(at).catch(() => undefined);
    if (!st) {
      await mkdir(at, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      const made = await lstat(at);
      if (!made.isDirectory()) throw new SymlinkInPathError(`${context}: ${at} is not a directory`);
      continue;
    }
    if (st.isSymbolicLink()) throw new SymlinkInPathError(`${context}: ${at} is a symbolic link; give a path without symbolic links`);
    if (!st.isDirectory()) throw new SymlinkInPathError(`${context}: ${at} is not a directory`);
  }
}

/**
 * Checks that no component of `path` (the last one too when `followLast`) is a
 * symlink and that the path exists. Throws naming what is wrong.
 */
export async function assertNoSymlinks(path: string, followLast: boolean, context: string): Promise<void> {
  const names = componentsBelow(path, '/');
  let at = '/';
  for (let i = 0; i < names.length; i++) {
    at = join(at, names[i]!);
    const st = await lstat(at).catch(() => undefined);
    if (!st) throw new WardenError(`${context}: ${path} does not exist`, { code: 'not_found' });
    const last = i === names.length - 1;
    if (st.isSymbolicLink() && (!last || followLast)) {
      throw new SymlinkInPathError(`${context}: ${at} is a symbolic link; give a path without symbolic links`);
    }
  }
}
