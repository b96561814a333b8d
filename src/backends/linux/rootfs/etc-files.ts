// Files Warden writes into the container's upper dir before the overlay is
// mounted: hostname, hosts, resolv.conf, the `vcap` user with the pooled uid (an
// existing vcap in the base rootfs is renumbered, as the original did) and a
// `fuse` group for /dev/fuse when the rootfs has none (the original's addgroup).
import { chown, mkdir, readFile, writeFile, stat } from '../../../host/thread-fs.ts';
import { join } from 'node:path';

export interface EtcFilesSpec {
  lower: string;
  upper: string;
  hostname: string;
  containerIp: string;
  uid: number;
  dnsServers: string[];
  /** The container's gateway (host end): its nameserver when the host's resolver is on loopback. */
  hostIp: string;
  /** The host's resolv.conf (default /etc/resolv.conf). */
  hostResolvConf?: string;
}

export const HOST_RESOLV_CONF = '/etc/resolv.conf';

/**
 * The host's resolver when it is on a loopback address (systemd-resolved's 127.0.0.53,
 * a local dnsmasq): the first nameserver of resolv.conf, if it is 127.x.y.z.
 * Containers cannot reach the host's loopback, so they are pointed at their host end.
 */
export function loopbackResolver(resolvConf: string): string | undefined {
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    return /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(m[1]!) && m[1]!.split('.').every((o) => Number(o) <= 255) ? m[1] : undefined;
  }
  return undefined;
}

/**
 * As the original: the configured servers as given, one `nameserver` line each; else,
 * when the host's resolver is on loopback, the container's host end; else the host's file as it is.
 */
export function resolvConfFor(dnsServers: string[], hostResolvConf: string, hostIp: string): string {
  if (dnsServers.length) return dnsServers.map((d) => `nameserver ${d}\n`).join('');
  if (loopbackResolver(hostResolvConf) !== undefined) return `nameserver ${hostIp}\n`;
  return hostResolvConf;
}

export interface EtcFilesResult {
  /** The uid vcap had in the base rootfs, when it had one that differs (its files need a chown). */
  previousVcapUid?: number;
  /** Gid of the `fuse` group, the group of /dev/fuse. */
  fuseGid: number;
}

async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return fallback;
  }
}

/** passwd/group text with vcap (re)defined at uid; returns the old uid if vcap existed with another. */
export function withVcap(passwd: string, group: string, uid: number, shell: string): { passwd: string; group: string; previousUid?: number } {
  const keep = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('vcap:'));
  const old = passwd.split('\n').find((l) => l.startsWith('vcap:'));
  const oldUid = old === undefined ? undefined : Number(old.split(':')[2]);
  return {
    passwd: [...keep(passwd), `vcap:x:${uid}:${uid}::/home/vcap:${shell}`].join('\n') + '\n',
    group: [...keep(group), `vcap:x:${uid}:`].join('\n') + '\n',
    previousUid: oldUid !== undefined && oldUid !== uid ? oldUid : undefined,
  };
}

/** System gids `addgroup --system` picks from (Debian's FIRST_SYSTEM_GID..LAST_SYSTEM_GID). */
const SYSTEM_GIDS = { first: 100, last: 999 } as const;

/**
 * group text with a `fuse` group: the rootfs's own if it has one, else a new system
 * group with the first free gid from 100 on, as the original's `addgroup --system fuse`.
 */
export function withFuseGroup(group: string): { group: string; gid: number } {
  const lines = group.split('\n').filter((l) => l !== '');
  const existing = lines.find((l) => l.startsWith('fuse:'));
  if (existing) return { group, gid: Number(existing.split(':')[2]) };
  const used = new Set(lines.map((l) => Number(l.split(':')[2])));
  let gid: number = SYSTEM_GIDS.first;
  while (used.has(gid) && gid < SYSTEM_GIDS.last) gid++;
  return { group: [...lines, `fuse:x:${gid}:`].join('\n') + '\n', gid };
}

export async function writeEtcFiles(s: EtcFilesSpec): Promise<EtcFilesResult> {
  const etc = join(s.upper, 'etc');
  await mkdir(etc, { recursive: true });
  const hasBash = await stat(join(s.lower, 'bin', 'bash')).then(() => true, () => false);
  const users = withVcap(
    await readOr(join(s.lower, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n'),
    await readOr(join(s.lower, 'etc', 'group'), 'root:x:0:\n'),
    s.uid,
    hasBash ? '/bin/bash' : '/bin/sh',
  );
  const fuse = withFuseGroup(users.group);
  const resolv = resolvConfFor(s.dnsServers, await readOr(s.hostResolvConf ?? HOST_RESOLV_CONF, ''), s.hostIp);
  await Promise.all([
    writeFile(join(etc, 'hostname'), `${s.hostname}\n`),
    writeFile(join(etc, 'hosts'), `127.0.0.1 localhost\n${s.containerIp} ${s.hostname}\n`),
    writeFile(join(etc, 'resolv.conf'), resolv),
    writeFile(join(etc, 'passwd'), users.passwd),
    writeFile(join(etc, 'group'), fuse.group),
  ]);
  const home = join(s.upper, 'home', 'vcap');
  await mkdir(home, { recursive: true, mode: 0o755 });
  await chown(home, s.uid, s.uid);
  return users.previousUid === undefined ? { fuseGid: fuse.gid } : { previousVcapUid: users.previousUid, fuseGid: fuse.gid };
}

/** A hostname from the handle when it is a valid one, else the id. */
export function hostnameFor(handle: string, id: string): string {
  return /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(handle) ? handle : id;
}
