// The files a job supervisor leaves in a job's folder (see job-supervisor.sh),
// read from worker threads.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface JobPids {
  pid: number;
  startTime: number;
  supervisorPid: number;
  supervisorStartTime: number;
}

export async function readJobPids(dir: string): Promise<JobPids | undefined> {
  try {
    const [pid, startTime, supervisorPid, supervisorStartTime] = (await readFile(join(dir, 'pid'), 'utf8'))
      .trim()
      .split(/\s+/)
      .map(Number);
    if (!pid) return undefined;
    return { pid, startTime, supervisorPid, supervisorStartTime };
  } catch {
    return undefined;
  }
}

export async function readExitStatus(dir: string): Promise<number | undefined> {
  try {
    const text = (await readFile(join(dir, 'exit_status'), 'utf8')).trim();
    const n = Number(text);
    return text !== '' && Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Start time (clock ticks since boot) of a live process, or undefined when it is gone. */
export async function processStartTime(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** Is this process (pid + start time, so a reused pid does not count) still alive? */
export async function isAlive(pid: number, startTime: number): Promise<boolean> {
  return (await processStartTime(pid)) === startTime;
}

/** Exit status reported for a job whose supervisor vanished without recording one (e.g. a host reboot). */
export const LOST_JOB_STATUS = 255;
