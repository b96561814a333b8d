// Who uses which pool. Each Linux daemon writes /run/warden/daemons/<tag>.json
// (tag = its depot tag: the hash naming its runc root and cgroup parent) with its
// depot, pool, pid and the pid's start time, and tags its pool's iptables rules with
// `warden:<tag>`. A tag is in use while its daemon runs, or while its depot still
// holds containers (a drained daemon's containers keep running and need their
// pool's rules until the next daemon on that config adopts them). Rules of any other
// tag belong to a config nobody uses any more: the next daemon start removes them.
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LinuxHostSettings } from '../settings.ts';
import { depotTag } from '../settings.ts';
import { isSameProcess, procStat } from '../../../host/procfs.ts';
import { isContainerId } from '../container/facts.ts';

export const RECORDS_DIR = '/run/warden/daemons';

export interface DaemonRecord {
  depot: string;
  pool: string;
  pid: number;
  /** /proc/<pid>/stat field 22: with pid, names the daemon process for good. */
  startTime: number;
}

export function tagOf(s: LinuxHostSettings): string {
  return s.network.tag ?? depotTag(s.depot);
}

function recordPath(tag: string, dir: string): string {
  return join(dir, `${tag}.json`);
}

/** Written at start (atomically): this process serves the config of s. */
export async function writeDaemonRecord(s: LinuxHostSettings, dir = RECORDS_DIR): Promise<void> {
  const st = await procStat(process.pid);
  const rec: DaemonRecord = { depot: s.depot, pool: s.network.poolNetwork, pid: process.pid, startTime: st?.startTime ?? 0 };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${recordPath(tagOf(s), dir)}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(rec)}\n`, { mode: 0o600 });
  await rename(tmp, recordPath(tagOf(s), dir));
}

export async function removeDaemonRecord(tag: string, dir = RECORDS_DIR): Promise<void> {
  await rm(recordPath(tag, dir), { force: true });
}

export async function readDaemonRecord(tag: string, dir = RECORDS_DIR): Promise<DaemonRecord | undefined> {
  try {
    return JSON.parse(await readFile(recordPath(tag, dir), 'utf8')) as DaemonRecord;
  } catch {
    return undefined;
  }
}

/** The live daemon's pid for tag, if one runs. */
export async function liveDaemon(tag: string, dir = RECORDS_DIR): Promise<number | undefined> {
  const rec = await readDaemonRecord(tag, dir);
  return rec && (await isSameProcess(rec.pid, rec.startTime)) ? rec.pid : undefined;
}

/** Container folders in depot (what a drained daemon leaves running). */
export async function depotContainers(depot: string): Promise<string[]> {
  const names = await readdir(depot).catch(() => [] as string[]);
  const out: string[] = [];
  for (const n of names) {
    if (isContainerId(n) && (await stat(join(depot, n)).then((st) => st.isDirectory(), () => false))) out.push(n);
  }
  return out;
}

/** Whether nobody uses tag's pool rules: no live daemon, and no depot with containers. */
export async function tagIsStale(tag: string, ownTag: string, dir = RECORDS_DIR): Promise<boolean> {
  if (tag === ownTag) return false;
  const rec = await readDaemonRecord(tag, dir);
  if (!rec) return true;
  if (await isSameProcess(rec.pid, rec.startTime)) return false;
  return (await depotContainers(rec.depot)).length === 0;
}
