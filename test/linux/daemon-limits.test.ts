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
  d = await LinuxDaemon.start({ pool: '10.245.2.0/24', portStart: 24200, uidStart: 32000, health: { containers_on_tcp: true } });
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

  // The precise shaped rate is the bench's figure; here, measured over ~4 s a direction
  // and bounded loosely so a busy machine cannot trip it: shaping happens (the shaped
  // rate is not above 2x the limit and well below the unshaped rate) and does not
  // overshoot (not below a quarter of the limit: wrong units would be 8x off).
  it('LimitBandwidth shapes both directions to about the rate', async () => {
    const rate = 1024 * 1024; // bytes/s
    const burst = 64 * 1024;
    const bytes = 4 * MiB;
    /** host->container and container->host rates in B/s, through fresh nc listeners on these ports. */
    const measure = async (upPort: number, downPort: number): Promise<{ up: number; down: number }> => {
      // Upload: the container reads exactly `bytes`, then answers ok.
      await client.spawn({ handle, script: `exec nc -l -p ${upPort} -e sh -c 'head -c ${bytes} >/dev/null; echo ok'` });
      // Download: the container sends `bytes`.
      await client.spawn({ handle, script: `exec nc -l -p ${downPort} -e head -c ${bytes} /dev/zero` });
      await waitListening(initPid, upPort);
      await waitListening(initPid, downPort);
      const up = await tcpExchange(containerIp, upPort, bytes, 60_000);
      expect(up.error).toBeUndefined();
      expect(up.data.toString()).toBe('ok\n');
      const down = await tcpExchange(containerIp, downPort, '', 60_000);
      expect(down.error).toBeUndefined();
      expect(down.data.length).toBe(bytes);
      return { up: bytes / (up.ms / 1000), down: bytes / (down.ms / 1000) };
    };
    const free = await measure(9003, 9004);

    expect(await client.limitBandwidth({ handle, rate, burst })).toEqual({ rate, burst });
    const info = await client.info({ handle });
    expect(info.bandwidth_stat).toMatchObject({ in_rate: rate, out_rate: rate });
    const qdisc = await execa('tc', ['qdisc', 'show', 'dev', `w-${id}-0`]);
    expect(qdisc.stdout).toMatch(/tbf .*rate 8388Kbit/);

    const shaped = await measure(9001, 9002);
    console.log(`unshaped: up ${free.up.toFixed(0)} B/s, down ${free.down.toFixed(0)} B/s; shaped at ${rate} B/s: up ${shaped.up.toFixed(0)} B/s, down ${shaped.down.toFixed(0)} B/s`);
    for (const dir of ['up', 'down'] as const) {
      expect(shaped[dir], dir).toBeLessThan(2 * rate);
      expect(shaped[dir], dir).toBeGreaterThan(rate / 4);
      expect(shaped[dir], dir).toBeLessThan(free[dir] / 2);
    }
  });

  it('destroy leaves no qdisc, qgroup or cgroup behind', async () => {
    await client.destroy({ handle });
    expect(await d.hostLeaks()).toEqual([]);
  });
});

describe('Info of several containers at once', () => {
  it('answers each its own figures when the Infos share one worker task', async () => {
    const made = await Promise.all([1, 2, 3].map(async (i) => ({ i, ...(await d.create(client)) })));
    for (const m of made) await client.limitMemory({ handle: m.handle, limit_in_bytes: (64 + m.i) * MiB });
    // One of them waits for `tc` in its Info; the others answer beside it.
    await client.limitBandwidth({ handle: made[0]!.handle, rate: 1024 * 1024, burst: 64 * 1024 });
    const conns = await Promise.all(made.map(() => d.client()));
    try {
      // Sent together from three connections: the daemon reads them in one turn.
      const infos = await Promise.all(made.map((m, k) => conns[k]!.info({ handle: m.handle })));
      infos.forEach((info, k) => {
        const m = made[k]!;
        expect(info.container_path).toContain(m.id);
        expect(info.memory_stat?.hierarchical_memory_limit).toBe((64 + m.i) * MiB);
      });
      expect(infos[0]!.bandwidth_stat).toMatchObject({ in_rate: 1024 * 1024, out_rate: 1024 * 1024 });
      expect(infos[1]!.bandwidth_stat).toMatchObject({ in_rate: 0, out_rate: 0 });

      // The health port's bulk Info asks for all three in the same turn: one batch.
      const res = await fetch(`http://127.0.0.1:${d.daemon.healthPort}/containers?handles=${made.map((m) => m.handle).join(',')}`);
      const bulk = (await res.json()) as Record<string, { info?: { container_path?: string; memory_stat?: { hierarchical_memory_limit?: number }; bandwidth_stat?: { in_rate?: number } }; error?: string }>;
      for (const m of made) {
        const entry = bulk[m.handle]!;
        expect(entry.error).toBeUndefined();
        expect(entry.info?.container_path).toContain(m.id);
        expect(entry.info?.memory_stat?.hierarchical_memory_limit).toBe((64 + m.i) * MiB);
        expect(entry.info?.bandwidth_stat?.in_rate).toBe(m.i === 1 ? 1024 * 1024 : 0);
      }
    } finally {
      await Promise.all(conns.map((k) => k.close()));
      for (const m of made) await client.destroy({ handle: m.handle });
    }
  });
});
