// OOM detection. cgroup v1 memory.oom_control counts OOM kills (`oom_kill N`);
// inotify never fires on v1 files and eventfd needs a syscall node lacks, so a
// long-lived worker task polls it. One shared timer per worker serves every
// watched container (a few file reads per tick, no fork).
import type { CgroupPaths } from './cgroups/cgroups.ts';
import { oomKillCount } from './cgroups/cgroups.ts';

export const OOM_POLL_MS = 200;

export interface WatchOomArgs {
  id: string;
  cgroups: CgroupPaths;
  /** Kills already counted (e.g. seen before a restart); default: the count when the watch starts. */
  baseline?: number;
}

export interface OomResult {
  /** 'oom': the kernel OOM-killed a process of the container; 'gone': its memory cgroup no longer exists (destroyed); 'cancelled': unwatchOom. */
  event: 'oom' | 'gone' | 'cancelled';
  count: number;
}

interface Watch {
  args: WatchOomArgs;
  baseline: number;
  resolve: (r: OomResult) => void;
}

const watches = new Map<string, Watch[]>();
let timer: NodeJS.Timeout | undefined;
let ticking = false;

async function tick(): Promise<void> {
  if (ticking) return;
  ticking = true;
  try {
    for (const [id, list] of watches) {
      const count = await oomKillCount(list[0].args.cgroups).catch(() => undefined);
      const done = (r: OomResult) => {
        for (const w of list) w.resolve(r);
        watches.delete(id);
      };
      if (count === undefined) done({ event: 'gone', count: list[0].baseline });
      else if (count > Math.min(...list.map((w) => w.baseline))) done({ event: 'oom', count });
    }
  } finally {
    ticking = false;
    if (watches.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  }
}

/** Resolves when the container's OOM kill count rises above the baseline, or its cgroup is gone. */
export async function watchOom(args: WatchOomArgs): Promise<OomResult> {
  const now = await oomKillCount(args.cgroups);
  if (now === undefined) return { event: 'gone', count: args.baseline ?? 0 };
  const baseline = args.baseline ?? now;
  if (now > baseline) return { event: 'oom', count: now };
  return new Promise<OomResult>((resolve) => {
    const list = watches.get(args.id) ?? [];
    list.push({ args, baseline, resolve });
    watches.set(args.id, list);
    timer ??= setInterval(() => void tick(), OOM_POLL_MS);
  });
}

/** Ends the watches of id in this worker (they resolve 'cancelled'). */
export function unwatchOom(id: string): boolean {
  const list = watches.get(id);
  if (!list) return false;
  watches.delete(id);
  for (const w of list) w.resolve({ event: 'cancelled', count: w.baseline });
  return true;
}
