// Through the real daemon (Linux backend): what a container is isolated from, seen
// from inside (jobs) and from the host. Pool 10.245.1.0/24.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { LinuxDaemon } from '../support/linux/linux-daemon.ts';
import { TEST_ROOTFS } from '../support/linux/linux-host.ts';
import type { WardenClient } from '../../src/client/client.ts';
import type { InfoResponse } from '../../src/protocol/types.ts';

const UID_START = 31000;
let d: LinuxDaemon;
let client: WardenClient;
let handle: string;
let info: InfoResponse;
let initPid: number;
let hostDir: string;

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.245.1.0/24', portStart: 24100, uidStart: UID_START });
  client = await d.client();
  hostDir = await mkdtemp(join(tmpdir(), 'warden-iso-binds-'));
  await mkdir(join(hostDir, 'ro'));
  await mkdir(join(hostDir, 'rw'));
  await writeFile(join(hostDir, 'ro', 'hello'), 'from the host\n');
  await chmod(join(hostDir, 'rw'), 0o777);
});

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  if (hostDir) await rm(hostDir, { recursive: true, force: true });
  expect(problems).toEqual([]);
});

describe('a create that fails', () => {
  it('with a missing bind mount source is an error that leaves nothing behind', async () => {
    const before = (await client.list()).handles ?? [];
    const missing = join(hostDir, 'no-such-dir');
    await expect(
      client.create({ handle: 'bad-bind', bind_mounts: [{ src_path: missing, dst_path: '/mnt/x', mode: 0 }] }),
    ).rejects.toThrow(new RegExp(`${missing}.*does not exist|does not exist.*${missing}`));
    expect((await client.list()).handles ?? []).toEqual(before);
    expect(await d.hostLeaks()).toEqual([]);
    // The handle is free again.
    await expect(client.info({ handle: 'bad-bind' })).rejects.toThrow(/unknown handle|no such|not found/i);
  });
});

describe('an isolated container', () => {
  beforeAll(async () => {
    const c = await d.create(client, {
      handle: 'iso-app',
      bind_mounts: [
        { src_path: join(hostDir, 'ro'), dst_path: '/mnt/ro', mode: 0 },
        { src_path: join(hostDir, 'rw'), dst_path: '/mnt/rw', mode: 1 },
      ],
    });
    handle = c.handle;
    info = c.info;
    initPid = await d.initPid(info.container_path!);
  });

  it('has its own pid namespace: pid 1 is the init, host processes are invisible', async () => {
    const r = await d.run(client, handle, [
      'tr "\\0" " " < /proc/1/cmdline; echo',
      'ls /proc | grep -c "^[0-9]"',
      'ps -o args | grep -c "[n]ode" || true',
      'echo $$',
    ].join('\n'));
    expect(r.exit_status).toBe(0);
    const [cmd1, count, node, self] = r.stdout.trim().split('\n');
    expect(cmd1).toContain('/bin/bash -c trap');
    // init, its sleep, the job's shell and its few children: nothing of the host's hundreds.
    expect(Number(count)).toBeLessThan(10);
    expect(Number(node)).toBe(0);
    expect(Number(self)).toBeLessThan(100);
    // From the host: the init is pid 1 of a pid namespace that is not ours.
    const status = await readFile(`/proc/${initPid}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^NSpid:\\s+${initPid}\\s+1$`, 'm'));
    expect(await readlink(`/proc/${initPid}/ns/pid`)).not.toBe(await readlink('/proc/self/ns/pid'));
  });

  it('has its own hostname, the handle', async () => {
    const r = await d.run(client, handle, 'hostname; cat /etc/hostname');
    expect(r.stdout.trim().split('\n')).toEqual(['iso-app', 'iso-app']);
    const host = await execa('nsenter', ['-t', String(initPid), '-u', 'hostname']);
    expect(host.stdout.trim()).toBe('iso-app');
    expect(hostname()).not.toBe('iso-app');
  });

  it('has its own root (overlay) and /proc; its files land in <container_path>/tmp/rootfs', async () => {
    const r = await d.run(client, handle, [
      'awk \'$5 == "/" { print $9 }\' /proc/self/mountinfo | tail -1',
      'awk \'$5 == "/proc" { print $9 }\' /proc/self/mountinfo | head -1',
      'echo inside > /tmp/made-inside; echo ok',
      'test -e /work && echo host-work-visible || echo no-host-paths',
    ].join('\n'));
    expect(r.exit_status).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['overlay', 'proc', 'ok', 'no-host-paths']);
    const path = info.container_path!;
    expect(await readFile(join(path, 'tmp', 'rootfs', 'tmp', 'made-inside'), 'utf8')).toBe('inside\n');
    expect(await stat(join(TEST_ROOTFS, 'tmp', 'made-inside')).catch(() => undefined)).toBeUndefined();
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    expect(mounts).toMatch(new RegExp(` ${join(path, 'mnt')} .* - overlay `));
    expect(await readlink(`/proc/${initPid}/ns/mnt`)).not.toBe(await readlink('/proc/self/ns/mnt'));
  });

  it('sees only lo and its veth end with the container ip', async () => {
    const r = await d.run(client, handle, 'ls /sys/class/net | sort | tr "\\n" " "; echo; ip -o -4 addr | awk \'{ print $2, $4 }\'');
    const id = info.container_path!.split('/').pop()!;
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]!.trim()).toBe(`lo w-${id}-1`);
    expect(lines.slice(1).sort()).toEqual([`lo 127.0.0.1/8`, `w-${id}-1 ${info.container_ip}/30`].sort());
    // From the host: the host end holds the host ip, the container end is not in our namespace.
    const host = await execa('ip', ['-o', '-4', 'addr', 'show', 'dev', `w-${id}-0`]);
    expect(host.stdout).toContain(`${info.host_ip}/30`);
    expect(await stat(`/sys/class/net/w-${id}-1`).catch(() => undefined)).toBeUndefined();
    const inner = await execa('nsenter', [`--net=/proc/${initPid}/ns/net`, 'ip', '-o', '-4', 'addr']);
    expect(inner.stdout).toContain(`${info.container_ip}/30`);
  });

  it('runs unprivileged jobs as vcap with no capabilities, privileged ones as root', async () => {
    const r = await d.run(client, handle, 'id -u; id -un; grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; touch /tmp/by-vcap');
    const [uid, name, ...status] = r.stdout.trim().split('\n');
    expect(Number(uid)).toBeGreaterThanOrEqual(UID_START);
    expect(Number(uid)).toBeLessThan(UID_START + 64);
    expect(name).toBe('vcap');
    expect(status).toContain('CapEff:\t0000000000000000');
    expect(status).toContain('CapBnd:\t0000000000000000');
    expect(status).toContain('NoNewPrivs:\t1');
    expect(status).toContain('Seccomp:\t2');

    const p = await d.run(client, handle, 'id -u; id -un; grep "^CapEff:" /proc/self/status; touch /tmp/by-root', true);
    const [puid, pname, pcap] = p.stdout.trim().split('\n');
    expect([puid, pname]).toEqual(['0', 'root']);
    const capEff = BigInt(`0x${pcap!.split('\t')[1]}`);
    expect(capEff).not.toBe(0n);
    expect(capEff & (1n << 21n)).toBe(0n); // never CAP_SYS_ADMIN

    // From the host, through the DEA layout: owners are the pooled uid and root.
    const upper = join(info.container_path!, 'tmp', 'rootfs', 'tmp');
    expect((await stat(join(upper, 'by-vcap'))).uid).toBe(Number(uid));
    expect((await stat(join(upper, 'by-root'))).uid).toBe(0);
  });

  it('denies namespace, mount and keyring syscalls to an unprivileged job (seccomp)', async () => {
    // perl's syscall() reaches keyctl directly; the test rootfs has no perl, so bring the
    // host's in with its libraries and start it through the rootfs's dynamic loader.
    const kit = await mkdtemp(join(tmpdir(), 'warden-iso-perl-'));
    try {
      for (const f of ['/usr/bin/perl', '/lib/x86_64-linux-gnu/libcrypt.so.1', '/lib/x86_64-linux-gnu/libm.so.6']) {
        await execa('cp', ['-L', f, kit]);
      }
      await client.copyIn({ handle, src_path: `${kit}/`, dst_path: '/home/vcap/kit' });
    } finally {
      await rm(kit, { recursive: true, force: true });
    }
    const perl = '/lib64/ld-linux-x86-64.so.2 --library-path /home/vcap/kit /home/vcap/kit/perl';
    const r = await d.run(client, handle, [
      'unshare -U true 2>/dev/null; echo "userns=$?"',
      'unshare -n true 2>/dev/null; echo "netns=$?"',
      'mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null; echo "mount=$?"',
      // keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL), add_key: -1 with EPERM when filtered.
      `${perl} -e '$r = syscall(250, 1, 0, 0, 0, 0); print "keyctl=$r ", $!+0, "\\n"'`,
      `${perl} -e 'my ($t, $n, $v) = ("user", "k", "v"); $r = syscall(248, $t, $n, $v, 1, -2); print "add_key=$r ", $!+0, "\\n"'`,
      `${perl} -e '$r = syscall(272, 0x10000000); print "unshare_syscall=$r ", $!+0, "\\n"'`,
      `${perl} -e 'print "getpid=", syscall(39) > 0 ? "ok" : "bad", "\\n"'`,
    ].join('\n'));
    expect(r.stdout).toMatch(/^userns=[1-9]/m);
    expect(r.stdout).toMatch(/^netns=[1-9]/m);
    expect(r.stdout).toMatch(/^mount=[1-9]/m);
    expect(r.stdout).toMatch(/^keyctl=-1 1$/m); // EPERM
    expect(r.stdout).toMatch(/^add_key=-1 1$/m);
    expect(r.stdout).toMatch(/^unshare_syscall=-1 1$/m);
    expect(r.stdout).toMatch(/^getpid=ok$/m); // perl itself works: the denials are the filter's
  });

  it('bind mounts ro and rw from Create: ro cannot be written, rw writes show on the host', async () => {
    const r = await d.run(client, handle, [
      'cat /mnt/ro/hello',
      'echo x > /mnt/ro/new 2>/dev/null && echo ro-written || echo ro-refused',
      'echo from-container > /mnt/rw/out && echo rw-written',
    ].join('\n'));
    expect(r.stdout.trim().split('\n')).toEqual(['from the host', 'ro-refused', 'rw-written']);
    // Even root in the container cannot write the ro mount.
    const p = await d.run(client, handle, '{ echo x > /mnt/ro/new; } 2>&1; echo "rc=$?"', true);
    expect(p.stdout).toMatch(/Read-only file system/);
    expect(await stat(join(hostDir, 'ro', 'new')).catch(() => undefined)).toBeUndefined();
    expect(await readFile(join(hostDir, 'rw', 'out'), 'utf8')).toBe('from-container\n');
  });

  it('is destroyed without a trace, and the bind sources stay', async () => {
    await client.destroy({ handle });
    expect((await client.list()).handles ?? []).not.toContain(handle);
    expect(await d.hostLeaks()).toEqual([]);
    expect(await readFile(join(hostDir, 'ro', 'hello'), 'utf8')).toBe('from the host\n');
    expect(await readFile(join(hostDir, 'rw', 'out'), 'utf8')).toBe('from-container\n');
  });
});
