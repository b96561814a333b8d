// References and grace time: which connections name a container, and the timer
// that destroys a container no connection has referenced for its grace time.
import type { Logger } from 'pino';
import type { Container } from '../model/container.ts';
import { describeError } from '../model/errors.ts';
import type { ContainerRegistry } from '../model/registry.ts';

export class GraceTimers {
  private readonly registry: ContainerRegistry;
  private readonly log: Logger;
  private readonly destroy: (c: Container) => Promise<void>;

  constructor(registry: ContainerRegistry, log: Logger, destroy: (c: Container) => Promise<void>) {
    this.registry = registry;
    this.log = log;
    this.destroy = destroy;
  }

  /** The connection now references c: its grace timer, if running, stops. */
  reference(c: Container, connectionId: number): void {
    c.references.add(connectionId);
    this.cancel(c);
  }

  /**
   * A new connection references every container there is, as the original's did
   * (its post_init): a client that reconnects (after a restart too) holds off
   * their grace time without naming them first. Containers that never expire
   * (grace_time null) need no reference, and are skipped.
   */
  connected(connectionId: number, references: Set<Container>): void {
    for (const c of this.registry.all()) {
      if (c.record.grace_time === null || (c.state !== 'active' && c.state !== 'stopped')) continue;
      this.reference(c, connectionId);
      references.add(c);
    }
  }

  /** A connection closed: containers it alone referenced start their grace time. */
  release(connectionId: number, containers: Iterable<Container>): void {
    for (const c of containers) {
      c.references.delete(connectionId);
      if (c.references.size === 0) this.arm(c);
    }
  }

  arm(c: Container): void {
    const grace = c.record.grace_time;
    // Not while born: Create arms it when it is done (a reaper racing a create
    // would destroy a container the create then goes on to finish).
    if (grace === null || c.graceTimer || c.state === 'destroyed' || c.state === 'born') return;
    c.graceTimer = setTimeout(() => {
      c.graceTimer = undefined;
      if (c.references.size > 0 || this.registry.find(c.handle) !== c) return;
      this.log.info({ handle: c.handle }, 'grace time expired, destroying container');
      this.destroy(c).catch((err) => this.log.error({ handle: c.handle, err: describeError(err) }, 'destroy after grace time failed'));
    }, grace * 1000);
    c.graceTimer.unref();
  }

  cancel(c: Container): void {
    if (c.graceTimer) clearTimeout(c.graceTimer);
    c.graceTimer = undefined;
  }
}
