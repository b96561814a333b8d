// Through the real daemon (Linux backend, root): Destroy does not wait for btrfs's
// cleaner. A container that wrote 1 GB leaves the cleaner seconds of work; the destroy
// answers at once, later creates and destroys are not queued behind it, and the
// subvolume's qgroup is gone in the end (the kernel or the qgroup reaper removes it).
// Pool 10.247.112.0/24, ports 38000-38099, uids 55000-55063.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execa } from 'execa';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LinuxDaemon, waitFor } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';
import { staleQgroups } from '../../src/backends/linux/disk/qgroup-reaper.ts';
import { filesystemId } from '../../src/backends/linux/disk/subvolume.ts';

let d: LinuxDaemon;
let client: WardenClient;

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.247.112.0/24', portStart: 38000, uidStart: 55000 });
  client = await d.client();
});

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
});

/** Subvolumes deleted but not yet dropped by the cleaner (`btrfs subvolume list -d`). */
async function uncleaned(depot: string): Promise<number[]> {
  const out = await execa('btrfs', ['subvolume', 'list', '-d', depot]);
  return [...out.stdout.matchAll(/^ID (\d+) /gm)].map((m) => Number(m[1]));
}

it('destroys a container that wrote 1 GB without waiting for the cleaner, and no qgroup stays', async () => {
  const { handle, info } = await d.create(client);
  const big = await d.run(client, handle, 'head -c 1073741824 /dev/zero > /tmp/big && sync && echo written');
  expect(big.stdout).toBe('written\n');
  const subvol = join(info.container_path!, 'tmp');
  const subvolId = Number((await execa('btrfs', ['inspect-internal', 'rootid', subvol])).stdout.trim());
  const depot = d.settings.depot;

  await client.destroy({ handle });
  // The destroy answered while the cleaner still had the 1 GB tree to drop: it did not wait.
  expect(await uncleaned(depot)).toContain(subvolId);
  expect(await staleQgroups(depot)).toContain(subvolId);
  expect((await client.list()).handles ?? []).not.toContain(handle);

  // Later containers are not queued behind that deletion.
  for (let i = 0; i < 2; i++) {
    const c = await d.create(client);
    expect((await d.run(client, c.handle, 'echo hi > /tmp/x && cat /tmp/x')).stdout).toBe('hi\n');
    await client.destroy({ handle: c.handle });
  }
  expect((await client.list()).handles ?? []).toEqual([]);

  // In the end the qgroup goes: nothing stale is left in the depot.
  const fsid = await filesystemId(depot);
  await waitFor('the big subvolume qgroup to go', async () => !(await stat(`/sys/fs/btrfs/${fsid}/qgroups/0_${subvolId}`).catch(() => undefined)), 300_000, 500);
  await waitFor('no stale qgroups', async () => (await staleQgroups(depot)).length === 0, 60_000, 500);
  expect(await d.hostLeaks()).toEqual([]);
}, 600_000);
