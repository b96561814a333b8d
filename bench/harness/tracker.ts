// Every container the harness asks for gets a handle with the run's prefix
// (bench-<run>-<n>), recorded before the Create is sent: whatever happens
// (a reply lost to Ctrl-C, a scenario that throws half-way), cleanup finds
// them all by that prefix in the daemon's List and destroys them.
import { WardenClient, WardenError } from '../../src/client/client.ts';
import type { CreateRequest } from '../../src/protocol/types.ts';
import { messageOf } from './util.ts';

export class Tracker {
  readonly prefix: string;
  private seq = 0;
  /** Handles whose Create was sent and that were not destroyed since. */
  readonly live = new Set<string>();

  constructor(run: string) {
    this.prefix = `bench-${run}-`;
  }

  nextHandle(): string {
    return `${this.prefix}${++this.seq}`;
  }

  owns(handle: string): boolean {
    return handle.startsWith(this.prefix);
  }

  /** Create with a tracked handle; returns it. */
  async create(c: WardenClient, req: CreateRequest = {}): Promise<string> {
    const handle = this.nextHandle();
    this.live.add(handle);
    try {
      await c.create({ ...req, handle });
    } catch (err) {
      // An ErrorResponse means the daemon made nothing that stays; anything else (a lost
      // connection) may have left it half-way: keep it for cleanup.
      if (err instanceof WardenError) this.live.delete(handle);
      throw err;
    }
    return handle;
  }

  async destroy(c: WardenClient, handle: string): Promise<void> {
    await c.destroy({ handle });
    this.live.delete(handle);
  }

  /**
   * Destroys every container of ours the daemon lists, with a few connections at once.
   * Returns the failures; what is left is in the next List.
   */
  async destroyAll(socket: string, concurrency = 8, onProgress?: (done: number, total: number) => void): Promise<string[]> {
    const errors: string[] = [];
    const c = await WardenClient.connect(socket);
    try {
      const { handles = [] } = await c.list();
      const ours = handles.filter((h) => this.owns(h));
      let done = 0;
      const queue = [...ours];
      await Promise.all(
        Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
          const k = await WardenClient.connect(socket);
          try {
            for (let h = queue.shift(); h !== undefined; h = queue.shift()) {
              try {
                await k.destroy({ handle: h });
                this.live.delete(h);
              } catch (err) {
                if (/unknown handle/i.test(messageOf(err))) this.live.delete(h);
                else errors.push(`destroy ${h}: ${messageOf(err)}`);
              }
              onProgress?.(++done, ours.length);
            }
          } finally {
            await k.close();
          }
        }),
      );
    } finally {
      await c.close();
    }
    return errors;
  }

  /** Our handles the daemon still lists. */
  async listed(socket: string): Promise<string[]> {
    const c = await WardenClient.connect(socket);
    try {
      const { handles = [] } = await c.list();
      return handles.filter((h) => this.owns(h));
    } finally {
      await c.close();
    }
  }
}
