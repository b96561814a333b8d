// What every scenario gets: the target daemon, options, where results go, the
// progress bar, the container tracker, the raw baselines, a scratch folder, and
// the run's abort signal (Ctrl-C). Connections are opened through connect() so
// that an interrupt can close them all (which cancels Streams and Links).
import { WardenClient } from '../../src/client/client.ts';
import type { RawInsecure } from './baselines/raw-insecure.ts';
import type { RawLinux } from './baselines/raw-linux.ts';
import type { BenchOptions } from './cli.ts';
import type { Target } from './daemon.ts';
import type { ResourceSampler } from './proc.ts';
import type { Progress } from './progress.ts';
import type { Results } from './results.ts';
import type { Tracker } from './tracker.ts';

export interface BenchContext {
  target: Target;
  opts: BenchOptions;
  results: Results;
  progress: Progress;
  tracker: Tracker;
  signal: AbortSignal;
  /** Scratch folder of this run (bind mount sources, app folders, copy-out targets, baseline files). */
  tmp: string;
  rawLinux: RawLinux | undefined;
  rawInsecure: RawInsecure | undefined;
  sampler: ResourceSampler;
  /** A new connection to the daemon, closed by closeAll() (and at interrupt). */
  connect(): Promise<WardenClient>;
  /** Ids of the daemon's containers as they are now (host traces; recorded for the leak check). */
  noteIds(): Promise<void>;
}

export class Connections {
  private readonly open = new Set<WardenClient>();
  private readonly socket: string;

  constructor(socket: string) {
    this.socket = socket;
  }

  async connect(): Promise<WardenClient> {
    const c = await WardenClient.connect(this.socket);
    this.open.add(c);
    return c;
  }

  async close(c: WardenClient): Promise<void> {
    this.open.delete(c);
    await c.close().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    const all = [...this.open];
    this.open.clear();
    await Promise.all(all.map((c) => c.close().catch(() => undefined)));
  }
}

/** Opens n connections. */
export async function connections(ctx: BenchContext, n: number): Promise<WardenClient[]> {
  const out: WardenClient[] = [];
  for (let i = 0; i < n; i++) out.push(await ctx.connect());
  return out;
}

export async function closeAll(clients: WardenClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
}
