// Kernel settings through /proc/sys (no fork). Paths resolve in the calling
// thread's network namespace, which for the daemon is the host's.
// Worker side only. Lookups are synchronous: /proc and /sys answer them from
// memory, and a restart checks hundreds of interfaces. Writes stay async: some
// (disable_ipv6) wait for the kernel's network lock, which concurrent `ip`
// commands hold, and a blocked worker would hold up every task it runs.
import { accessSync, existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { wrapError } from '../../../model/errors.ts';

export async function readSysctl(key: string): Promise<string> {
  return readFileSync(`/proc/sys/${key}`, 'utf8').trim();
}

export async function writeSysctl(key: string, value: string | number, context: string): Promise<void> {
  try {
    await writeFile(`/proc/sys/${key}`, `${value}\n`);
  } catch (err) {
    throw wrapError(`${context}: setting ${key.replaceAll('/', '.')}=${value} failed`, err);
  }
}

/** Raises an integer setting to at least min; never lowers what an operator configured. */
export async function raiseSysctl(key: string, min: number, context: string): Promise<void> {
  const current = Number(await readSysctl(key));
  if (!(current >= min)) await writeSysctl(key, min, context);
}

/** Whether a setting exists in our network namespace (some exist only in the initial one). */
export async function sysctlExists(key: string): Promise<boolean> {
  try {
    accessSync(`/proc/sys/${key}`);
    return true;
  } catch {
    return false;
  }
}

/** Whether a network interface exists in our namespace (no fork). */
export async function ifaceExists(name: string): Promise<boolean> {
  // existsSync: a missing interface (the usual case at destroy) builds no exception.
  return existsSync(`/sys/class/net/${name}`);
}
