// An older build of this repository, checked out from its own git history into a
// temporary worktree, for upgrade tests: the daemon of the build before the newest
// change to src/ runs first, and the current tree takes over its depot.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './daemon.ts';

const exec = promisify(execFile);

async function git(...args: string[]): Promise<string> {
  const { stdout } = await exec('git', ['-C', ROOT, ...args], { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

export interface OldBuild {
  /** The commit checked out. */
  rev: string;
  dir: string;
  /** Its bin/warden-server. */
  bin: string;
  /** The script that bin/warden-server runs: its bundle when it has one, its src/main.ts before bundles. */
  entry: string;
  /** Removes the worktree (safe to call twice). */
  remove(): Promise<void>;
}

/**
 * Checks out the parent of the newest commit that changed src/ (so its daemon differs
 * from this tree's), with this tree's node_modules linked in, and builds its bundle
 * when it has one. Needs the history (a full clone, as CI makes); throws with what
 * is missing otherwise.
 */
export async function checkoutOldBuild(): Promise<OldBuild> {
  const changed = await git('rev-list', '-1', 'HEAD', '--', 'src');
  if (!changed) throw new Error('no commit in this clone changed src/: an old build needs the history (not a shallow clone)');
  const rev = await git('rev-parse', '--verify', `${changed}^`).catch(() => {
    throw new Error(`the parent of ${changed} is not in this clone (shallow?): an old build needs the history`);
  });
  const parent = mkdtempSync(join(tmpdir(), 'warden-old-build-'));
  const dir = join(parent, 'warden');
  let removed = false;
  const remove = async () => {
    if (removed) return;
    removed = true;
    await git('worktree', 'remove', '--force', dir).catch(() => undefined);
    rmSync(parent, { recursive: true, force: true });
    await git('worktree', 'prune').catch(() => undefined);
  };
  try {
    await git('worktree', 'add', '--detach', dir, rev);
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    // Built as its release would be (scripts/install builds the bundle), for builds
    // that have one: the old daemon then runs as it ran in production.
    if (existsSync(join(dir, 'scripts/build'))) await exec(join(dir, 'scripts/build'), [], { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    await remove();
    throw err;
  }
  const bundled = existsSync(join(dir, 'dist/main.js'));
  return { rev, dir, bin: join(dir, 'bin/warden-server'), entry: join(dir, bundled ? 'dist/main.js' : 'src/main.ts'), remove };
}
