// Through the real daemon (Linux backend, root): a privileged job is host root with
// Docker's default capabilities, so the host's `/` as a container's rootfs, or bound
// read-write into it, is refused unless server.allow_host_root is true.
// Pools 10.247.113.0/24 and 10.247.114.0/24, ports 38100-38299, uids 55100-55227.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LinuxDaemon } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';
import { BindMountMode } from '../../src/protocol/types.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';

let d: LinuxDaemon;
let client: WardenClient;
let links: string;

beforeAll(async () => {
  links = await mkdtemp(join(tmpdir(), 'warden-hostroot-'));
  await symlink('/', join(links, 'root-link'));
  d = await LinuxDaemon.start({ pool: '10.247.113.0/24', portStart: 38100, uidStart: 55100 });
  client = await d.client();
});

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  await rm(links, { recursive: true, force: true });
  expect(problems).toEqual([]);
});

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => client);

describe('by default', () => {
  it('refuses rootfs / (and what resolves to it) with a message naming the key', async () => {
    const before = (await client.list()).handles ?? [];
    for (const rootfs of ['/', '/tmp/..', join(links, 'root-link')]) {
      await expect(client.create({ rootfs })).rejects.toThrow(/host's root filesystem.*server\.allow_host_root: true/);
    }
    expect((await client.list()).handles ?? []).toEqual(before);
  });

  it('refuses a read-write bind mount of / (and what resolves to it)', async () => {
    const before = (await client.list()).handles ?? [];
    for (const src of ['/', '//', '/etc/..', join(links, 'root-link')]) {
      const bind_mounts = [{ src_path: src, dst_path: '/host', mode: BindMountMode.RW }];
      await expect(client.create({ bind_mounts })).rejects.toThrow(/read-write bind mount of .* is the host's root filesystem.*server\.allow_host_root/);
    }
    expect((await client.list()).handles ?? []).toEqual(before);
  });

  it('allows a read-only bind mount of /', async () => {
    const { handle } = await d.create(client, { bind_mounts: [{ src_path: '/', dst_path: '/host', mode: BindMountMode.RO }] });
    const r = await d.run(client, handle, 'test -d /host/proc && touch /host/warden-hostroot-probe; echo $?', true);
    expect(r.stdout.trim()).not.toBe('0');
    await client.destroy({ handle });
  });
});

describe('with server.allow_host_root: true', () => {
  it('allows a read-write bind mount of /', async () => {
    const allowed = await LinuxDaemon.start({
      pool: '10.247.114.0/24', portStart: 38200, uidStart: 55164, server: { allow_host_root: true },
    });
    try {
      const c = await allowed.client();
      const { handle } = await allowed.create(c, { bind_mounts: [{ src_path: '/', dst_path: '/host', mode: BindMountMode.RW }] });
      expect((await allowed.run(c, handle, 'test -d /host/proc && echo host', true)).stdout).toBe('host\n');
      await c.destroy({ handle });
    } finally {
      expect(await allowed.cleanup()).toEqual([]);
    }
  }, 120_000);
});
