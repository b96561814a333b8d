// A container's user gets a uid from the pool, and the files it owned in the base
// rootfs carry the uid it had there: give those to the new one, as
// `chown -R -h --from=OLD NEW:NEW` would, without starting a process for it.
// Runs at create, before anything runs in the container: the tree is the base
// rootfs's (seen through the overlay, so each change is a copy-up into the
// container's own layer). Symlinks are changed themselves, never followed, and the
// walk enters real directories only. lstat and readdir are the small calls of
// thread-fs; lchown goes through the threadpool, not blocking: a copy-up copies
// the file's contents, which may be large.
import { lchown } from 'node:fs/promises';
import { join } from 'node:path';
import { lstat, readdir } from '../../../host/thread-fs.ts';

/** Changes owner and group to `to` of every entry under `top` (itself included) owned by uid `from`; returns how many. */
export async function renumberOwner(top: string, from: number, to: number): Promise<number> {
  let changed = 0;
  const give = async (path: string): Promise<boolean> => {
    const st = await lstat(path);
    if (st.uid === from) {
      await lchown(path, to, to);
      changed++;
    }
    return st.isDirectory();
  };
  if (!(await give(top))) return changed;
  const dirs = [top];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if (await give(path)) dirs.push(path);
    }
  }
  return changed;
}
