// Whether a process still exists, by pid (signal 0 checks without sending anything).

/** True while pid names a process, also one of another user (EPERM). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
