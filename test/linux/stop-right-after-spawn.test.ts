// A Stop (kill) that comes right after a Spawn, while the job's `runc exec` may still
// be starting: the job must end (255, a signal death) and Link must answer, every
// time. Before, about half of these jobs were missed by the kill (not yet in the
// container's cgroups) and ran on in the stopped container. Pool 10.247.129.0/24.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinuxDaemon } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';

let d: LinuxDaemon;
let client: WardenClient;

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.247.129.0/24', portStart: 39200, uidStart: 57200 });
  client = await d.client();
});

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
});

/** Resolves with the promise's value, or 'hung' after ms. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'hung'> {
  return Promise.race([p, new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms))]);
}

describe('Stop right after Spawn', () => {
  it('Link answers for a job killed while it was starting, each of 12 times', async () => {
    const statuses: Array<number | 'hung'> = [];
    for (let i = 0; i < 12; i++) {
      const { handle } = await d.create(client);
      const { job_id } = await client.spawn({ handle, script: 'sleep 100' });
      await client.stop({ handle, kill: true });
      const k = await d.client();
      const r = await within(k.link({ handle, job_id }), 20_000);
      statuses.push(r === 'hung' ? 'hung' : r.exit_status!);
      await client.destroy({ handle });
    }
    expect(statuses).toEqual(Array(12).fill(255));
  }, 600_000);
});
