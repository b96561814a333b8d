// Child processes a test starts (benchmarks, tools) that must not outlive it: each
// runs in a process group of its own; stopChildren() (an afterEach) asks the ones
// still running to stop with SIGTERM (the benchmarks then clean up what they made)
// and SIGKILLs the group of any that does not exit in time; and if the test process
// itself exits first, the remaining groups are SIGKILLed on the way out.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const running = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    /* the group is gone */
  }
}

let exitHook = false;

/** spawn(), in a process group of its own, tracked until it exits. */
export function spawnChild(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { ...opts, detached: true });
  if (child.pid === undefined) return child; // spawn failed: 'error' follows
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of running) killGroup(c, 'SIGKILL');
    });
  }
  return child;
}

/** Children still running (for tests of this module). */
export function runningChildren(): ChildProcess[] {
  return [...running];
}

/**
 * Stops every child still running: SIGTERM to the child, then, after graceMs, SIGKILL
 * to its whole group. Resolves when each has exited.
 */
export async function stopChildren(graceMs = 60_000): Promise<void> {
  await Promise.all(
    [...running].map(async (child) => {
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once('exit', () => resolve());
      });
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
      if ((await Promise.race([exited, late])) === 'late') killGroup(child, 'SIGKILL');
      clearTimeout(timer);
      await exited;
      // What it started in its group (not detached) goes with it.
      killGroup(child, 'SIGKILL');
    }),
  );
}
