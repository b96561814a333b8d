// The files a job supervisor leaves in a job's folder (see job-supervisor.sh),
// read from worker threads.
import { readFileSync } from 'node:fs';
import { readFile } from '../host/thread-fs.ts';
import { join } from 'node:path';

/**
 * The job id a folder in a container's jobs/ names, or undefined for anything
 * else there (a folder an older daemon hid for its delete, `.gone-N`).
 */
export function jobIdOfFolder(name: string): number | undefined {
  if (!/^[0-9]+$/.test(name)) return undefined;
  const id = Number(name);
  return Number.isSafeInteger(id) && id > 0 ? id : undefined;
}

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
    return parseExitStatus(await readFile(join(dir, 'exit_status'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** readExitStatus, blocking (a worker's start-up scan of the depot, and a follower's look: one tiny file). */
export function readExitStatusSync(dir: string): number | undefined {
  try {
    return parseExitStatus(readFileSync(join(dir, 'exit_status'), 'utf8'));
  } catch {
    return undefined;
  }
}

function parseExitStatus(raw: string): number | undefined {
  const text = raw.trim();
  const n = Number(text);
  return text !== '' && Number.isInteger(n) ? n : undefined;
}

/** Exit status reported for a job whose supervisor vanished without recording one (e.g. a host reboot). */
export const LOST_JOB_STATUS = 255;
