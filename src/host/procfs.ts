// /proc/<pid>/stat fields we need: a pid alone may be reused, a pid plus its start
// time (field 22, clock ticks since boot) names one process for good.
import { readFile } from './thread-fs.ts';

export interface ProcStat {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
  /** Field 22: start time in clock ticks after boot. */
  startTime: number;
}

export async function procStat(pid: number): Promise<ProcStat | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state).
  return {
    pid,
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    session: Number(rest[3]),
    startTime: Number(rest[19]),
  };
}

/** True when pid runs and started at startTime. */
export async function isSameProcess(pid: number, startTime: number): Promise<boolean> {
  const st = await procStat(pid);
  return st !== undefined && st.startTime === startTime;
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}
