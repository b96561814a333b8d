// Writes containers' snapshot.json (main thread side; the write itself is a
// depot task in a worker). Concurrent requests for one container coalesce: at
// most one write runs and one more is queued, and the queued one writes the
// record as it is when it starts, so no change is lost and none waits long.
// A snapshot that holds what the file already holds is not written again: a
// drain and a restart's adoption rewrote every container's for nothing.
import { createHash } from 'node:crypto';
import type { Container } from '../model/container.ts';
import type { TaskRunner } from '../workers/pool.ts';
import { stringify64 } from '../protocol/json64.ts';
import { toSnapshot } from './snapshot-format.ts';

/** snapshot.json's text for a snapshot value (as parsed from the file, or made by toSnapshot). */
export function snapshotText(value: unknown): string {
  return `${stringify64(value, 1)}\n`;
}

/** What Container.snapshotDigest holds for a snapshot text. */
export function snapshotDigest(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}

export class SnapshotWriter {
  private readonly pool: TaskRunner;

  constructor(pool: TaskRunner) {
    this.pool = pool;
  }

  /** Write c's snapshot; resolves once a write that started after this call is done. */
  write(c: Container): Promise<void> {
    if (c.state === 'destroyed' || c.destroying) return Promise.resolve();
    if (c.snapshotQueued) return c.snapshotQueued;
    const write = async (): Promise<void> => {
      c.snapshotQueued = undefined;
      try {
        const text = snapshotText(toSnapshot(c.record));
        const digest = snapshotDigest(text);
        if (digest === c.snapshotDigest) return;
        // Unknown until this write is done: a failed one may have left either text.
        c.snapshotDigest = undefined;
        await this.pool.run('state.writeText', { path: c.snapshotPath, text });
        c.snapshotDigest = digest;
      } finally {
        c.snapshotting = undefined;
      }
    };
    if (!c.snapshotting) {
      c.snapshotting = write();
      return c.snapshotting;
    }
    c.snapshotQueued = c.snapshotting.catch(() => {}).then(() => {
      c.snapshotting = write();
      return c.snapshotting;
    });
    return c.snapshotQueued;
  }

  /** Every container's, failures ignored (drain). */
  async writeAll(cs: readonly Container[]): Promise<void> {
    await Promise.all(cs.map((c) => this.write(c).catch(() => {})));
  }

  /** Waits for c's writes in flight (a Destroy removes the snapshot after them). */
  async settled(c: Container): Promise<void> {
    await c.snapshotting?.catch(() => {});
    await c.snapshotQueued?.catch(() => {});
  }
}
