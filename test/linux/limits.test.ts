// Linux backend limits (root): memory with OOM detection, cpu shares, btrfs disk
// limits that fail writes with EDQUOT, and the figures Info reports.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestHost, type TestHost } from '../support/linux/linux-host.ts';
import { linuxTasks } from '../../src/backends/linux/tasks.ts';
import type { ContainerRecord } from '../../src/model/records.ts';
import type { LinuxFacts } from '../../src/backends/linux/container/facts.ts';

let t: TestHost;
let c: ContainerRecord;
const MiB = 1024 * 1024;

beforeAll(async () => {
  t = await makeTestHost();
  c = await t.create();
});

afterAll(async () => {
  await t?.cleanup();
});

const memoryFile = (name: string) => readFile(join((c.backend as unknown as LinuxFacts).cgroups.memory!, name), 'utf8').then((s) => Number(s.trim()));

it('raises and lowers the memory limit in either order', async () => {
  expect(await linuxTasks['linux.limitMemory']({ c, bytes: 64 * MiB })).toBe(64 * MiB);
  expect(await memoryFile('memory.memsw.limit_in_bytes')).toBe(64 * MiB);
  expect(await linuxTasks['linux.limitMemory']({ c, bytes: 256 * MiB })).toBe(256 * MiB);
  expect(await memoryFile('memory.memsw.limit_in_bytes')).toBe(256 * MiB);
  expect(await linuxTasks['linux.limitMemory']({ c, bytes: 48 * MiB })).toBe(48 * MiB);
  expect(await memoryFile('memory.limit_in_bytes')).toBe(48 * MiB);
  expect(await memoryFile('memory.memsw.limit_in_bytes')).toBe(48 * MiB);
  expect(await linuxTasks['linux.limitMemory']({ c })).toBe(48 * MiB);
});

it('OOM-kills a hog and the counter shows it', async () => {
  await linuxTasks['linux.limitMemory']({ c, bytes: 48 * MiB });
  const facts = c.backend as unknown as LinuxFacts;
  expect(await linuxTasks['linux.oomKilled']({ cgroups: facts.cgroups })).toBe(false);
  const r = await t.job(c, 'dd if=/dev/zero of=/dev/null bs=128M count=1');
  expect(r.exitCode).toBe(137);
  expect(await linuxTasks['linux.oomKilled']({ cgroups: facts.cgroups })).toBe(true);
  // The container itself survives; a job still runs.
  expect((await t.job(c, 'echo ok')).stdout).toBe('ok');
});

it('sets cpu shares', async () => {
  expect(await linuxTasks['linux.limitCpu']({ c, shares: 256 })).toBe(256);
  const f = join((c.backend as unknown as LinuxFacts).cgroups.cpu!, 'cpu.shares');
  expect((await readFile(f, 'utf8')).trim()).toBe('256');
  expect(await linuxTasks['linux.limitCpu']({ c })).toBe(256);
});

it('limits disk bytes: writes past the limit fail with EDQUOT', async () => {
  const limits = await linuxTasks['linux.limitDisk']({ c, limits: { byte_limit: 10 * MiB } });
  expect(limits.byte_limit).toBe(10 * MiB);
  expect(limits.block_limit).toBe(10 * 1024);
  const r = await t.job(c, 'dd if=/dev/zero of=/tmp/big bs=1M count=30 conv=fsync 2>&1; echo "status=$?"; rm -f /tmp/big; sync');
  expect(r.stdout).toMatch(/Disk quota exceeded/);
  expect(r.stdout).toMatch(/status=[1-9]/);
  // In force when asked without values; blocks are 1 KiB.
  expect((await linuxTasks['linux.limitDisk']({ c, limits: {} })).byte_limit).toBe(10 * MiB);
  expect((await linuxTasks['linux.limitDisk']({ c, limits: { block_hard: 40 * 1024 } })).byte_limit).toBe(40 * MiB);
  const ok = await t.job(c, 'dd if=/dev/zero of=/tmp/ok bs=1M count=20 conv=fsync 2>&1; echo "status=$?"; sync');
  expect(ok.stdout).toContain('status=0');
});

it('refuses inode limits with a clear error', async () => {
  await expect(linuxTasks['linux.limitDisk']({ c, limits: { inode_limit: 1000 } })).rejects.toThrow(/inode_limit is not supported/);
});

it('reports disk, memory and cpu usage in info', async () => {
  await t.job(c, 'sync');
  const info = await linuxTasks['linux.info']({ c });
  expect(info.disk_stat?.bytes_used).toBeGreaterThan(15 * MiB); // the 20 MiB file above
  expect(info.memory_stat?.hierarchical_memory_limit).toBe(48 * MiB);
  expect(info.cpu_stat?.usage).toBeGreaterThan(0);
  expect(info.cpu_stat?.user).toBeTypeOf('number');
});
