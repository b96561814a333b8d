// A container's folder, in the original DEA layout (clients read files from the
// host at <container_path>/tmp/rootfs/<path>):
//
//   <path>/tmp          btrfs subvolume (the disk-limited part): overlay upper + work dirs
//   <path>/tmp/rootfs   overlay upper dir
//   <path>/tmp/work     overlay work dir
//   <path>/mnt          merged root (the container's /)
//   <path>/bundle       OCI bundle (config.json)
//   <path>/run          wshd.pid (the init's host pid), runtime logs
//   <path>/etc/config   the container's settings, for operators
//   <path>/jobs/<id>    job folders (the daemon's)
import { join } from 'node:path';

export interface ContainerPaths {
  root: string;
  subvolume: string;
  upper: string;
  work: string;
  mnt: string;
  bundle: string;
  configJson: string;
  run: string;
  pidFile: string;
  runtimeLog: string;
  etc: string;
  settings: string;
}

export function containerPaths(path: string): ContainerPaths {
  const tmp = join(path, 'tmp');
  return {
    root: path,
    subvolume: tmp,
    upper: join(tmp, 'rootfs'),
    work: join(tmp, 'work'),
    mnt: join(path, 'mnt'),
    bundle: join(path, 'bundle'),
    configJson: join(path, 'bundle', 'config.json'),
    run: join(path, 'run'),
    pidFile: join(path, 'run', 'wshd.pid'),
    runtimeLog: join(path, 'run', 'runtime.log'),
    etc: join(path, 'etc'),
    settings: join(path, 'etc', 'config'),
  };
}

/** Name of the container's cgroup and runtime container: the original's instance-<id>. */
export function instanceName(id: string): string {
  return `instance-${id}`;
}
