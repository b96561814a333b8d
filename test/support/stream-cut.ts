// A Stream of a job whose container is destroyed while the stream runs: what
// the client got, and whether the stream ended (a hung stream would wait for
// ever). Shared by the insecure and the Linux hole tests.
import { expect } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import type { StreamResponse } from '../../src/protocol/types.ts';
import { settlesWithin } from './wait.ts';

/**
 * Starts `echo started; exec sleep 600` in handle, streams it on `streamer`,
 * destroys the container on `c` once the first output arrived, and checks that
 * the stream then ends with that output and one final frame of exit status 255.
 */
export async function expectStreamEndsOnDestroy(c: WardenClient, streamer: WardenClient, handle: string): Promise<void> {
  const { job_id } = await c.spawn({ handle, script: 'echo started; exec sleep 600' });
  const frames: StreamResponse[] = [];
  let failure: Error | undefined;
  let firstData: () => void = () => {};
  const gotData = new Promise<void>((r) => (firstData = r));
  const reading = (async () => {
    try {
      for await (const f of streamer.stream({ handle, job_id })) {
        frames.push(f);
        if (f.data) firstData();
      }
    } catch (err) {
      failure = err as Error;
    }
  })();
  await gotData;
  await c.destroy({ handle });
  // A generous bound only: without an end the client would wait for ever.
  expect(await settlesWithin(reading, 30_000)).toBe(true);
  expect(failure).toBeUndefined();
  const text = (b: string | Uint8Array | undefined) => (typeof b === 'string' ? b : Buffer.from(b ?? new Uint8Array()).toString('utf8'));
  expect(frames.filter((f) => f.data).map((f) => text(f.data)).join('')).toBe('started\n');
  expect(frames.at(-1)).toMatchObject({ exit_status: 255 });
  expect(frames.filter((f) => f.exit_status !== undefined && f.exit_status !== null)).toHaveLength(1);
}
