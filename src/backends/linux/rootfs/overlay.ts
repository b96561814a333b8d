// The container's root filesystem: an overlay of the read-only base rootfs (lower)
// and the container's upper dir, mounted at <path>/mnt.
import { mkdir, stat } from '../../../host/thread-fs.ts';
import { run, HostCommandError } from '../exec.ts';
import { mountAt } from '../disk/depot.ts';
import { WardenError } from '../../../model/errors.ts';

export interface OverlayDirs {
  lower: string;
  upper: string;
  work: string;
  merged: string;
}

export async function mountOverlay(d: OverlayDirs): Promise<void> {
  const st = await stat(d.lower).catch(() => undefined);
  if (!st?.isDirectory()) throw new WardenError(`rootfs ${d.lower} does not exist or is not a directory`, { code: 'not_found' });
  for (const p of [d.upper, d.work, d.merged]) await mkdir(p, { recursive: true });
  // Option values cannot carry ',' or ':' unescaped; our paths never do, a client rootfs might.
  for (const p of [d.lower, d.upper, d.work]) {
    if (/[,:\\]/.test(p)) throw new WardenError(`cannot use ${p} in an overlay mount: ',', ':' and '\\' are not allowed`, { code: 'invalid' });
  }
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${d.lower},upperdir=${d.upper},workdir=${d.work}`, d.merged], {
    context: 'mount overlay',
  });
}

/** Unmounts the merged root; lazily when it is busy. Not mounted is fine. */
export async function unmountOverlay(merged: string): Promise<void> {
  if (!(await mountAt(merged))) return;
  try {
    await run('umount', [merged], { context: `unmount ${merged}` });
  } catch (err) {
    if (err instanceof HostCommandError && /busy/i.test(err.stderr)) {
      await run('umount', ['-l', merged], { context: `lazy unmount ${merged}` });
      return;
    }
    throw err;
  }
}
