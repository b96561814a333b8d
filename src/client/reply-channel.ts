// The replies to one streaming request, handed to an async iterator as they
// arrive. Past `highWater` unread replies it asks its producer to pause (the
// client stops reading the socket) and to resume once the reader has caught up
// to `lowWater`, so a slow reader bounds memory instead of buffering a job's
// whole output.

export interface ReplyChannelOptions {
  /** Called when unread replies reach highWater, and again once they fall to lowWater. */
  onPressure?: (paused: boolean) => void;
  /** Default 64. */
  highWater?: number;
  /** Default 16. */
  lowWater?: number;
}

export class ReplyChannel<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (err: Error) => void } | undefined;
  private finished = false;
  private failure: Error | undefined;
  private paused = false;
  private readonly onPressure: (paused: boolean) => void;
  private readonly highWater: number;
  private readonly lowWater: number;

  constructor(options: ReplyChannelOptions = {}) {
    this.onPressure = options.onPressure ?? (() => {});
    this.highWater = options.highWater ?? 64;
    this.lowWater = options.lowWater ?? 16;
  }

  push(item: T): void {
    if (this.finished) return;
    if (this.waiter) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve({ value: item, done: false });
      return;
    }
    this.items.push(item);
    if (!this.paused && this.items.length >= this.highWater) this.setPaused(true);
  }

  /** No more items: the reader gets what is buffered, then done. */
  end(): void {
    this.finish(undefined);
  }

  /** The reader gets what is buffered, then this error. */
  fail(err: Error): void {
    this.finish(err);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      const value = this.items.shift() as T;
      if (this.paused && this.items.length <= this.lowWater) this.setPaused(false);
      return Promise.resolve({ value, done: false });
    }
    if (this.failure) {
      const err = this.failure;
      this.failure = undefined; // reported once, then the iterator is done
      return Promise.reject(err);
    }
    if (this.finished) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The reader stopped early (break out of for-await): drop what is left. */
  return(): Promise<IteratorResult<T>> {
    this.items.length = 0;
    this.failure = undefined;
    this.finished = true;
    if (this.paused) this.setPaused(false);
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private finish(err: Error | undefined): void {
    if (this.finished) return;
    this.finished = true;
    // Nothing more will be produced, so there is nothing left to hold back.
    this.paused = false;
    if (this.waiter) {
      const { resolve, reject } = this.waiter;
      this.waiter = undefined;
      if (err) reject(err);
      else resolve({ value: undefined, done: true });
      return;
    }
    this.failure = err;
  }

  private setPaused(paused: boolean): void {
    this.paused = paused;
    this.onPressure(paused);
  }
}
