// A daemon killed with its host state (an environment restart, kill -9 of the
// whole tree) leaves empty cgroup parents warden-<tag> behind; the next daemon's
// start removes those of tags nobody uses, and leaves a parent that still holds
// groups. Checked on the host's real hierarchies (root).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { hierarchies } from '../../src/backends/linux/cgroups/cgroups.ts';
import { removeStaleCgroupParents } from '../../src/backends/linux/host/setup.ts';

// Tags no daemon record names: stale by definition.
const dead = randomBytes(4).toString('hex');
const busy = randomBytes(4).toString('hex');
const made: string[] = [];

afterAll(async () => {
  for (const d of made.reverse()) await rmdir(d).catch(() => undefined);
});

it('removes empty parents of dead tags (and their -daemon group), keeps one that holds a group', async () => {
  const owns = (await hierarchies()).map((h) => h.own);
  for (const own of owns) {
    for (const name of [`warden-${dead}`, `warden-${busy}`]) {
      await mkdir(join(own, name), { recursive: true });
      made.push(join(own, name));
    }
  }
  const cpu = owns.find((o) => /\/cpu[,/]|\/cpu$/.test(o)) ?? owns[0]!;
  await mkdir(join(cpu, `warden-${dead}-daemon`));
  made.push(join(cpu, `warden-${dead}-daemon`));
  await mkdir(join(owns[0]!, `warden-${busy}`, 'instance-left'));
  made.push(join(owns[0]!, `warden-${busy}`, 'instance-left'));

  const removed = await removeStaleCgroupParents('00000000');

  for (const own of owns) expect(existsSync(join(own, `warden-${dead}`))).toBe(false);
  expect(existsSync(join(cpu, `warden-${dead}-daemon`))).toBe(false);
  expect(removed).toEqual(expect.arrayContaining(owns.map((o) => join(o, `warden-${dead}`))));
  // rmdir only: a parent with a group inside is not ours to empty.
  expect(existsSync(join(owns[0]!, `warden-${busy}`, 'instance-left'))).toBe(true);
});
