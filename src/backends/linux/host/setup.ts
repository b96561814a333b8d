// Host preparation at daemon start (idempotent): the tools we drive, the cgroup
// parents, the btrfs depot with quotas, the network's base chains.
import { access, constants, mkdir, readFile, readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LinuxHostSettings } from '../settings.ts';
import { hierarchies, parentCgroups } from '../cgroups/cgroups.ts';
import { enterDaemonCgroup, leaveDaemonCgroup } from '../cgroups/daemon-cgroup.ts';
import { CGROUP_LINK_ROOT, prepareLinkRoot } from '../cgroups/links.ts';
import { prepareDepot, unmountDepot } from '../disk/depot.ts';
import { adoptStaleQgroupsLater } from '../disk/qgroup-reaper.ts';
import { setupNetworkHost, teardownNetworkHost, type TeardownOptions } from '../network/index.ts';
import { HOST_RESOLV_CONF, loopbackResolver } from '../rootfs/etc-files.ts';
import { removeDaemonRecord, tagIsStale, tagOf, writeDaemonRecord } from './daemon-records.ts';
import type { HardLimits } from '../jobs/launch.ts';

/** Tool → Debian package that provides it. */
const TOOLS: Array<[string, string]> = [
  ['ip', 'iproute2'], ['tc', 'iproute2'], ['iptables', 'iptables'], ['iptables-restore', 'iptables'], ['iptables-save', 'iptables'],
  ['btrfs', 'btrfs-progs'], ['mkfs.btrfs', 'btrfs-progs'], ['losetup', 'mount'], ['mount', 'mount'],
  ['nsenter', 'util-linux'], ['tar', 'tar'], ['chown', 'coreutils'],
];

const PATH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

async function findTool(name: string): Promise<string | undefined> {
  if (name.includes('/')) return (await access(name, constants.X_OK).then(() => name, () => undefined));
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...PATH_DIRS];
  for (const d of dirs) {
    const p = join(d, name);
    if (await access(p, constants.X_OK).then(() => true, () => false)) return p;
  }
  return undefined;
}

export async function checkTools(s: LinuxHostSettings): Promise<void> {
  const runtimePackage = s.runtime.endsWith('crun') ? 'crun' : 'runc';
  const tools: Array<[string, string]> = [[s.runtime, runtimePackage], ...TOOLS];
  const found = await Promise.all(tools.map(([tool]) => findTool(tool)));
  const missing = tools.filter((_, i) => !found[i]).map(([tool, pkg]) => `${tool} (apt-get install ${pkg})`);
  if (missing.length) throw new Error(`Linux backend: missing host tools: ${missing.join(', ')}`);
}

export interface HostFacts {
  hardLimits: HardLimits;
  /** cgroup.procs a job supervisor moves itself to, out of the daemon's own cgroup (none: the daemon has none). */
  supervisorCgroupProcs?: string;
}

const LIMIT_NAMES: Record<string, string> = {
  'Max cpu time': 'cpu', 'Max file size': 'fsize', 'Max data size': 'data', 'Max stack size': 'stack',
  'Max core file size': 'core', 'Max resident set': 'rss', 'Max processes': 'nproc', 'Max open files': 'nofile',
  'Max locked memory': 'memlock', 'Max address space': 'as', 'Max file locks': 'locks',
  'Max pending signals': 'sigpending', 'Max msgqueue size': 'msgqueue', 'Max nice priority': 'nice',
  'Max realtime priority': 'rtprio',
};

/** Our hard rlimits: without CAP_SYS_RESOURCE a job's limits cannot go above them. */
export async function hardLimits(): Promise<HardLimits> {
  const out: HardLimits = {};
  for (const line of (await readFile('/proc/self/limits', 'utf8')).split('\n')) {
    for (const [label, name] of Object.entries(LIMIT_NAMES)) {
      if (!line.startsWith(label)) continue;
      const hard = line.slice(label.length).trim().split(/\s+/)[1];
      if (hard && hard !== 'unlimited') out[name] = Number(hard);
    }
  }
  return out;
}

/** The loopback resolver containers' DNS is forwarded to: only when they get the host's (dns_servers empty). */
async function hostResolver(s: LinuxHostSettings): Promise<string | undefined> {
  if (s.dnsServers.length) return undefined;
  const conf = await readFile(s.hostResolvConf ?? HOST_RESOLV_CONF, 'utf8').catch(() => '');
  return loopbackResolver(conf);
}

export async function setupHost(s: LinuxHostSettings): Promise<HostFacts> {
  await checkTools(s);
  await mkdir(s.runtimeRoot, { recursive: true, mode: 0o700 });
  const tag = tagOf(s);
  // The record before the cgroup parents: another daemon starting meanwhile
  // then never takes ours for a dead daemon's (removeStaleCgroupParents).
  await writeDaemonRecord(s);
  await removeStaleCgroupParents(tag);
  for (const dir of await parentCgroups(s.cgroupParent)) await mkdir(dir, { recursive: true });
  await prepareLinkRoot(s.cgroupLinkRoot ?? CGROUP_LINK_ROOT);
  // The depot and the network are independent: prepared at once (each may run host
  // commands that keep a restarting daemon down; on a host set up before, the
  // network's listing is the only one).
  const [, staleTags, limits] = await Promise.all([
    prepareDepot(s),
    // With this pool's setup go the pool rules of configs nobody uses any more (see daemon-records.ts).
    hostResolver(s).then((hostResolver) => setupNetworkHost({ ...s.network, hostResolver, tag }, { isStale: (t) => tagIsStale(t, tag) })),
    hardLimits(),
  ]);
  for (const stale of staleTags) await removeDaemonRecord(stale);
  // Last: a failed start leaves the daemon where it was.
  const supervisorCgroupProcs = s.daemonCpuShares ? await enterDaemonCgroup(s.cgroupParent, s.daemonCpuShares) : undefined;
  // Qgroups a previous daemon left for btrfs's cleaner: found and reaped in the background, after the start.
  if (s.diskQuota) adoptStaleQgroupsLater(s.depot);
  return { hardLimits: limits, ...(supervisorCgroupProcs ? { supervisorCgroupProcs } : {}) };
}

/** A dead daemon's cgroup parent (`warden-<tag>`, `warden-<tag>-daemon`). */
const TAG_PARENT = /^warden-([0-9a-f]{8})(?:-daemon)?$/;

/**
 * Empty cgroup parents of tags nobody uses any more (no live daemon, no
 * containers in their depot), as stale pool rules go: a daemon killed with its
 * host state left them, and --cleanup needs a config that may be gone.
 * Only empty folders go (rmdir): a parent with container groups stays.
 */
export async function removeStaleCgroupParents(ownTag: string): Promise<string[]> {
  const removed: string[] = [];
  const verdicts = new Map<string, boolean>();
  for (const h of await hierarchies()) {
    for (const name of await readdir(h.own).catch(() => [] as string[])) {
      const tag = TAG_PARENT.exec(name)?.[1];
      if (!tag || tag === ownTag) continue;
      if (!verdicts.has(tag)) verdicts.set(tag, await tagIsStale(tag, ownTag));
      if (!verdicts.get(tag)) continue;
      const dir = join(h.own, name);
      if (await rmdir(dir).then(() => true, () => false)) removed.push(dir);
    }
  }
  return removed;
}

/**
 * Undoes setupHost where nothing uses it any more (a drain with no containers left; tests; --cleanup).
 * removeUnusedBase: also the shared base chains when nothing uses them, for a last
 * process only (`--cleanup`, the bench after its run); see TeardownOptions.
 */
export async function teardownHost(s: LinuxHostSettings, opts: TeardownOptions = {}): Promise<void> {
  const errors: string[] = [];
  await leaveDaemonCgroup(s.cgroupParent).catch((err: Error) => errors.push(err.message));
  for (const dir of await parentCgroups(s.cgroupParent)) {
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') errors.push(`${dir}: ${err.message}`);
    });
  }
  await teardownNetworkHost(s.network.poolNetwork, opts).catch((err: Error) => errors.push(err.message));
  await unmountDepot(s).catch((err: Error) => errors.push(err.message));
  await rmdir(s.runtimeRoot).catch(() => undefined);
  await removeDaemonRecord(tagOf(s)).catch(() => undefined);
  if (errors.length) throw new Error(`teardown host: ${errors.join('; ')}`);
}

/** At daemon exit: the daemon leaves its own cgroup, which is removed (containers keep theirs). */
export async function leaveHost(s: LinuxHostSettings): Promise<void> {
  await leaveDaemonCgroup(s.cgroupParent);
}
