// A privileged job is root on the host with Docker's default capabilities (there is
// no user namespace): given the host's root filesystem as its rootfs, or a
// read-write bind mount of it, it owns the host. Both are refused unless the
// operator said otherwise (server.allow_host_root).
import { realpath } from 'node:fs/promises';
import type { ContainerRecord } from '../../../model/records.ts';
import { BindMountMode } from '../../../protocol/types.ts';
import { WardenError } from '../../../model/errors.ts';

const HINT = 'a privileged job would own the host; set server.allow_host_root: true to allow it';

/** Whether path names the host's root directory (`/`, `/.`, `/tmp/..`, a symlink to `/`). */
async function isHostRoot(path: string): Promise<boolean> {
  const resolved = await realpath(path).catch(() => path);
  return resolved === '/';
}

export async function refuseHostRoot(c: ContainerRecord, lower: string, allow: boolean): Promise<void> {
  if (allow) return;
  if (await isHostRoot(lower)) throw new WardenError(`rootfs ${lower} is the host's root filesystem: ${HINT}`, { code: 'invalid' });
  for (const b of c.bind_mounts ?? []) {
    if (b.mode === BindMountMode.RW && (await isHostRoot(b.src_path))) {
      throw new WardenError(`read-write bind mount of ${b.src_path} is the host's root filesystem: ${HINT}`, { code: 'invalid' });
    }
  }
}
