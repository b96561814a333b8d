// stop: TERM to every process of the container except its init, KILL what is left
// after the timeout (kill: KILL at once). The init (and the container) stays until
// destroy. The init's own session holds only the init: jobs come in through
// `runc exec`, which puts each in a new session, so "not in the init's session"
// is exactly "everything but the init".
import type { ContainerRecord } from '../../../containers/model.ts';
import { readPids } from '../cgroups/cgroups.ts';
import { procStat, signal } from '../procfs.ts';
import { liveFacts } from './facts.ts';

export const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 50;

async function nonInitPids(c: ContainerRecord): Promise<number[]> {
  const f = liveFacts(c);
  const out: number[] = [];
  for (const pid of await readPids(f.cgroups)) {
    if (pid === f.initPid) continue;
    const st = await procStat(pid);
    if (st && st.session !== f.initPid) out.push(pid);
  }
  return out;
}

export async function stopContainerProcesses(c: ContainerRecord, kill: boolean, timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
  const first = await nonInitPids(c);
  if (first.length === 0) return;
  for (const pid of first) signal(pid, kill ? 'SIGKILL' : 'SIGTERM');
  const deadline = Date.now() + (kill ? 0 : timeoutMs);
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const left = await nonInitPids(c);
    if (left.length === 0) return;
    if (Date.now() >= deadline) break;
  }
  // KILL until nothing is left (new forks may race the first round); bounded.
  const killDeadline = Date.now() + 5_000;
  for (;;) {
    const left = await nonInitPids(c);
    if (left.length === 0) return;
    if (Date.now() >= killDeadline) {
      throw new Error(`stop ${c.id}: ${left.length} processes survive SIGKILL (pids ${left.slice(0, 10).join(' ')}; in D state?)`);
    }
    for (const pid of left) signal(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
