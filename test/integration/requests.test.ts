// Every request type against the real daemon (insecure backend), through the client library.
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import { TestDaemon } from '../support/daemon.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { heldJob } from '../support/held-job.ts';

let d: TestDaemon;
let c: WardenClient;
let scratch: string;

beforeAll(async () => {
  d = await TestDaemon.start({ server: { job_output_limit: 64 * 1024 } });
  c = await d.client();
  scratch = mkdtempSync(join(tmpdir(), 'warden-scratch-'));
});

afterAll(async () => {
  await c?.close();
  await d?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => c);

const text = (b: unknown) => Buffer.from((b as Uint8Array) ?? []).toString('utf8');

describe('ping, echo, list', () => {
  it('answers ping and echo', async () => {
    expect(await c.ping()).toEqual({});
    expect((await c.echo({ message: 'héllo ✓' })).message).toBe('héllo ✓');
  });

  it('lists live handles', async () => {
    const { handle } = await c.create({ handle: 'listed' });
    expect((await c.list()).handles).toContain(handle);
    await c.destroy({ handle });
    expect((await c.list()).handles ?? []).not.toContain(handle);
  });
});

describe('create and destroy', () => {
  it('generates an 11-character handle and a container folder', async () => {
    const { handle } = await c.create({});
    expect(handle).toMatch(/^[0-9a-v]{11}$/);
    const info = await c.info({ handle });
    expect(info.state).toBe('active');
    expect(info.container_path).toBe(join(d.depot, handle));
    expect(info.host_ip).toMatch(/^10\.254\.0\.\d+$/);
    expect(existsSync(join(info.container_path!, 'snapshot.json'))).toBe(true);
    await c.destroy({ handle });
    expect(existsSync(info.container_path!)).toBe(false);
  });

  it('refuses a taken handle and a bad handle', async () => {
    await c.create({ handle: 'taken' });
    await expect(c.create({ handle: 'taken' })).rejects.toThrow(/^container with handle: taken already exists\.$/);
    await expect(c.create({ handle: '' })).rejects.toThrow(/must not be empty/);
    await expect(c.create({ handle: 'x'.repeat(300) })).rejects.toThrow(/longer than/);
    await c.destroy({ handle: 'taken' });
  });

  it('never uses a handle as a path', async () => {
    const { handle } = await c.create({ handle: '../../etc' });
    const info = await c.info({ handle });
    expect(info.container_path!.startsWith(d.depot + '/')).toBe(true);
    expect(info.container_path).not.toContain('..');
    await c.destroy({ handle });
  });

  it('refuses a missing bind mount source and a missing rootfs, and leaks nothing', async () => {
    const before = (await c.list()).handles ?? [];
    await expect(
      c.create({ bind_mounts: [{ src_path: '/nonexistent/src', dst_path: '/dst', mode: 0 }] }),
    ).rejects.toThrow(/^Source path for bind mount does not exist: \/nonexistent\/src$/);
    await expect(c.create({ rootfs: '/nonexistent/rootfs' })).rejects.toThrow(/^rootfs \/nonexistent\/rootfs not found$/);
    expect((await c.list()).handles ?? []).toEqual(before);
    // The networks taken by the failed creates came back: a specific one can be had again.
    const { handle } = await c.create({ network: '10.254.0.200' });
    expect((await c.info({ handle })).container_ip).toBe('10.254.0.202');
    await c.destroy({ handle });
  });

  it('a Destroy racing the Create of the same handle leaves nothing behind', async () => {
    const other = await d.client();
    const folders = () => readdirSync(d.depot).filter((f) => !f.startsWith('.')).sort();
    const before = folders();
    try {
      for (let i = 0; i < 5; i++) {
        const handle = `race-${i}`;
        const created = c.create({ handle }).catch(() => undefined);
        // Destroy as soon as the handle is listed (while the create is still working).
        let destroyed: Promise<unknown> | undefined;
        for (let k = 0; k < 200 && !destroyed; k++) {
          if (((await other.list()).handles ?? []).includes(handle)) destroyed = other.destroy({ handle }).catch(() => undefined);
        }
        await created;
        await destroyed;
        await other.destroy({ handle }).catch(() => undefined);
        expect((await c.list()).handles ?? []).not.toContain(handle);
      }
      // No folder of the raced containers is left in the depot.
      expect(folders()).toEqual(before);
    } finally {
      await other.close();
    }
  });

  it('answers unknown handle', async () => {
    await expect(c.info({ handle: 'nope' })).rejects.toThrow('unknown handle');
    await expect(c.destroy({ handle: 'nope' })).rejects.toThrow('unknown handle');
  });
});

describe('jobs', () => {
  let handle: string;
  beforeAll(async () => {
    ({ handle } = await c.create({}));
  });
  afterAll(async () => {
    await c.destroy({ handle }).catch(() => {});
  });

  it('runs a script with separate stdout, stderr and the exit status', async () => {
    const r = await c.run({ handle, script: 'echo out; echo err >&2; exit 7' });
    expect(r.exit_status).toBe(7);
    expect(text(r.stdout)).toBe('out\n');
    expect(text(r.stderr)).toBe('err\n');
    expect(r.info?.state).toBe('active');
  });

  it('runs in the container root with LANG from the daemon', async () => {
    const r = await c.run({ handle, script: 'pwd; echo "LANG=$LANG"' });
    const [cwd, lang] = text(r.stdout).trim().split('\n');
    expect(cwd).toBe(join(d.depot, handle, 'root'));
    expect(lang).toMatch(/^LANG=./);
  });

  it('spawns, then links once; a second link is no such job', async () => {
    const { job_id } = await c.spawn({ handle, script: 'sleep 0.2; echo done' });
    expect((await c.info({ handle })).job_ids).toContain(job_id);
    const r = await c.link({ handle, job_id });
    expect(text(r.stdout)).toBe('done\n');
    await expect(c.link({ handle, job_id })).rejects.toThrow('no such job');
    await expect(c.stream({ handle, job_id })[Symbol.asyncIterator]().next()).rejects.toThrow('no such job');
  });

  it('job ids are unique and increasing', async () => {
    const a = (await c.spawn({ handle, script: 'true' })).job_id;
    const b = (await c.spawn({ handle, script: 'true' })).job_id;
    expect(b).toBeGreaterThan(a);
    await c.link({ handle, job_id: a });
    await c.link({ handle, job_id: b });
  });

  it('streams output as it comes, then the exit status', async () => {
    const { job_id } = await c.spawn({ handle, script: 'for i in 1 2 3; do echo $i; sleep 0.05; done; echo e >&2; exit 2' });
    let out = '';
    let err = '';
    let last: number | undefined;
    for await (const m of c.stream({ handle, job_id })) {
      if (m.name === 'stdout') out += text(m.data);
      if (m.name === 'stderr') err += text(m.data);
      if (m.exit_status !== undefined && m.exit_status !== null) last = m.exit_status;
    }
    expect(out).toBe('1\n2\n3\n');
    expect(err).toBe('e\n');
    expect(last).toBe(2);
  });

  it('gives every linking and streaming connection all of the output', async () => {
    const other = await d.client();
    try {
      const { job_id } = await c.spawn({ handle, script: 'sleep 0.3; seq 1 2000' });
      const expected = Array.from({ length: 2000 }, (_, i) => `${i + 1}\n`).join('');
      const streamed = (async () => {
        let s = '';
        for await (const m of other.stream({ handle, job_id })) if (m.name === 'stdout') s += text(m.data);
        return s;
      })();
      const linked = c.link({ handle, job_id });
      expect(await streamed).toBe(expected);
      expect(text((await linked).stdout)).toBe(expected);
    } finally {
      await other.close();
    }
  });

  it('keeps a job when the spawning connection goes away', async () => {
    const spawner = await d.client();
    const { job_id } = await spawner.spawn({ handle, script: 'sleep 0.3; echo survived' });
    await spawner.close();
    const r = await c.link({ handle, job_id });
    expect(text(r.stdout)).toBe('survived\n');
  });

  it('kills a job whose output passes job_output_limit and keeps what fits', async () => {
    // Endless output: the link can only return if the limit killed the job.
    const r = await c.run({ handle, script: 'yes 0123456789abcdef' });
    expect(r.exit_status).toBe(255);
    const out = text(r.stdout);
    expect(out.length).toBeLessThanOrEqual(64 * 1024);
    expect(out.length).toBeGreaterThan(0);
    expect((await c.info({ handle })).events).toContain('command exceeded maximum output');
  });

  it('discards output when asked', async () => {
    const r = await c.run({ handle, script: 'echo hidden; echo hidden >&2', discard_output: true });
    expect(r.exit_status).toBe(0);
    expect(text(r.stdout)).toBe('');
    expect(text(r.stderr)).toBe('');
  });

  it('applies rlimits over container_rlimits and refuses one above the hard limit', async () => {
    const r = await c.run({ handle, script: 'ulimit -n; ulimit -Hn', rlimits: { nofile: 123 } });
    expect(text(r.stdout)).toBe('123\n123\n');
    await expect(c.run({ handle, script: 'true', rlimits: { nofile: 1e9 } })).rejects.toThrow(/hard limit/);
  });

  it('passes binary output through unchanged', async () => {
    const r = await c.run({ handle, script: "printf '\\xff\\xfe\\x00\\xe2\\x9c'" });
    expect(Buffer.from(r.stdout as Uint8Array).equals(Buffer.from([0xff, 0xfe, 0x00, 0xe2, 0x9c]))).toBe(true);
  });
});

describe('stop', () => {
  it('terminates running jobs and refuses spawn afterwards', async () => {
    const { handle } = await c.create({});
    const { job_id } = await c.spawn({ handle, script: 'sleep 100' });
    await c.stop({ handle });
    expect((await c.info({ handle })).state).toBe('stopped');
    const r = await c.link({ handle, job_id });
    // Ended by TERM: a signal death reports 255, as the original did.
    expect(r.exit_status).toBe(255);
    await expect(c.spawn({ handle, script: 'true' })).rejects.toThrow(
      "Container state must be one of 'active', current state is 'stopped'",
    );
    await c.destroy({ handle });
  });

  it('kills at once with kill, and falls back to KILL for a job that ignores TERM', async () => {
    const { handle } = await c.create({});
    const job = heldJob();
    const { job_id } = await c.spawn({ handle, script: job.script });
    await job.ready();
    await c.stop({ handle, kill: true });
    // KILL at once: the job never saw a TERM (a Stop that TERMed first and waited out
    // its 10 s would have left the mark), and died of a signal.
    expect(job.termed()).toBe(false);
    expect((await c.link({ handle, job_id })).exit_status).toBe(255);
    await c.destroy({ handle });
    job.cleanup();
  });

  it('returns at once with background', async () => {
    const { handle } = await c.create({});
    const job = heldJob();
    const { job_id } = await c.spawn({ handle, script: job.script });
    await job.ready();
    await c.stop({ handle, background: true });
    // The Stop answered while the job still ran: TERMed (which it survives) and then
    // released, it ends by itself (0); a Stop that waited would have answered only
    // after KILLing it (255).
    await job.waitTermed();
    job.release();
    expect((await c.link({ handle, job_id })).exit_status).toBe(0);
    await c.destroy({ handle });
    job.cleanup();
  });
});

describe('copy in and out', () => {
  let handle: string;
  let root: string;
  beforeAll(async () => {
    ({ handle } = await c.create({}));
    root = join((await c.info({ handle })).container_path!, 'root');
    const src = join(scratch, 'src');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'a.txt'), 'A');
    writeFileSync(join(src, 'sub/b.sh'), '#!/bin/sh\n');
    chmodSync(join(src, 'sub/b.sh'), 0o751);
    symlinkSync('a.txt', join(src, 'link'));
  });
  afterAll(async () => {
    await c.destroy({ handle }).catch(() => {});
  });

  it('copies a directory itself, or its contents with a trailing slash', async () => {
    await c.copyIn({ handle, src_path: join(scratch, 'src'), dst_path: '/in1' });
    expect(readFileSync(join(root, 'in1/src/a.txt'), 'utf8')).toBe('A');
    await c.copyIn({ handle, src_path: join(scratch, 'src') + '/', dst_path: '/in2' });
    expect(readFileSync(join(root, 'in2/a.txt'), 'utf8')).toBe('A');
    expect(statSync(join(root, 'in2/sub/b.sh')).mode & 0o777).toBe(0o751);
    expect(readlinkSync(join(root, 'in2/link'))).toBe('a.txt');
  });

  it('copies out and chowns to owner', async () => {
    await c.copyOut({ handle, src_path: '/in2/', dst_path: join(scratch, 'out1'), owner: 'nobody:nogroup' });
    expect(readFileSync(join(scratch, 'out1/a.txt'), 'utf8')).toBe('A');
    expect(statSync(join(scratch, 'out1/a.txt')).uid).not.toBe(0);
    await c.copyOut({ handle, src_path: '/in2/sub/b.sh', dst_path: join(scratch, 'out2.sh') });
    expect(statSync(join(scratch, 'out2.sh')).mode & 0o777).toBe(0o751);
  });

  it('never leaves the container through .. or an absolute symlink', async () => {
    symlinkSync('/etc', join(root, 'etclink'));
    symlinkSync('/etc/passwd', join(root, 'passwdlink'));
    await expect(c.copyOut({ handle, src_path: '/../../../../../etc/passwd', dst_path: join(scratch, 'esc1') })).rejects.toThrow(/does not exist/);
    expect(existsSync(join(scratch, 'esc1'))).toBe(false);
    await expect(c.copyOut({ handle, src_path: '/etclink/passwd', dst_path: join(scratch, 'esc2') })).rejects.toThrow(/does not exist/);
    expect(existsSync(join(scratch, 'esc2'))).toBe(false);
    // The link itself is copied, as a link, never the host file.
    await c.copyOut({ handle, src_path: '/passwdlink', dst_path: join(scratch, 'esc3') });
    expect(readlinkSync(join(scratch, 'esc3'))).toBe('/etc/passwd');
    // Writes through a symlink stay inside too.
    writeFileSync(join(scratch, 'evil'), 'x');
    await c.copyIn({ handle, src_path: join(scratch, 'evil'), dst_path: '/etclink/warden-evil' });
    expect(existsSync('/etc/warden-evil')).toBe(false);
    expect(existsSync(join(root, 'etc/warden-evil'))).toBe(true);
    // A copy onto a link to a host file resolves it inside the container, as the
    // container sees it: the file lands under the container's root, the host file is unchanged.
    const hostFile = join(scratch, 'host-file');
    writeFileSync(hostFile, 'host\n');
    symlinkSync(hostFile, join(root, 'hostlink'));
    await c.copyIn({ handle, src_path: join(scratch, 'evil'), dst_path: '/hostlink' });
    expect(readFileSync(hostFile, 'utf8')).toBe('host\n');
    expect(lstatSync(join(root, 'hostlink')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(root, hostFile), 'utf8')).toBe('x');
  });
});

describe('net and limits', () => {
  it('net_in takes a port from the pool and, like the original insecure backend, reports it as container_port too', async () => {
    const { handle } = await c.create({});
    const a = await c.netIn({ handle });
    expect(a.host_port).toBeGreaterThan(0);
    expect(a.container_port).toBe(a.host_port);
    // Nothing forwards ports here, so a requested container_port is ignored.
    const b = await c.netIn({ handle, container_port: 8080 });
    expect(b.container_port).toBe(b.host_port);
    expect(b.host_port).not.toBe(a.host_port);
    await c.destroy({ handle });
  });

  it('net_out validates its rule', async () => {
    const { handle } = await c.create({});
    await expect(c.netOut({ handle })).rejects.toThrow(/^Please specify network, port, and\/or port_range\.$/);
    await expect(c.netOut({ handle, port_range: '90:80' })).rejects.toThrow(/^Port range maximum must be greater than minimum$/);
    // The insecure backend takes what the Linux one takes: a range, as the DEA sends them.
    await c.netOut({ handle, network: '10.0.0.0-10.255.255.255', protocol: 2, icmp_type: -1, icmp_code: -1 });
    await c.netOut({ handle, network: '10.0.0.0/8', port: 80 });
    await c.destroy({ handle });
  });

  it('limits answer the original insecure backend\'s "not implemented"', async () => {
    const { handle } = await c.create({});
    await expect(c.limitMemory({ handle, limit_in_bytes: 1 << 20 })).rejects.toThrow(/^not implemented$/);
    await expect(c.limitMemory({ handle })).rejects.toThrow(/^not implemented$/);
    await expect(c.limitDisk({ handle, byte_limit: 1 << 20 })).rejects.toThrow(/^not implemented$/);
    await expect(c.limitBandwidth({ handle, rate: 1000, burst: 1000 })).rejects.toThrow(/^not implemented$/);
    await expect(c.limitCpu({ handle, limit_in_shares: 10 })).rejects.toThrow(/^not implemented$/);
    await c.destroy({ handle });
  });
});

describe('grace time', () => {
  it('destroys an unreferenced container after its grace time, not while referenced', async () => {
    const other = await d.client();
    const { handle } = await other.create({ grace_time: 1 });
    // Something must NOT happen: only waiting past the grace time can show it (a slow
    // machine makes this wait weaker, never wrong).
    await sleep(1500);
    expect((await c.list()).handles).toContain(handle); // still referenced by `other`
    await other.close();
    await waitFor('the container to go after its grace time', async () => !((await c.list()).handles ?? []).includes(handle), 30_000, 100);
  });
});
