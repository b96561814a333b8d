// create: the whole life of a container's setup, in order; any failure undoes
// every step done so far, in reverse.
import { rm } from 'node:fs/promises';
import { mkdir, stat, writeFile } from '../../../host/thread-fs.ts';
import { join } from 'node:path';
import type { ContainerRecord } from '../../../model/records.ts';
import { containerPaths } from '../paths.ts';
import { UndoStack } from '../exec.ts';
import { DEFAULT_PIDS_LIMIT, type LinuxHostSettings } from '../settings.ts';
import { createSubvolume, deleteSubvolume, setByteLimit } from '../disk/subvolume.ts';
import { hostnameFor, writeEtcFiles } from '../rootfs/etc-files.ts';
import { renumberOwner } from '../rootfs/renumber.ts';
import { mountOverlay, unmountOverlay } from '../rootfs/overlay.ts';
import { buildConfig } from '../bundle/spec.ts';
import { containerCgroups, removeCgroups, runtimeCgroupsPath } from '../cgroups/cgroups.ts';
import { procsOutsideDaemonGroup } from '../cgroups/daemon-cgroup.ts';
import { CGROUP_LINK_ROOT, linkContainerCgroups, unlinkContainerCgroups } from '../cgroups/links.ts';
import { deleteContainer, runContainer, type Runtime } from '../runtime/runc.ts';
import { procStat } from '../../../host/procfs.ts';
import { createContainerNetwork, destroyContainerNetwork } from '../network/index.ts';
import { checkContainerId, netSpec, type LinuxFacts } from './facts.ts';
import { diskByteLimit } from '../limits.ts';
import { stringify64 } from '../../../protocol/json64.ts';
import { joinContainersQgroup } from '../disk/containers-qgroup.ts';
import { refuseHostRoot } from './host-root.ts';
import { WardenError, wrapError } from '../../../model/errors.ts';

export async function createContainerOnHost(s: LinuxHostSettings, c: ContainerRecord): Promise<LinuxFacts> {
  checkContainerId(c.id);
  const p = containerPaths(c.path);
  const lower = c.rootfs || s.baseRootfs;
  const rt: Runtime = { binary: s.runtime, root: s.runtimeRoot };
  const undo = new UndoStack();
  try {
    await checkBindMounts(c);
    await refuseHostRoot(c, lower, s.allowHostRoot ?? false);
    // The daemon made the container's folder (and removes it when a create fails);
    // what the backend makes in it, it undoes itself.
    const own = [p.run, p.etc, p.bundle, p.mnt];
    await undo.step(
      'folders',
      () => Promise.all(own.map((d) => mkdir(d, { recursive: true }))),
      () => Promise.all(own.map((d) => rm(d, { recursive: true, force: true }))),
    );

    const subvolume = await undo.step(
      'subvolume',
      () => createSubvolume(p.subvolume, s.depot, s.diskQuota),
      (info) => deleteSubvolume(p.subvolume, info, s.depot),
    );
    const bytes = diskByteLimit(c.limits.disk);
    if (bytes && subvolume.btrfs) await setByteLimit(p.subvolume, bytes, subvolume);

    await mkdir(p.upper, { recursive: true });
    await mkdir(p.work, { recursive: true });
    const hostname = hostnameFor(c.handle, c.id);
    const etc = await writeEtcFiles({
      lower, upper: p.upper, hostname, containerIp: c.container_ip, uid: c.uid, dnsServers: s.dnsServers,
      hostIp: c.host_ip, hostResolvConf: s.hostResolvConf,
    });

    await undo.step('overlay', () => mountOverlay({ lower, upper: p.upper, work: p.work, merged: p.mnt }), () => unmountOverlay(p.mnt));
    if (etc.previousVcapUid !== undefined) {
      // vcap's files in the base rootfs carry its old uid: give them to the pooled one.
      const home = join(p.mnt, 'home', 'vcap');
      await renumberOwner(home, etc.previousVcapUid, c.uid).catch((err) => {
        throw wrapError(`cannot give vcap's files in ${home} to uid ${c.uid}`, err);
      });
    }

    // Only now into the containers' shared qgroup: the setup's own writes above must
    // succeed even when the containers together have used up their share of the depot.
    if (subvolume.btrfs && s.diskQuota) await joinContainersQgroup(subvolume.subvolId!, s.depot);

    const config = await buildConfig({
      root: p.mnt,
      hostname,
      cgroupsPath: runtimeCgroupsPath(s.cgroupParent, c.id),
      bindMounts: c.bind_mounts ?? [],
      memoryLimit: c.limits.memory_limit_in_bytes,
      cpuShares: c.limits.cpu_limit_in_shares ?? s.cpuShares,
      pidsLimit: s.pidsLimit ?? DEFAULT_PIDS_LIMIT,
      fuseGid: etc.fuseGid,
    });
    await writeFile(p.configJson, stringify64(config, 1));

    const cgroups = await containerCgroups(s.cgroupParent, c.id);
    const initPid = await undo.step(
      'runtime container',
      async () => runContainer(rt, c.id, p.bundle, p.pidFile, p.runtimeLog, await procsOutsideDaemonGroup()),
      async () => {
        await deleteContainer(rt, c.id);
        await removeCgroups(cgroups);
      },
    );
    const links = s.cgroupLinkRoot ?? CGROUP_LINK_ROOT;
    await undo.step('cgroup links', () => linkContainerCgroups(links, c.id, cgroups, { fresh: true }), () => unlinkContainerCgroups(links, c.id));
    const st = await procStat(initPid);
    if (!st) throw new Error(`init ${initPid} vanished right after runtime run`);

    const spec = netSpec(c, s);
    // The init runs already; it needs no network, and no job starts before create replies.
    await undo.step('network', () => createContainerNetwork(spec, initPid), () => destroyContainerNetwork(c.id));

    await writeFile(p.settings, settingsFile(c, s, lower, initPid));
    return { initPid, initStartTime: st.startTime, cgroups, subvolume, runtime: rt };
  } catch (err) {
    const wrapped = wrapError(`create ${c.id}`, err);
    return undo.unwind(wrapped);
  }
}

async function checkBindMounts(c: ContainerRecord): Promise<void> {
  for (const b of c.bind_mounts ?? []) {
    if (!b.src_path?.startsWith('/') || !b.dst_path?.startsWith('/')) {
      throw new WardenError(`bind mount ${b.src_path} -> ${b.dst_path}: paths must be absolute`, { code: 'invalid' });
    }
    if (b.dst_path.split('/').includes('..')) throw new WardenError(`bind mount destination ${b.dst_path} contains '..'`, { code: 'invalid' });
    const st = await stat(b.src_path).catch(() => undefined);
    if (!st) throw new WardenError(`bind mount source ${b.src_path} does not exist`, { code: 'not_found' });
  }
}

/** <path>/etc/config: the container's settings in the original's shell format, for operators. */
function settingsFile(c: ContainerRecord, s: LinuxHostSettings, rootfs: string, initPid: number): string {
  const kv: Record<string, string | number> = {
    id: c.id,
    handle: c.handle,
    network_host_ip: c.host_ip,
    network_container_ip: c.container_ip,
    network_netmask: '255.255.255.252',
    user_uid: c.uid,
    rootfs_path: rootfs,
    container_iface_mtu: s.mtu,
    init_pid: initPid,
    runtime: s.runtime,
    runtime_root: s.runtimeRoot,
  };
  return Object.entries(kv).map(([k, v]) => `${k}=${JSON.stringify(String(v))}\n`).join('');
}
