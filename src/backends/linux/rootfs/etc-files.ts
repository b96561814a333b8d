// Files Warden writes into the container's upper dir before the overlay is
// mounted: hostname, hosts, resolv.conf, and the `vcap` user with the pooled uid
// (an existing vcap in the base rootfs is renumbered, as the original did).
import { chown, mkdir, readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface EtcFilesSpec {
  lower: string;
  upper: string;
  hostname: string;
  containerIp: string;
  uid: number;
  dnsServers: string[];
}

export interface EtcFilesResult {
  /** The uid vcap had in the base rootfs, when it had one that differs (its files need a chown). */
  previousVcapUid?: number;
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
  const resolv = s.dnsServers.length
    ? s.dnsServers.map((d) => `nameserver ${d}\n`).join('')
    : (await readOr('/etc/resolv.conf', '')).split('\n').filter((l) => /^\s*(nameserver|search|options)\s/.test(l)).join('\n') + '\n';
  await Promise.all([
    writeFile(join(etc, 'hostname'), `${s.hostname}\n`),
    writeFile(join(etc, 'hosts'), `127.0.0.1 localhost\n${s.containerIp} ${s.hostname}\n`),
    writeFile(join(etc, 'resolv.conf'), resolv),
    writeFile(join(etc, 'passwd'), users.passwd),
    writeFile(join(etc, 'group'), users.group),
  ]);
  const home = join(s.upper, 'home', 'vcap');
  await mkdir(home, { recursive: true, mode: 0o755 });
  await chown(home, s.uid, s.uid);
  return users.previousUid === undefined ? {} : { previousVcapUid: users.previousUid };
}

/** A hostname from the handle when it is a valid one, else the id. */
export function hostnameFor(handle: string, id: string): string {
  return /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(handle) ? handle : id;
}
