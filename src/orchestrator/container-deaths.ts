// Container deaths the backend reports (event-driven, one watcher for all
// containers): an OOM kill stops the container with the original's
// `out of memory` event; a container whose init is gone is stopped with an
// event saying so. Both kill what is left of it, as the original did.
import type { Container } from '../model/container.ts';
import { describeError } from '../model/errors.ts';
import { INIT_EXITED_EVENT, OUT_OF_MEMORY_EVENT, type Core } from './core.ts';

export class ContainerDeaths {
  private readonly core: Core;
  /** Whether the daemon is draining (warnings then are expected, not logged). */
  private readonly draining: () => boolean;
  /** Init deaths reported while recovery had not yet listed the container (see adopted()). */
  private readonly unclaimedInitExits = new Set<string>();

  constructor(core: Core, draining: () => boolean) {
    this.core = core;
    this.draining = draining;
  }

  /** Starts listening; called once, at recovery, before any container is adopted. */
  watch(): void {
    this.core.backend.onContainerEvent?.((e) => {
      if (e.kind === 'warning') {
        if (!this.draining()) this.core.log.warn({ err: e.message }, 'container events');
        return;
      }
      const c = this.core.registry.all().find((x) => x.id === e.id);
      if (!c) {
        // OOM reports name every container on the host; an init is only ours.
        if (e.kind === 'init-exited') this.unclaimedInitExits.add(e.id);
        return;
      }
      if (e.kind === 'oom') this.outOfMemory(c);
      else this.initExited(c);
    });
  }

  /**
   * At recovery, once c is listed: a death reported before that counts now, and an
   * active container OOM-killed while no daemon watched is stopped now.
   */
  adopted(c: Container): Promise<void> {
    if (this.unclaimedInitExits.delete(c.id)) this.initExited(c);
    const { backend, log } = this.core;
    if (!backend.oomKilled || c.state !== 'active') return Promise.resolve();
    return backend
      .oomKilled(c.record)
      .then((oom) => {
        if (oom) this.outOfMemory(c);
      })
      .catch((err) => log.warn({ handle: c.handle, err: describeError(err) }, 'cannot read the OOM counter'));
  }

  /** Whether the kernel OOM-killed a process of c; if so, c is stopped now. */
  async checkOom(c: Container): Promise<boolean> {
    const { backend } = this.core;
    if (c.state === 'active' && backend.oomKilled && (await backend.oomKilled(c.record).catch(() => false))) this.outOfMemory(c);
    return c.record.events.includes(OUT_OF_MEMORY_EVENT);
  }

  /**
   * Marks c stopped with the `out of memory` event at once (a reply sent after
   * this call already shows it), then kills what is left of it.
   */
  outOfMemory(c: Container): void {
    if (c.state !== 'active' || this.core.registry.find(c.handle) !== c) return;
    this.core.log.info({ handle: c.handle }, 'out of memory: stopping container');
    this.core.observer.oom?.(c.handle);
    this.markStopped(c, OUT_OF_MEMORY_EVENT);
  }

  /** The container's init died (killed from the host): nothing can run in it any more. */
  private initExited(c: Container): void {
    if ((c.state !== 'active' && c.state !== 'stopped') || c.obituary || this.core.registry.find(c.handle) !== c) return;
    if (c.record.events.includes(INIT_EXITED_EVENT)) return;
    this.core.log.warn({ handle: c.handle }, 'container init exited: container stopped');
    this.markStopped(c, INIT_EXITED_EVENT);
  }

  private markStopped(c: Container, event: string): void {
    c.state = 'stopped';
    if (!c.record.events.includes(event)) c.record.events.push(event);
    c.lock
      .run(async () => {
        await this.core.snapshots.write(c);
        if (c.state === 'stopped') await this.core.backend.stop(c.record, true);
      })
      .catch((err) => this.core.log.warn({ handle: c.handle, err: describeError(err) }, 'stopping after the container died failed'));
  }
}
