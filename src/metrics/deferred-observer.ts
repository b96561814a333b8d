// The service's observer until the metrics are loaded. prom-client and its default
// process metrics take some 35 ms of the main thread to load, and a restarting
// daemon's clients would wait that long for requests that need none of it: the
// daemon serves first and loads the metrics right after (src/daemon.ts). What is
// observed meanwhile is kept and handed over, so no count is lost.
import type { RequestOutcome, ServiceObserver } from '../orchestrator/core.ts';

/** Events kept at most before the metrics come (a load that never comes must not hold memory). */
const MAX_KEPT = 50_000;

export class DeferredObserver implements ServiceObserver {
  private target: ServiceObserver | undefined;
  private kept: Array<(o: ServiceObserver) => void> = [];
  /** Events past MAX_KEPT, not counted in the metrics. */
  dropped = 0;

  requestDone(type: string, outcome: RequestOutcome, seconds: number): void {
    this.forward((o) => o.requestDone?.(type, outcome, seconds));
  }

  oom(handle: string): void {
    this.forward((o) => o.oom?.(handle));
  }

  destroyFailed(handle: string): void {
    this.forward((o) => o.destroyFailed?.(handle));
  }

  createRefused(reason: 'max_containers'): void {
    this.forward((o) => o.createRefused?.(reason));
  }

  /** From now on events go to target; the ones kept so far go first, in order. */
  attach(target: ServiceObserver): void {
    const kept = this.kept;
    this.kept = [];
    for (const call of kept) call(target);
    this.target = target;
  }

  private forward(call: (o: ServiceObserver) => void): void {
    if (this.target) call(this.target);
    else if (this.kept.length < MAX_KEPT) this.kept.push(call);
    else this.dropped++;
  }
}
