// The qgroup reaper against a real btrfs (root): deleted subvolumes whose qgroups the
// kernel still holds are reaped in the end, and while the cleaner has not dropped
// them a round forks `btrfs qgroup destroy` at most once, for the oldest. Before,
// every round tried every pending qgroup: about 100 forks a second under steady
// creates and destroys, since a qgroup waits for a transaction commit (up to 30 s).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setHostRunner } from '../../src/host/run.ts';
import { spawnHost, type SpawnRequest } from '../../src/host/spawner.ts';
import { destroyQgroupOrReap, pendingQgroups, reapNow } from '../../src/backends/linux/disk/qgroup-reaper.ts';
import { filesystemId, subvolumeId } from '../../src/backends/linux/disk/subvolume.ts';
import { waitFor } from '../support/linux/linux-daemon.ts';

let dir: string;
let fs: string;
const commands: string[][] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-reaper-'));
  const image = join(dir, 'fs.img');
  fs = join(dir, 'fs');
  await execa('truncate', ['-s', String(512 * 1024 * 1024), image]);
  await execa('mkfs.btrfs', ['-q', image]);
  await execa('mkdir', ['-p', fs]);
  await execa('mount', ['-o', 'loop', image, fs]);
  await execa('btrfs', ['quota', 'enable', fs]);
  setHostRunner((req: SpawnRequest) => {
    commands.push([req.file, ...req.args]);
    return spawnHost(req);
  });
}, 60_000);

afterAll(async () => {
  setHostRunner(undefined);
  if (fs) await execa('umount', [fs]).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `btrfs qgroup destroy` forks so far, by qgroup id. */
const destroysOf = (id: number) => commands.filter((c) => c[0] === 'btrfs' && c[1] === 'qgroup' && c[2] === 'destroy' && c[3] === `0/${id}`).length;

it('reaps the qgroups of deleted subvolumes, with at most one destroy a round while the cleaner holds them', async () => {
  const ids: number[] = [];
  for (let i = 0; i < 4; i++) {
    const sub = join(fs, `c${i}`);
    await execa('btrfs', ['subvolume', 'create', sub]);
    await writeFile(join(sub, 'data'), Buffer.alloc(4 * 1024 * 1024, i + 1));
    ids.push(await subvolumeId(sub));
  }
  await execa('sync');
  for (const [i, id] of ids.entries()) {
    await execa('btrfs', ['subvolume', 'delete', join(fs, `c${i}`)]);
    await destroyQgroupOrReap(fs, id);
  }
  const fsid = await filesystemId(fs);
  const present = async (id: number) => stat(`/sys/fs/btrfs/${fsid}/qgroups/0_${id}`).then(() => true, () => false);
  if (pendingQgroups(fs).includes(ids[0]!)) {
    // This kernel refuses a qgroup until the cleaner dropped its tree (6.x). The first
    // delete asked and learned it; the later ones went straight to the reaper. While
    // the oldest is held, no round (the reaper's own timer may run one meanwhile, and
    // two more here) forks a destroy for a younger one.
    expect(pendingQgroups(fs)).toEqual(ids);
    await reapNow();
    await reapNow();
    for (const id of ids.slice(1)) expect(destroysOf(id), `destroys of 0/${id}`).toBe(0);
    expect(destroysOf(ids[0]!)).toBeGreaterThanOrEqual(1);
    expect(pendingQgroups(fs)).toEqual(ids);
  } else {
    // An older kernel: each qgroup went with its subvolume.
    for (const id of ids) expect(destroysOf(id), `destroys of 0/${id}`).toBe(1);
    expect(pendingQgroups(fs)).toEqual([]);
  }

  // A commit lets the cleaner drop the trees; then rounds reap every one of them.
  await execa('btrfs', ['filesystem', 'sync', fs]);
  await execa('btrfs', ['subvolume', 'sync', fs]);
  await waitFor('every qgroup reaped', async () => {
    if (pendingQgroups(fs).length > 0) await reapNow();
    return pendingQgroups(fs).length === 0;
  }, 60_000, 200);
  for (const id of ids) expect(await present(id), `qgroup 0/${id}`).toBe(false);
}, 120_000);
