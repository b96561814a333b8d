// Small outputs of finished jobs, kept in memory from the moment their watcher
// saw the exit until they are linked: most jobs a DEA links (a staging step, a
// health check) print a few lines, and a Link then answers without opening a
// file. Bounded as a whole: past the budget the oldest go, and a Link of one of
// them reads its files as before.
import type { FinishedOutput } from './job-output.ts';

/** A job whose stdout and stderr together are at most this long has them kept (the worker reads them at its exit). */
export const SMALL_OUTPUT_BYTES = 4096;

/** Bytes of kept output, all jobs together, each job counted with ENTRY_BYTES more. */
const DEFAULT_BUDGET_BYTES = 2 * 1024 * 1024;
/** What an entry costs besides its output (so jobs that printed nothing are bounded too). */
const ENTRY_BYTES = 256;

const cost = (out: FinishedOutput): number => out.stdout.length + out.stderr.length + ENTRY_BYTES;

export class KeptOutputs {
  private readonly budget: number;
  /** By job folder, oldest first (a Map keeps insertion order). */
  private readonly byDir = new Map<string, FinishedOutput>();
  private bytes = 0;

  constructor(budget = DEFAULT_BUDGET_BYTES) {
    this.budget = budget;
  }

  keep(dir: string, out: FinishedOutput): void {
    if (out.stdout.length + out.stderr.length > SMALL_OUTPUT_BYTES || cost(out) > this.budget) return;
    this.drop(dir);
    this.byDir.set(dir, out);
    this.bytes += cost(out);
    for (const [old, kept] of this.byDir) {
      if (this.bytes <= this.budget) break;
      this.byDir.delete(old);
      this.bytes -= cost(kept);
    }
  }

  get(dir: string): FinishedOutput | undefined {
    return this.byDir.get(dir);
  }

  drop(dir: string): void {
    const kept = this.byDir.get(dir);
    if (!kept) return;
    this.byDir.delete(dir);
    this.bytes -= cost(kept);
  }

  get size(): { jobs: number; bytes: number } {
    return { jobs: this.byDir.size, bytes: this.bytes };
  }
}
