// Through the real daemon (Linux backend): memory (OOM kill, event, stop), disk
// (btrfs qgroup), cpu shares, bandwidth (tc, measured) and refused inode limits,
// checked inside the container and on the host. Pool 10.245.2.0/24.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { LinuxDaemon, tcpExchange, waitFor, waitListening } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';

const MiB = 1024 * 1024;
let d: LinuxDaemon;
let client: WardenClient;

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.245.2.0/24', portStart: 24200, uidStart: 32000 });
  client = await d.client();
});

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
});

const cgroupNumber = async (dir: string | undefined, file: string) => Number((await readFile(join(dir!, file), 'utf8')).trim());

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => client);

describe('LimitMemory', () => {
  it('sets the limit; a hog is OOM-killed (255), `out of memory` is recorded and the container stops', async () => {
    const { handle, id } = await d.create(client);
    const cg = await d.cgroups(id);
    expect(await client.limitMemory({ handle, limit_in_bytes: 64 * MiB })).toEqual({ limit_in_bytes: 64 * MiB });
    expect(await client.limitMemory({ handle })).toEqual({ limit_in_bytes: 64 * MiB });
    expect(await cgroupNumber(cg.memory, 'memory.limit_in_bytes')).toBe(64 * MiB);
    const before = await client.info({ handle });
    expect(before.memory_stat?.hierarchical_memory_limit).toBe(64 * MiB);

    // dd's 128 MiB buffer is touched by the read from /dev/zero.
    const hog = await d.run(client, handle, 'echo start; exec dd if=/dev/zero of=/dev/null bs=128M count=1');
    expect(hog.exit_status).toBe(255);
    expect(hog.stdout).toBe('start\n');

    const info = await waitFor('the container to stop after the OOM kill', async () => {
      const i = await client.info({ handle });
      return i.state === 'stopped' && (i.events ?? []).includes('out of memory') ? i : undefined;
    }, 5_000);
    expect(info.memory_stat?.hierarchical_memory_limit).toBe(64 * MiB);
    const oom = (await readFile(join(cg.memory!, 'memory.oom_control'), 'utf8')).match(/oom_kill (\d+)/);
    expect(Number(oom?.[1])).toBeGreaterThan(0);
    // Stopped: no new jobs; info and limits still answer.
    await expect(client.run({ handle, script: 'true' })).rejects.toThrow(/stopped/);
    expect(await client.limitMemory({ handle })).toEqual({ limit_in_bytes: 64 * MiB });
    await client.destroy({ handle });
  });

  it('refuses a limit below what the container uses, with a readable error', async () => {
    const { handle } = await d.create(client);
    await expect(client.limitMemory({ handle, limit_in_bytes: 4096 })).rejects.toThrow(/memory limit 4096/);
    await client.destroy({ handle });
  });
});

describe('LimitDisk, LimitCpu and LimitBandwidth', () => {
  let handle: string;
  let id: string;
  let containerIp: string;
  let initPid: number;
  let path: string;

  beforeAll(async () => {
    const c = await d.create(client);
    handle = c.handle;
    id = c.id;
    containerIp = c.info.container_ip!;
    path = c.info.container_path!;
    initPid = await d.initPid(path);
  });

  it('byte_limit: a write past it fails inside, disk_stat shows the usage', async () => {
    const r = await client.limitDisk({ handle, byte_limit: 10 * MiB });
    expect(r).toMatchObject({ byte_limit: 10 * MiB, block_limit: 10 * 1024 });
    expect(await client.limitDisk({ handle })).toMatchObject({ byte_limit: 10 * MiB });

    // Within the limit: 4 MiB, synced so btrfs accounts it now rather than at the next commit.
    const small = await d.run(client, handle, 'dd if=/dev/urandom of=/tmp/small bs=1M count=4 2>/dev/null; sync; echo "rc=$?"');
    expect(small.stdout).toBe('rc=0\n');
    const info = await client.info({ handle });
    expect(info.disk_stat?.bytes_used).toBeGreaterThanOrEqual(4 * MiB);
    expect(info.disk_stat?.bytes_used).toBeLessThan(10 * MiB);

    const big = await d.run(client, handle, 'dd if=/dev/zero of=/tmp/big bs=1M count=30 conv=fsync 2>&1; echo "rc=$?"');
    expect(big.stdout).toMatch(/Disk quota exceeded|No space left/);
    expect(big.stdout).toMatch(/rc=[1-9]/);

    // On the host: the subvolume's qgroup carries the limit.
    const qg = await execa('btrfs', ['qgroup', 'show', '-re', '--raw', join(path, 'tmp')]);
    expect(qg.stdout).toContain(String(10 * MiB));

    // Freed space can be written again.
    const again = await d.run(client, handle, 'rm -f /tmp/big /tmp/small; sync; dd if=/dev/zero of=/tmp/ok bs=1M count=5 conv=fsync 2>&1; echo "rc=$?"');
    expect(again.stdout).toMatch(/rc=0/);
  });

  it('inode limits are refused with an error naming the field', async () => {
    await expect(client.limitDisk({ handle, inode_limit: 1000 })).rejects.toThrow(/inode_limit/);
    await expect(client.limitDisk({ handle, inode_hard: 10 })).rejects.toThrow(/inode_hard/);
    // The byte limit in force is unchanged.
    expect(await client.limitDisk({ handle })).toMatchObject({ byte_limit: 10 * MiB });
  });

  it('LimitCpu sets and returns the shares', async () => {
    expect(await client.limitCpu({ handle, limit_in_shares: 256 })).toEqual({ limit_in_shares: 256 });
    expect(await client.limitCpu({ handle })).toEqual({ limit_in_shares: 256 });
    expect(await cgroupNumber((await d.cgroups(id)).cpu, 'cpu.shares')).toBe(256);
  });

  it('LimitBandwidth shapes both directions to the rate (within 20%)', async () => {
    const rate = 1024 * 1024; // bytes/s
    const burst = 64 * 1024;
    const bytes = 2 * MiB;
    expect(await client.limitBandwidth({ handle, rate, burst })).toEqual({ rate, burst });
    const info = await client.info({ handle });
    expect(info.bandwidth_stat).toMatchObject({ in_rate: rate, out_rate: rate });
    const qdisc = await execa('tc', ['qdisc', 'show', 'dev', `w-${id}-0`]);
    expect(qdisc.stdout).toMatch(/tbf .*rate 8388Kbit/);

    // Upload: the container reads exactly `bytes`, then answers ok.
    await client.spawn({ handle, script: `exec nc -l -p 9001 -e sh -c 'head -c ${bytes} >/dev/null; echo ok'` });
    // Download: the container sends `bytes`.
    await client.spawn({ handle, script: `exec nc -l -p 9002 -e head -c ${bytes} /dev/zero` });
    await waitListening(initPid, 9001);
    await waitListening(initPid, 9002);

    const up = await tcpExchange(containerIp, 9001, bytes, 10_000);
    expect(up.error).toBeUndefined();
    expect(up.data.toString()).toBe('ok\n');
    const down = await tcpExchange(containerIp, 9002, '', 10_000);
    expect(down.error).toBeUndefined();
    expect(down.data.length).toBe(bytes);
    const upRate = bytes / (up.ms / 1000);
    const downRate = bytes / (down.ms / 1000);
    console.log(`shaped at ${rate} B/s: host->container ${upRate.toFixed(0)} B/s, container->host ${downRate.toFixed(0)} B/s`);
    expect(upRate / rate).toBeGreaterThan(0.8);
    expect(upRate / rate).toBeLessThan(1.2);
    expect(downRate / rate).toBeGreaterThan(0.8);
    expect(downRate / rate).toBeLessThan(1.2);
  });

  it('destroy leaves no qdisc, qgroup or cgroup behind', async () => {
    await client.destroy({ handle });
    expect(await d.hostLeaks()).toEqual([]);
  });
});
