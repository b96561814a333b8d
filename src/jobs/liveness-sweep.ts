// One timer per worker thread for all the job followers in it (job-tasks.ts):
// every interval each follower checks that its job's supervisor is still alive
// (a supervisor killed outright records no exit) and looks at its folder again,
// should an event have been lost. No timer while no follower runs.
export class LivenessSweep {
  private readonly followers = new Set<() => void>();
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** Call `check` on every sweep until the returned function is called. */
  add(check: () => void): () => void {
    this.followers.add(check);
    this.timer ??= setInterval(() => {
      for (const f of this.followers) f();
    }, this.intervalMs).unref();
    return () => {
      this.followers.delete(check);
      if (this.followers.size === 0) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }
}
