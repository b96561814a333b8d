// Through the real daemon (Linux backend): the container's devices and cgroups as the
// original Warden had them (/dev/shm bounded by the memory limit alone, /dev/fuse,
// /tmp/warden/cgroup/<subsystem>/instance-<id>, LimitCpu read back from the cgroup),
// the default pids and cpu limits, and the daemon's own cgroup with more cpu weight
// holding up against a fork bomb. Pool 10.247.80.0/24, ports 36000+, uids 51000+.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lstat, readFile, readlink, rm, stat, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LinuxDaemon, waitFor } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';
import { CGROUP_LINK_ROOT } from '../../src/backends/linux/cgroups/links.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';

const MiB = 1024 * 1024;
/** Small, so the fork bomb below stays a small one on this shared machine. */
const PIDS_LIMIT = 256;
let d: LinuxDaemon;
let client: WardenClient;

beforeAll(async () => {
  d = await LinuxDaemon.start({
    pool: '10.247.80.0/24', portStart: 36000, uidStart: 51000,
    server: { container_pids_limit: PIDS_LIMIT },
  });
  client = await d.client();
});

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
});

const text = (file: string) => readFile(file, 'utf8').then((s) => s.trim());
const number = async (file: string) => Number(await text(file));
const procs = async (dir: string) => (await text(join(dir, 'cgroup.procs'))).split('\n').filter(Boolean).map(Number);
const linkOf = (controller: string, id: string) => join(CGROUP_LINK_ROOT, controller, `instance-${id}`);

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => client);

describe('/dev/shm', () => {
  it('holds 30 MiB under a 32 MiB memory limit, and the container stays active', async () => {
    const { handle, info } = await d.create(client);
    await client.limitMemory({ handle, limit_in_bytes: 32 * MiB });
    const w = await d.run(client, handle, 'dd if=/dev/zero of=/dev/shm/out.bin bs=64k count=480 2>&1 && echo written');
    expect(w.stdout).toContain('written');
    expect((await client.info({ handle })).state).toBe('active');
    // Checked from the host, through the init's root: a job started now would need
    // ~1.5 MiB more (runc exec's setup is charged to the container) than the 32 MiB leave.
    const held = await stat(`/proc/${await d.initPid(info.container_path!)}/root/dev/shm/out.bin`);
    expect(held.blocks * 512).toBe(30 * MiB);
    await client.destroy({ handle });
  });

  it('has no size of its own: 100 MiB fit under a 256 MiB memory limit', async () => {
    const { handle } = await d.create(client);
    await client.limitMemory({ handle, limit_in_bytes: 256 * MiB });
    const w = await d.run(client, handle, 'dd if=/dev/zero of=/dev/shm/out.bin bs=1M count=100 2>&1 && echo written');
    expect(w.stderr + w.stdout).not.toMatch(/No space left/);
    expect(w.stdout).toContain('written');
    expect((await d.run(client, handle, 'du -m /dev/shm/out.bin | cut -f1')).stdout.trim()).toBe('100');
    await client.destroy({ handle });
  });

  it('writing past the memory limit is an OOM: the container stops with `out of memory`', async () => {
    const { handle } = await d.create(client);
    await client.limitMemory({ handle, limit_in_bytes: 32 * MiB });
    await d.run(client, handle, 'dd if=/dev/zero of=/dev/shm/out.bin bs=1M count=45');
    await waitFor('the container to stop after the OOM', async () => {
      const i = await client.info({ handle });
      return i.state === 'stopped' && (i.events ?? []).includes('out of memory');
    });
    await client.destroy({ handle });
  });
});

describe('/dev/fuse', () => {
  it('is the character device 10:229, mode 0666, group fuse, and vcap can open it', async () => {
    const { handle } = await d.create(client);
    const r = await d.run(client, handle, [
      '[ -c /dev/fuse ] && echo char',
      'stat -c "%t:%T %a %U %G" /dev/fuse',
      'grep "^fuse:" /etc/group | cut -d: -f1',
      'id -u',
      'exec 3<>/dev/fuse && echo opened',
    ].join('; '));
    const [isChar, st, group, uid, opened] = r.stdout.trim().split('\n');
    expect(isChar).toBe('char');
    expect(st).toBe('a:e5 666 root fuse'); // hex 10:229
    expect(group).toBe('fuse');
    expect(Number(uid)).toBeGreaterThan(0);
    expect(opened).toBe('opened');
    expect(r.stderr).toBe('');
    await client.destroy({ handle });
  });
});

describe('/tmp/warden/cgroup/<subsystem>/instance-<id>', () => {
  it('shows the container cgroups where the original had them; limits read there; gone after destroy', async () => {
    const { handle, id } = await d.create(client);
    const cg = await d.cgroups(id);
    for (const controller of ['memory', 'cpu', 'cpuacct', 'devices', 'pids']) {
      expect(await readlink(linkOf(controller, id)), controller).toBe(cg[controller]);
    }
    await client.limitMemory({ handle, limit_in_bytes: 100 * MiB });
    expect(await number(join(linkOf('memory', id), 'memory.limit_in_bytes'))).toBe(100 * MiB);
    expect(await number(join(linkOf('memory', id), 'memory.memsw.limit_in_bytes'))).toBe(100 * MiB);

    // LimitCpu answers with what the cgroup holds, as the original read it back.
    const shares = () => number(join(linkOf('cpu', id), 'cpu.shares'));
    expect(await client.limitCpu({ handle })).toEqual({ limit_in_shares: await shares() });
    expect(await client.limitCpu({ handle, limit_in_shares: 100 })).toEqual({ limit_in_shares: 100 });
    expect(await shares()).toBe(100);
    expect(await client.limitCpu({ handle, limit_in_shares: 1 })).toEqual({ limit_in_shares: 2 });
    expect(await shares()).toBe(2);
    expect(await client.limitCpu({ handle })).toEqual({ limit_in_shares: 2 });

    await client.destroy({ handle });
    for (const controller of ['memory', 'cpu', 'devices']) {
      expect(await lstat(linkOf(controller, id)).catch(() => undefined), controller).toBeUndefined();
    }
  });

  it('a restarted daemon puts back a missing link and the boot sweep removes an orphan one', async () => {
    const { handle, id } = await d.create(client);
    const cg = await d.cgroups(id);
    await d.daemon.kill9();
    await rm(linkOf('memory', id));
    // What a crash between a destroy's cgroup removal and its link removal leaves.
    const orphan = 'zzzzzzzzzzz';
    d.ids.add(orphan);
    await symlink(join(dirname(cg.memory!), `instance-${orphan}`), linkOf('memory', orphan));
    await d.restart();
    client = await d.client();
    // The killed daemon's own cgroup is the new one's.
    expect(await procs((await d.daemonCgroup())!)).toContain(d.daemon.pid);
    expect(await readlink(linkOf('memory', id))).toBe(cg.memory);
    expect(await lstat(linkOf('memory', orphan)).catch(() => undefined)).toBeUndefined();
    await client.destroy({ handle });
  });
});

describe('default pids and cpu limits, and the daemon cgroup', () => {
  it('containers get the configured pids limit and fewer cpu shares than the daemon, whose cgroup holds it alone', async () => {
    const { handle, id } = await d.create(client);
    const cg = await d.cgroups(id);
    expect(await number(join(cg.pids!, 'pids.max'))).toBe(PIDS_LIMIT);
    const containerShares = await number(join(cg.cpu!, 'cpu.shares'));
    expect(containerShares).toBe(512);

    const own = (await d.daemonCgroup())!;
    expect(await procs(own)).toContain(d.daemon.pid);
    expect(await number(join(own, 'cpu.shares'))).toBe(1024);
    // Beside the containers' parent, so the daemon's weight counts against all containers at once.
    expect(dirname(own)).toBe(dirname(dirname(cg.cpu!)));
    expect(await procs(cg.cpu!)).toContain(await d.initPid((await client.info({ handle })).container_path!));

    // A job's supervisor outlives the daemon: it is not in the daemon's group.
    const { job_id } = await client.spawn({ handle, script: 'sleep 60' });
    const jobDir = join((await client.info({ handle })).container_path!, 'jobs', String(job_id));
    const supervisor = await waitFor('the job supervisor', async () => Number((await text(join(jobDir, 'pid')).catch(() => '')).split(' ')[2]));
    expect(await procs(dirname(own))).toContain(supervisor);
    expect(await procs(own)).not.toContain(supervisor);

    // A drain leaves and removes the group; the job keeps running; the next daemon comes back to it.
    expect(await d.daemon.drain()).toBe(0);
    expect(await lstat(own).catch(() => undefined)).toBeUndefined();
    expect(await procs(dirname(own))).toContain(supervisor);
    await d.restart();
    client = await d.client();
    expect(await procs(own)).toContain(d.daemon.pid);
    expect((await client.info({ handle })).job_ids).toEqual([job_id]);
    await client.destroy({ handle });
  });

  it('a fork bomb in one container leaves Ping and a Create in another container answering (loosely bounded)', async () => {
    const timed = async (fn: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const before = { ping: await timed(() => client.ping()), create: 0 };
    let warm = '';
    before.create = await timed(async () => {
      warm = (await d.create(client)).handle;
    });
    await client.destroy({ handle: warm });

    const { handle, id } = await d.create(client);
    const cg = await d.cgroups(id);
    const cpuUsage = () => number(join(cg.cpuacct!, 'cpuacct.usage'));
    let other: string | undefined;
    try {
      // Guard: only ever a small bomb on this shared host.
      expect(await number(join(cg.pids!, 'pids.max'))).toBe(PIDS_LIMIT);
      // Each process starts a spinner and two more of itself. Every one of them gives
      // up after 60 s of the bomb's life (bash's SECONDS counts from the bomb's start
      // in every subshell), `timeout` kills its root, and the destroy in `finally`
      // ends it all at once.
      const bomb = 'b() { [ $SECONDS -lt 60 ] || return; (while [ $SECONDS -lt 60 ]; do :; done) & b | b & }; b; wait';
      await client.spawn({ handle, script: `exec timeout -s KILL 70 bash -c '${bomb}'` });
      await waitFor('the bomb to reach the pids limit', async () => (await number(join(cg.pids!, 'pids.current'))) >= PIDS_LIMIT - 8, 30_000);
      // Busy: it keeps burning CPU once it filled its pids.
      const full = await cpuUsage();
      await waitFor('the bomb to burn the CPUs', async () => (await cpuUsage()) - full > 0.25e9, 30_000);

      const t0 = await cpuUsage();
      const wall0 = performance.now();
      const pings: number[] = [];
      for (let i = 0; i < 20; i++) {
        pings.push(await timed(() => client.ping()));
        await new Promise((r) => setTimeout(r, 50));
      }
      const create = await timed(async () => {
        other = (await d.create(client)).handle;
      });
      const run = await timed(() => d.run(client, other!, 'true'));
      const burnt = (await cpuUsage() - t0) / 1e9;
      const wall = (performance.now() - wall0) / 1000;
      pings.sort((a, b) => a - b);
      console.log(
        `fork bomb at ${await number(join(cg.pids!, 'pids.current'))} pids: ping median ${pings[10]!.toFixed(1)} ms, ` +
          `max ${pings[19]!.toFixed(1)} ms (idle ${before.ping.toFixed(1)} ms); create ${create.toFixed(0)} ms ` +
          `(idle ${before.create.toFixed(0)} ms); run \`true\` in it ${run.toFixed(0)} ms; the bomb burnt ${burnt.toFixed(1)} CPU-s in those ${wall.toFixed(1)} s`,
      );
      // A product promise (a bomb in one container does not take the daemon down with
      // it), so bounded, but loosely: the figures above are typically tens of ms and a
      // second or so on a busy 2-core machine; a bomb that is not contained starves the
      // daemon for the bomb's whole minute.
      expect(pings[19]).toBeLessThan(5_000);
      expect(create).toBeLessThan(10_000);
    } finally {
      if (other) await client.destroy({ handle: other }).catch(() => undefined);
      await client.destroy({ handle }).catch(() => undefined);
    }
    expect(await lstat(cg.pids!).catch(() => undefined)).toBeUndefined();
  });
});
