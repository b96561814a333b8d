// Process-wide job ids that are never reused, across restarts too. Ids are
// reserved in blocks whose upper bound is persisted before any id of the block
// is handed out (a hi/lo allocator), so a crash can skip ids but never repeat one.

export const JOB_ID_BLOCK = 1000;

export class JobIdAllocator {
  private next: number;
  private ceiling: number;
  private reserving: Promise<void> | undefined;
  private readonly persist: (ceiling: number) => Promise<void>;

  /** `start` is above every id seen or reserved before; `persist` durably records a new ceiling. */
  constructor(start: number, persist: (ceiling: number) => Promise<void>) {
    this.next = Math.max(1, start);
    this.ceiling = this.next - 1;
    this.persist = persist;
  }

  async allocate(): Promise<number> {
    while (this.next > this.ceiling) {
      if (!this.reserving) {
        const target = this.ceiling + JOB_ID_BLOCK;
        this.reserving = this.persist(target).then(
          () => {
            this.ceiling = target;
            this.reserving = undefined;
          },
          (err) => {
            this.reserving = undefined;
            throw err;
          },
        );
      }
      await this.reserving;
    }
    return this.next++;
  }
}
