// Info reads in batches: the Infos asked for in one turn of the event loop (a Link
// burst over many containers, a dashboard's bulk Info) go to a worker as one task.
// Handing a task to a worker costs the main thread 40-60 us on these VMs (piscina's
// queue, the copy, the worker's wake-up), about what the worker's reads of one
// container cost; every read still starts after its request came.
import type { ContainerRecord } from '../../model/records.ts';
import { WardenError } from '../../model/errors.ts';
import type { InfoResponse } from '../../protocol/types.ts';

/** Containers one task reads at most (a batch holds its worker for ~20 us each). */
const BATCH = 64;

/** One container's figures, or why they could not be read. */
export type InfoOutcome = { info: InfoResponse } | { error: string };

type ReadOne = (c: ContainerRecord) => Promise<InfoResponse>;
type ReadMany = (cs: ContainerRecord[]) => Promise<InfoOutcome[]>;

export class InfoBatch {
  private queued: { c: ContainerRecord; resolve: (i: InfoResponse) => void; reject: (e: unknown) => void }[] = [];
  private readonly one: ReadOne;
  private readonly many: ReadMany;

  constructor(one: ReadOne, many: ReadMany) {
    this.one = one;
    this.many = many;
  }

  read(c: ContainerRecord): Promise<InfoResponse> {
    return new Promise((resolve, reject) => {
      this.queued.push({ c, resolve, reject });
      if (this.queued.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const all = this.queued;
    this.queued = [];
    for (let i = 0; i < all.length; i += BATCH) {
      const batch = all.slice(i, i + BATCH);
      if (batch.length === 1) {
        const [b] = batch;
        this.one(b!.c).then(b!.resolve, b!.reject);
        continue;
      }
      this.many(batch.map((b) => b.c)).then(
        (outcomes) =>
          batch.forEach((b, k) => {
            const o = outcomes[k];
            if (o && 'info' in o) b.resolve(o.info);
            else b.reject(new WardenError(o?.error ?? 'no figures read'));
          }),
        (err: unknown) => batch.forEach((b) => b.reject(err)),
      );
    }
  }
}
