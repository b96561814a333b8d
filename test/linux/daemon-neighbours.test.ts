// Neighbours through the real daemon (Linux backend): a container cannot take the
// depot or the host's memory from the others. New containers get the configured
// default memory and disk limits; all containers together can never fill the
// depot (a qgroup over them all keeps server.container_depot_reserve free), so a
// container that fills its disk, even one whose LimitDisk asks for more than the
// depot holds, leaves the daemon able to create, spawn, run and destroy.
// Pool 10.247.96.0/24, ports 37000-37099, uids 53000-53063; a 1 GiB depot image.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { LinuxDaemon, waitFor } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const DEPOT_BYTES = 1 * GiB;
const DEFAULT_DISK = 64 * MiB;
const DEFAULT_MEMORY = 64 * MiB;
const RESERVE = 256 * MiB;
const MAX_JOBS = 4;

let d: LinuxDaemon;
let client: WardenClient;

beforeAll(async () => {
  // A small depot, so that filling it takes seconds: the daemon uses an image it finds.
  const dir = await mkdtemp(join(tmpdir(), 'warden-test-'));
  const image = join(dir, 'warden-depot.img');
  await execa('truncate', ['-s', String(DEPOT_BYTES), image]);
  await execa('mkfs.btrfs', ['-q', '-L', 'warden-depot', image]);
  d = await LinuxDaemon.start({
    pool: '10.247.96.0/24', portStart: 37000, uidStart: 53000, dir,
    server: {
      container_disk_limit: DEFAULT_DISK, container_memory_limit: DEFAULT_MEMORY, container_depot_reserve: RESERVE,
      container_max_jobs: MAX_JOBS,
    },
  });
  client = await d.client();
}, 120_000);

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
}, 180_000);

/** Writes up to `mib` MiB into the container's disk; returns dd's status, its message and the bytes that landed. */
async function fill(handle: string, mib: number): Promise<{ status: number; message: string; bytes: number }> {
  const r = await d.run(client, handle, `dd if=/dev/zero of=/home/vcap/fill bs=1M count=${mib} 2>&1; s=$?; sync; echo "status=$s size=$(wc -c < /home/vcap/fill)"`);
  const m = /status=(\d+) size=(\d+)/.exec(r.stdout);
  if (!m) throw new Error(`unexpected output: ${r.stdout} ${r.stderr}`);
  return { status: Number(m[1]), message: r.stdout, bytes: Number(m[2]) };
}

/** What a neighbour must still be able to do after a container filled its disk: be created, spawn, run, write. */
async function neighbourStillWorks(): Promise<void> {
  const { handle } = await d.create(client);
  const { job_id } = await client.spawn({ handle, script: 'echo spawned; echo some more output >&2' });
  const linked = await client.link({ handle, job_id });
  expect(linked.exit_status, String(linked.stderr)).toBe(0);
  expect(String(linked.stdout)).toBe('spawned\n');
  expect(String(linked.stderr)).toBe('some more output\n');
  const r = await d.run(client, handle, 'head -c 1048576 /dev/zero > /home/vcap/small && wc -c < /home/vcap/small');
  expect(r).toMatchObject({ exit_status: 0, stdout: '1048576\n' });
  await client.destroy({ handle });
}

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => client);

describe('default limits', () => {
  it('a new container has the configured memory limit: a hog is OOM-killed', async () => {
    const { handle, id } = await d.create(client);
    const cg = await d.cgroups(id);
    expect(Number((await readFile(join(cg.memory!, 'memory.limit_in_bytes'), 'utf8')).trim())).toBe(DEFAULT_MEMORY);
    // dd's 128 MiB buffer is touched by the read from /dev/zero.
    const hog = await d.run(client, handle, 'exec dd if=/dev/zero of=/dev/null bs=128M count=1');
    expect(hog.exit_status).toBe(255);
    await waitFor('the OOM stop', async () => ((await client.info({ handle })).events ?? []).includes('out of memory'), 10_000);
    await client.destroy({ handle });
  });

  it('a container that fills its disk stops at the default limit (EDQUOT); the others carry on and it can be destroyed', async () => {
    const { handle } = await d.create(client);
    const f = await fill(handle, 4 * DEFAULT_DISK / MiB);
    expect(f.status).not.toBe(0);
    expect(f.message).toMatch(/quota exceeded|No space left/i);
    expect(f.bytes).toBeLessThanOrEqual(DEFAULT_DISK);
    expect(f.bytes).toBeGreaterThan(DEFAULT_DISK / 2);
    await neighbourStillWorks();
    // A full container may still be given more (the limit change must not need room in it).
    expect((await client.limitDisk({ handle, byte_limit: 2 * DEFAULT_DISK })).byte_limit).toBe(2 * DEFAULT_DISK);
    const more = await d.run(client, handle, `head -c ${DEFAULT_DISK / 2} /dev/zero >> /home/vcap/fill; echo $?`);
    expect(more.stdout).toBe('0\n');
    await client.destroy({ handle });
  });
});

describe('the depot reserve', () => {
  it('a container allowed more than the depot holds fills only the containers\' share; snapshots, jobs, creates and destroys still work', async () => {
    const { handle } = await d.create(client);
    // An explicit limit overrides the default, also one larger than the whole depot (as the original's setquota allowed).
    const limits = await client.limitDisk({ handle, byte_limit: 4 * GiB });
    expect(limits.byte_limit).toBe(4 * GiB);
    const f = await fill(handle, DEPOT_BYTES / MiB);
    expect(f.status).not.toBe(0);
    expect(f.message).toMatch(/quota exceeded|No space left/i);
    expect(f.bytes).toBeLessThanOrEqual(DEPOT_BYTES - RESERVE);
    // More than a default-limited container could: it really had its larger limit.
    expect(f.bytes).toBeGreaterThan(DEFAULT_DISK);
    // The depot still has room for the daemon's own files: a limit change is snapshotted, jobs write output.
    const again = await client.limitDisk({ handle, byte_limit: 2 * GiB });
    expect(again.byte_limit).toBe(2 * GiB);
    const out = await d.run(client, handle, 'echo still answering');
    expect(out.stdout).toBe('still answering\n');
    // The containers' share is used up, but never the depot: a neighbour is still created
    // (its writes, as on a full disk, wait for space) and the filler is destroyed.
    const { handle: neighbour } = await d.create(client);
    await client.destroy({ handle: neighbour });
    await client.destroy({ handle });
    // And the space comes back: a new container can write again.
    const { handle: next } = await d.create(client);
    const g = await fill(next, 16);
    expect(g).toMatchObject({ status: 0, bytes: 16 * MiB });
    await client.destroy({ handle: next });
   }, 300_000); // writes and deletes most of a GiB: slow on a loaded host, not timed
});

describe('jobs', () => {
  /** The memory cgroup (path below the hierarchy) a process is in, from /proc/PID/cgroup. */
  async function memoryGroup(pid: number): Promise<string> {
    const text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
    return /^\d+:[^:]*\bmemory\b[^:]*:(.*)$/m.exec(text)?.[1] ?? '';
  }

  it('a job\'s supervisor and its runc exec are charged to the container\'s jobs memory group, beside its own', async () => {
    const { handle, id, info } = await d.create(client);
    const { job_id } = await client.spawn({ handle, script: 'echo started; exec sleep 1000' });
    const jobDir = join(info.container_path!, 'jobs', String(job_id));
    // Running in the container (runc exec has finished starting it) before anything else.
    await waitFor('the job to start', async () => (await readFile(join(jobDir, 'stdout'), 'utf8').catch(() => '')) === 'started\n');
    const pidFile = join(jobDir, 'pid');
    const [jobPid, , supervisorPid] = (await waitFor('the job\'s pid file', async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim()))
      .split(' ').map(Number);
    // The job's pid is the runc exec that runs the script in the container.
    expect(await readFile(`/proc/${jobPid}/cmdline`, 'utf8')).toContain('exec');
    expect(await memoryGroup(supervisorPid!)).toMatch(new RegExp(`/instance-${id}\\.jobs$`));
    expect(await memoryGroup(jobPid!)).toMatch(new RegExp(`/instance-${id}\\.jobs$`));
    // Still a job like any other: Stop ends it with its status, Destroy removes the group.
    await client.stop({ handle, kill: true });
    expect((await client.link({ handle, job_id })).exit_status).toBe(255);
    await client.destroy({ handle });
  });

  it(`a container runs at most server.container_max_jobs (${MAX_JOBS}) jobs at once`, async () => {
    const { handle } = await d.create(client);
    // Job 1 ends when /home/vcap/go appears; the others run on.
    const first = await client.spawn({ handle, script: 'while [ ! -e /home/vcap/go ]; do sleep 0.1; done; echo went' });
    for (let i = 1; i < MAX_JOBS; i++) await client.spawn({ handle, script: 'exec sleep 1000' });
    const refusal = /maximum of 4 jobs \(server\.container_max_jobs\)/;
    await expect(client.spawn({ handle, script: 'true' })).rejects.toThrow(refusal);
    await expect(client.run({ handle, script: 'true' })).rejects.toThrow(refusal);
    // Once one ends, a new one may start.
    const go = join(d.daemon.dir, 'go');
    await execa('touch', [go]);
    await client.copyIn({ handle, src_path: go, dst_path: '/home/vcap/go' });
    expect(String((await client.link({ handle, job_id: first.job_id })).stdout)).toBe('went\n');
    expect(await d.run(client, handle, 'echo ok')).toMatchObject({ exit_status: 0, stdout: 'ok\n' });
    await client.destroy({ handle });
  });
});

describe('upgrade', () => {
  /** The parent qgroup of a container's subvolume ('-' for none), from the host's btrfs listing. */
  async function parentOf(containerPath: string): Promise<string> {
    const id = (await execa('btrfs', ['inspect-internal', 'rootid', join(containerPath, 'tmp')])).stdout.trim();
    const lines = (await execa('btrfs', ['qgroup', 'show', '-p', '--raw', d.settings.depot])).stdout.split('\n');
    return lines.map((l) => l.trim().split(/\s+/)).find((t) => t[0] === `0/${id}`)?.[3] ?? 'missing';
  }

  it('a container from before the containers\' qgroup joins it when the daemon recovers it', async () => {
    const { handle, info } = await d.create(client);
    const path = info.container_path!;
    expect(await parentOf(path)).toBe('1/1');
    // As a daemon without it left the container: in no parent group.
    const id = (await execa('btrfs', ['inspect-internal', 'rootid', join(path, 'tmp')])).stdout.trim();
    await execa('btrfs', ['qgroup', 'remove', '--no-rescan', `0/${id}`, '1/1', d.settings.depot]);
    expect(await parentOf(path)).toBe('-');
    expect(await d.daemon.drain()).toBe(0);
    await d.restart();
    client = await d.client();
    expect((await client.info({ handle })).state).toBe('active');
    expect(await parentOf(path)).toBe('1/1');
    await client.destroy({ handle });
   }, 180_000);
});

describe('host', () => {
  it('leaves nothing behind but the depot mount', async () => {
    expect(await d.hostLeaks()).toEqual([]);
  });
});
