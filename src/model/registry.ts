// Handle → container index, and the container ids (11 base-32 characters, like
// the original's) that name folders and host resources.
import { randomInt } from 'node:crypto';
import { HandleExistsError, UnknownHandleError, WardenError } from './errors.ts';
import type { Container } from './container.ts';

export const MAX_HANDLE_LENGTH = 256;

export class ContainerRegistry {
  private readonly byHandle = new Map<string, Container>();
  private readonly ids = new Set<string>();
  private lastMs = 0n;
  private counter = 0n;

  get size(): number {
    return this.byHandle.size;
  }

  /** Throws `unknown handle` when there is none. */
  get(handle: string): Container {
    const c = this.byHandle.get(handle);
    if (!c) throw new UnknownHandleError();
    return c;
  }

  find(handle: string): Container | undefined {
    return this.byHandle.get(handle);
  }

  has(handle: string): boolean {
    return this.byHandle.has(handle);
  }

  handles(): string[] {
    return [...this.byHandle.keys()];
  }

  all(): Container[] {
    return [...this.byHandle.values()];
  }

  add(c: Container): void {
    if (this.byHandle.has(c.handle)) throw new HandleExistsError(c.handle);
    this.byHandle.set(c.handle, c);
    this.ids.add(c.id);
  }

  remove(c: Container): void {
    if (this.byHandle.get(c.handle) === c) this.byHandle.delete(c.handle);
    this.ids.delete(c.id);
  }

  /**
   * A new container id: milliseconds since the epoch and a counter from a random start, in base 32,
   * 11 characters. Unique among live containers and live handles, so a generated
   * handle (which equals the id) never collides with a client's.
   */
  newId(): string {
    for (;;) {
      const ms = BigInt(Date.now());
      if (ms === this.lastMs) this.counter++;
      else {
        // A random start within the millisecond: ids name host-wide resources
        // (interfaces, chains), and another daemon on the host may create in
        // the same millisecond.
        this.lastMs = ms;
        this.counter = BigInt(randomInt(0x2000));
      }
      const id = ((ms << 13n) | (this.counter & 0x1fffn)).toString(32).padStart(11, '0').slice(-11);
      if (!this.ids.has(id) && !this.byHandle.has(id)) return id;
    }
  }
}

/** A client-chosen handle: a name, never a path. */
export function validateHandle(handle: string): void {
  if (handle.length === 0) throw new WardenError('handle must not be empty');
  if (Buffer.byteLength(handle) > MAX_HANDLE_LENGTH) {
    throw new WardenError(`handle is longer than ${MAX_HANDLE_LENGTH} bytes`);
  }
  if (/[\u0000-\u001f\u007f]/.test(handle)) throw new WardenError('handle must not contain control characters');
}
