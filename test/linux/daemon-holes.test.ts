// Through the real daemon (Linux backend, root), what no other file checked on this
// backend: the pools running out (Create without a network or a uid, NetIn without a
// port) and nothing taken by the refused request; NetIn with a host port outside the
// pool or already taken; LimitCpu's edges and its failure; every Limit* on a stopped
// container; a Stream cut short by Destroy; a Stop's TERM to jobs that handle it (a
// bug found here: the job wrapper lost their status); and the per-job options so far tested
// only on the insecure backend: job_output_limit, discard_output, log_tag, grace_time
// and Run rlimits.
// Pools inside 10.248.32.0/20, host ports 41000-41999, uids 62000-63999 (this file's
// own ranges: it needs no lock against other files).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { LinuxDaemon, tcpExchange, waitFor, waitListening } from '../support/linux/linux-daemon.ts';
import { settlesWithin, sleep } from '../support/wait.ts';
import type { WardenClient } from '../../src/client/client.ts';
import type { StreamResponse } from '../../src/protocol/types.ts';
import { SyslogReceiver } from '../support/syslog-receiver.ts';
import { expectStreamEndsOnDestroy } from '../support/stream-cut.ts';

const OUTPUT_LIMIT = 4096;
/** An explicit NetIn host port outside every test daemon's pool (and outside the kernel's ephemeral ports). */
const OUTSIDE_POOL_PORT = 31500;
const text = (b: unknown) => Buffer.from((b as Uint8Array) ?? []).toString('utf8');

/** The daemon's figure for a pool from its /metrics (health port). */
async function poolFree(d: LinuxDaemon, pool: 'network' | 'uid' | 'port'): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${d.daemon.healthPort}/metrics`);
  const m = new RegExp(`^warden_pool_free\\{pool="${pool}"\\} (\\d+)$`, 'm').exec(await res.text());
  if (!m) throw new Error(`no warden_pool_free for ${pool}`);
  return Number(m[1]);
}

describe('pools running out', () => {
  it('Create without a free network: the original answer, nothing taken, and the pool serves again after a Destroy', async () => {
    // A /29: two /30s.
    const d = await LinuxDaemon.start({ pool: '10.248.33.0/29', portStart: 41100, uidStart: 62100 });
    try {
      const c = await d.client();
      const a = await d.create(c);
      const b = await d.create(c);
      const uidsFree = await poolFree(d, 'uid');
      await expect(c.create({})).rejects.toThrow(/^Could not acquire network$/);
      await expect(c.create({ network: '10.248.33.1' })).rejects.toThrow(/^Could not acquire network: 10\.248\.33\.0$/);
      // The refused Creates took no uid and left no container behind.
      expect(await poolFree(d, 'uid')).toBe(uidsFree);
      expect(((await c.list()).handles ?? []).sort()).toEqual([a.handle, b.handle].sort());
      await c.destroy({ handle: a.handle });
      const again = await d.create(c);
      expect(again.info.container_ip).toBe(a.info.container_ip);
      for (const h of [b.handle, again.handle]) await c.destroy({ handle: h });
      expect(await d.hostLeaks()).toEqual([]);
    } finally {
      expect(await d.cleanup()).toEqual([]);
    }
  });

  it('Create without a free uid and NetIn without a free port: the original answers, nothing taken', async () => {
    const d = await LinuxDaemon.start({ pool: '10.248.34.0/24', portStart: 41200, portPoolSize: 2, uidStart: 62200, uidPoolSize: 1 });
    try {
      const c = await d.client();
      const a = await d.create(c);
      const networksFree = await poolFree(d, 'network');
      await expect(c.create({})).rejects.toThrow(/^Warden::Pool::Uid::NoUidAvailable$/);
      // The refused Create gave its network back.
      expect(await poolFree(d, 'network')).toBe(networksFree);
      expect((await c.list()).handles).toEqual([a.handle]);

      const ports = [await c.netIn({ handle: a.handle }), await c.netIn({ handle: a.handle })].map((r) => r.host_port);
      expect(ports.sort()).toEqual([41200, 41201]);
      await expect(c.netIn({ handle: a.handle, container_port: 8080 })).rejects.toThrow(/^Warden::Pool::Port::NoPortAvailable$/);
      // No DNAT rule for the refused one: two mappings, as before.
      const nat = await execa('iptables', ['-w', '-t', 'nat', '-S', `warden-i-${a.id}`]);
      expect(nat.stdout.match(/-j DNAT/g)).toHaveLength(2);
      expect(nat.stdout).not.toContain(':8080');

      // Destroy gives uid and ports back.
      await c.destroy({ handle: a.handle });
      const b = await d.create(c);
      expect((await c.netIn({ handle: b.handle })).host_port).toBeGreaterThanOrEqual(41200);
      await c.destroy({ handle: b.handle });
      expect(await d.hostLeaks()).toEqual([]);
    } finally {
      expect(await d.cleanup()).toEqual([]);
    }
  });
});

describe('one daemon', () => {
  let d: LinuxDaemon;
  let c: WardenClient;
  let syslog: SyslogReceiver | undefined;

  beforeAll(async () => {
    syslog = await SyslogReceiver.start();
    d = await LinuxDaemon.start({
      pool: '10.248.32.0/24',
      portStart: 41000,
      uidStart: 62000,
      server: { job_output_limit: OUTPUT_LIMIT, syslog_socket: syslog.socket },
    });
    c = await d.client();
  });

  afterAll(async () => {
    const problems = d ? await d.cleanup() : [];
    syslog?.stop();
    expect(problems).toEqual([]);
  });

  describe('NetIn with an explicit host port', () => {
    it('outside the pool: mapped as asked (as the original did), not reserved, gone with the container', async () => {
      // Below the kernel's ephemeral range (32768-60999): a listener of another test
      // file, on a port the kernel picked, cannot answer for it once the mapping is gone.
      const port = OUTSIDE_POOL_PORT;
      const { handle, info } = await d.create(c);
      try {
        const initPid = await d.initPid(info.container_path!);
        await c.spawn({ handle, script: 'exec nc -ll -p 8080 -e echo pong' });
        await waitListening(initPid, 8080);
        const portsFree = await poolFree(d, 'port');
        expect(await c.netIn({ handle, host_port: port, container_port: 8080 })).toEqual({ host_port: port, container_port: 8080 });
        expect((await tcpExchange('127.0.0.1', port)).data.toString()).toBe('pong\n');
        expect(await poolFree(d, 'port')).toBe(portsFree);
        // Outside the pool nothing keeps count, as in the original: a second mapping of
        // the same port is taken too.
        expect(await c.netIn({ handle, host_port: port, container_port: 8080 })).toEqual({ host_port: port, container_port: 8080 });
      } finally {
        await c.destroy({ handle });
      }
      expect((await tcpExchange('127.0.0.1', port, '', 5_000)).error).toBe('ECONNREFUSED');
    });

    it('inside the pool and already taken: refused (ours; the original mapped it twice), the first mapping unharmed', async () => {
      const a = await d.create(c);
      const b = await d.create(c);
      try {
        const initPid = await d.initPid(a.info.container_path!);
        await c.spawn({ handle: a.handle, script: 'exec nc -ll -p 8080 -e echo from-a' });
        await waitListening(initPid, 8080);
        const { host_port } = await c.netIn({ handle: a.handle, container_port: 8080 });
        await expect(c.netIn({ handle: b.handle, host_port, container_port: 8080 })).rejects.toThrow(new RegExp(`^port ${host_port} is already in use$`));
        await expect(c.netIn({ handle: a.handle, host_port, container_port: 8080 })).rejects.toThrow(/already in use/);
        const nat = await execa('iptables', ['-w', '-t', 'nat', '-S', `warden-i-${b.id}`]);
        expect(nat.stdout).not.toContain('DNAT');
        expect((await tcpExchange('127.0.0.1', host_port)).data.toString()).toBe('from-a\n');
        // A free port of the pool, asked for by number, is reserved: Destroy gives it back.
        const free = host_port === 41099 ? 41098 : 41099;
        expect(await c.netIn({ handle: b.handle, host_port: free })).toEqual({ host_port: free, container_port: free });
        await expect(c.netIn({ handle: a.handle, host_port: free })).rejects.toThrow(/already in use/);
      } finally {
        await c.destroy({ handle: a.handle });
        await c.destroy({ handle: b.handle });
      }
    });
  });

  describe('LimitCpu', () => {
    it('clamps as the kernel does, both ways, and answers what is in force', async () => {
      const { handle, id } = await d.create(c);
      try {
        const shares = async () => Number((await readFile(join((await d.cgroups(id)).cpu!, 'cpu.shares'), 'utf8')).trim());
        expect(await c.limitCpu({ handle, limit_in_shares: 0 })).toEqual({ limit_in_shares: 2 });
        expect(await shares()).toBe(2);
        // 2^64 - 1, exactly through the protocol: the kernel's maximum.
        expect(await c.limitCpu({ handle, limit_in_shares: 2n ** 64n - 1n })).toEqual({ limit_in_shares: 262144 });
        expect(await shares()).toBe(262144);
        expect(await c.limitCpu({ handle })).toEqual({ limit_in_shares: 262144 });
      } finally {
        await c.destroy({ handle });
      }
      await expect(c.limitCpu({ handle, limit_in_shares: 100 })).rejects.toThrow(/^unknown handle$/);
    });

    it("a write the kernel refuses: the original's \"Failed setting cpu shares: \" with the cause, and the limit in force unchanged", async () => {
      const { handle, id } = await d.create(c);
      const cpu = (await d.cgroups(id)).cpu!;
      try {
        expect(await c.limitCpu({ handle, limit_in_shares: 300 })).toEqual({ limit_in_shares: 300 });
        // The kernel takes any number (it clamps), so make the write fail another way:
        // take the group away under the daemon (its processes moved up, then rmdir).
        // The container's init (bash) forks its sleep just after the start; a fork that
        // falls between the read of cgroup.procs and the moves leaves the child behind
        // (rmdir then fails with EBUSY): move again until the group is empty.
        const parent = join(cpu, '..');
        for (let round = 1; ; round++) {
          const procs = (await readFile(join(cpu, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean);
          for (const pid of procs) await execa('sh', ['-c', `echo ${pid} > ${parent}/cgroup.procs`], { reject: false });
          const gone = await execa('rmdir', [cpu], { reject: false });
          if (gone.exitCode === 0) break;
          if (round === 50) throw new Error(`the cpu cgroup ${cpu} would not empty: ${gone.stderr}`);
        }
        await expect(c.limitCpu({ handle, limit_in_shares: 400 })).rejects.toThrow(/^Failed setting cpu shares: .*(ENOENT|no such file)/i);
        const snapshot = JSON.parse(readFileSync(join((await c.info({ handle })).container_path!, 'snapshot.json'), 'utf8'));
        expect(JSON.stringify(snapshot)).not.toContain('400');
      } finally {
        await c.destroy({ handle });
      }
    });
  });

  describe('Limit* on a stopped container', () => {
    it('are taken, as the original took them (active or stopped), and read back', async () => {
      const { handle, id } = await d.create(c);
      try {
        await c.stop({ handle });
        expect((await c.info({ handle })).state).toBe('stopped');
        expect(await c.limitMemory({ handle, limit_in_bytes: 64 * 1024 * 1024 })).toEqual({ limit_in_bytes: 64 * 1024 * 1024 });
        expect(await c.limitCpu({ handle, limit_in_shares: 123 })).toEqual({ limit_in_shares: 123 });
        expect(await c.limitDisk({ handle, byte_limit: 50 * 1024 * 1024 })).toMatchObject({ byte_limit: 50 * 1024 * 1024 });
        expect(await c.limitBandwidth({ handle, rate: 100_000, burst: 10_000 })).toEqual({ rate: 100_000, burst: 10_000 });
        const cg = await d.cgroups(id);
        expect((await readFile(join(cg.memory!, 'memory.limit_in_bytes'), 'utf8')).trim()).toBe(String(64 * 1024 * 1024));
        expect((await readFile(join(cg.cpu!, 'cpu.shares'), 'utf8')).trim()).toBe('123');
        expect((await c.info({ handle })).bandwidth_stat).toMatchObject({ in_rate: 100_000, out_rate: 100_000 });
      } finally {
        await c.destroy({ handle });
      }
    });
  });

  describe('Stream', () => {
    it('cut short by Destroy: the stream ends with the exit status, it does not hang', async () => {
      const { handle } = await d.create(c);
      const streamer = await d.client();
      await expectStreamEndsOnDestroy(c, streamer, handle);
    });
  });

  describe('Stop and a job that handles TERM', () => {
    // The job wrapper once lost the job's status about one time in four when the TERM
    // reached it as the job ended (reported 255): ten such jobs at once make a
    // regression all but certain to show.
    it("reports each job's own status, every time", async () => {
      const { handle } = await d.create(c);
      try {
        const jobs: number[] = [];
        for (let i = 0; i < 10; i++) {
          jobs.push((await c.spawn({ handle, script: "trap 'exit 37' TERM; echo ready; while :; do sleep 0.05; done" })).job_id);
        }
        const path = (await c.info({ handle })).container_path!;
        for (const j of jobs) {
          await waitFor(`job ${j} to set its trap`, async () => (await readFile(join(path, 'jobs', String(j), 'stdout'), 'utf8').catch(() => '')).includes('ready'));
        }
        await c.stop({ handle });
        const statuses = [];
        for (const job_id of jobs) statuses.push((await c.link({ handle, job_id })).exit_status);
        expect(statuses).toEqual(jobs.map(() => 37));
      } finally {
        await c.destroy({ handle });
      }
    });
  });

  describe('per-job options', () => {
    let handle: string;
    beforeAll(async () => {
      ({ handle } = await d.create(c));
    });
    afterAll(async () => {
      await c.destroy({ handle }).catch(() => undefined);
    });

    it('job_output_limit ends a streamed job: 255, no more than the limit, the original event', async () => {
      const { handle: h } = await d.create(c);
      try {
        // Far past the limit, yet finite: a limit that failed to act shows as a whole
        // 20 MB and a clean exit, not as a flood that starves the tests after this one.
        const { job_id } = await c.spawn({ handle: h, script: 'yes BLABLABLABLA | head -c 20000000' });
        const frames: StreamResponse[] = [];
        const reading = (async () => {
          for await (const f of c.stream({ handle: h, job_id })) frames.push(f);
        })();
        expect(await settlesWithin(reading, 30_000)).toBe(true);
        await reading;
        expect(frames.at(-1)?.exit_status).toBe(255);
        const out = frames.map((f) => text(f.data)).join('');
        expect(out.length).toBeGreaterThan(0);
        expect(out.length).toBeLessThanOrEqual(OUTPUT_LIMIT);
        expect((await c.info({ handle: h })).events).toContain('command exceeded maximum output');
      } finally {
        await c.destroy({ handle: h });
      }
    });

    it('discard_output: nothing comes back, and discarded output counts for no limit', async () => {
      const r = await c.run({ handle, script: `head -c ${4 * OUTPUT_LIMIT} /dev/zero; echo hidden >&2; exit 3`, discard_output: true });
      expect(r.exit_status).toBe(3);
      expect(text(r.stdout)).toBe('');
      expect(text(r.stderr)).toBe('');
      expect(r.info?.events ?? []).toEqual([]);
      expect((await c.info({ handle })).state).toBe('active');
    });

    it('log_tag: stdout at info and stderr at err reach syslog as warden.<log_tag>; without one nothing goes', async () => {
      const received = () => syslog!.received();
      await c.run({ handle, script: 'echo untagged-line' });
      const r = await c.run({ handle, script: 'echo out-line; echo err-line >&2', log_tag: 'holes9' });
      expect(r.exit_status).toBe(0);
      expect(text(r.stdout)).toBe('out-line\n');
      await waitFor('both lines at the syslog socket', () => received().includes('out-line') && received().includes('err-line'));
      const lines = received().split('\n');
      // <PRI> = facility user (1) * 8 + severity: info 6 → 14, err 3 → 11.
      expect(lines.find((l) => l.includes('out-line'))).toMatch(/^<14>.*warden\.holes9.*out-line/);
      expect(lines.find((l) => l.includes('err-line'))).toMatch(/^<11>.*warden\.holes9.*err-line/);
      // The untagged job ran first: had it been sent, it would be there by now.
      expect(received()).not.toContain('untagged-line');
    });

    it('Run rlimits: set soft and hard in the container, exact for 2^53 + 1', async () => {
      const r = await c.run({ handle, script: 'ulimit -n; ulimit -Hn', rlimits: { nofile: 123 } });
      expect(r.exit_status).toBe(0);
      expect(text(r.stdout)).toBe('123\n123\n');
      const big = 9007199254740993n;
      const as = await c.run({ handle, script: "grep 'Max address space' /proc/self/limits", rlimits: { as: big } });
      expect(text(as.stdout)).toMatch(/^Max address space\s+9007199254740993\s+9007199254740993\s+bytes/);
      const core = await c.run({ handle, script: 'ulimit -c; ulimit -Hc', rlimits: { core: 0 } });
      expect(text(core.stdout)).toBe('0\n0\n');
    });

    it('grace_time: kept while its client is connected, destroyed with everything once none is', async () => {
      const other = await d.client();
      const made = await d.create(other, { grace_time: 1 });
      // Something must NOT happen: only waiting past the grace time can show it.
      await sleep(1500);
      expect((await c.list()).handles).toContain(made.handle);
      await other.close();
      await waitFor('the container to go after its grace time', async () => !((await c.list()).handles ?? []).includes(made.handle), 30_000, 100);
      await waitFor('its folder to go', () => !existsSync(made.info.container_path!), 30_000);
      await waitFor('nothing of it left on the host', async () => {
        const leaks = await d.hostLeaks();
        return !leaks.some((l) => l.includes(made.id));
      }, 30_000, 200);
    });
  });
});
