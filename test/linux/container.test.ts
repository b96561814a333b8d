// Linux backend, real containers (root): create, isolation seen from inside,
// jobs, bind mounts, failure undo, recover, sweep and a destroy that leaves nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { makeTestHost, randomId, type TestHost } from '../support/linux/linux-host.ts';
import { leftovers } from '../support/linux/leaks.ts';
import { linuxTasks } from '../../src/backends/linux/tasks.ts';
import type { ContainerRecord } from '../../src/model/records.ts';
import type { LinuxFacts } from '../../src/backends/linux/container/facts.ts';
import { describeError } from '../../src/model/errors.ts';
import { readRuncState } from '../../src/backends/linux/runtime/runc.ts';

let t: TestHost;
let c: ContainerRecord;

beforeAll(async () => {
  t = await makeTestHost();
  c = await t.create({ handle: 'my-app' });
});

afterAll(async () => {
  await t?.cleanup();
});

describe('a created container', () => {
  it('has the DEA folder layout and records its init', async () => {
    const f = c.backend as unknown as LinuxFacts;
    expect(f.initPid).toBeGreaterThan(1);
    expect((await readFile(join(c.path, 'run', 'wshd.pid'), 'utf8')).trim()).toBe(String(f.initPid));
    expect(await readFile(join(c.path, 'etc', 'config'), 'utf8')).toContain(`id="${c.id}"`);
    expect((await readFile(join(c.path, 'tmp', 'rootfs', 'etc', 'hostname'), 'utf8')).trim()).toBe('my-app');
    expect(await readFile('/proc/self/mountinfo', 'utf8')).toContain(join(c.path, 'mnt'));
  });

  it('runs jobs as vcap with exit status, stdout and stderr apart', async () => {
    const r = await t.job(c, 'echo out; echo err >&2; id -u; id -un; pwd; echo $HOME $USER; exit 7');
    expect(r.exitCode).toBe(7);
    expect(r.stderr).toBe('err');
    expect(r.stdout.split('\n')).toEqual(['out', String(c.uid), 'vcap', '/home/vcap', '/home/vcap vcap']);
  });

  it('isolates pid, uts, mount and network namespaces', async () => {
    const r = await t.job(c, [
      'cat /proc/1/cmdline | tr "\\0" " "; echo',
      'hostname',
      'ps -o pid= | wc -l',
      'ip -o link | cut -d: -f2 | tr -d " " | sort | tr "\\n" " "; echo',
      'cat /etc/hosts /etc/resolv.conf',
      'grep -c " / " /proc/self/mountinfo',
    ].join('\n'));
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toContain('/bin/bash -c trap');
    expect(lines[1]).toBe('my-app');
    expect(Number(lines[2])).toBeLessThan(8); // init, its sleep, this job's few processes: nothing of the host
    expect(lines[3]).toContain(`w-${c.id}-1`);
    expect(lines[3]).toContain('lo');
    expect(r.stdout).toContain(`${c.container_ip} my-app`);
    expect(r.stdout).toContain('nameserver 10.0.0.53');
  });

  it('gives unprivileged jobs no capabilities, no new privileges and the seccomp filter', async () => {
    const r = await t.job(c, 'grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status');
    expect(r.stdout).toContain('CapEff:\t0000000000000000');
    expect(r.stdout).toContain('CapBnd:\t0000000000000000');
    expect(r.stdout).toContain('NoNewPrivs:\t1');
    expect(r.stdout).toMatch(/Seccomp:\t2/);
  });

  it('denies namespace, mount, clock, swap and module syscalls from inside', async () => {
    // unshare -U needs no privilege on this host: only seccomp stops it.
    const r = await t.job(c, [
      'unshare -U true 2>&1; echo "userns=$?"',
      'unshare -n true 2>&1; echo "netns=$?"',
      'mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>&1; echo "mount=$?"',
      'date -s "2001-01-01" 2>&1 | grep -c "not permitted" | sed "s/^/date=/"',
      'swapon /tmp/nothing 2>&1; echo "swapon=$?"',
    ].join('\n'));
    expect(r.stdout).toMatch(/userns=[1-9]/);
    expect(r.stdout).toMatch(/Operation not permitted/);
    expect(r.stdout).toMatch(/netns=[1-9]/);
    expect(r.stdout).toMatch(/mount=[1-9]/);
    expect(r.stdout).toMatch(/date=[1-9]/);
    expect(r.stdout).toMatch(/swapon=[1-9]/);
  });

  it('runs privileged jobs as root with the reduced default capabilities, still filtered', async () => {
    const r = await t.job(c, 'id -u; grep -E "^(CapEff|NoNewPrivs):" /proc/self/status; unshare -U true 2>&1; echo "userns=$?"; mount -t tmpfs none /mnt 2>&1; echo "mount=$?"', {
      privileged: true,
    });
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('0');
    expect(lines[1]).toBe('CapEff:\t00000000a80425fb');
    expect(r.stdout).toMatch(/userns=[1-9]/);
    expect(r.stdout).toMatch(/mount=[1-9]/);
  });

  it('applies rlimits to jobs', async () => {
    const r = await t.job(c, 'ulimit -n; ulimit -Hn', { rlimits: { nofile: 512 } });
    expect(r.stdout).toBe('512\n512');
  });

  it('gives vcap its home and leaves the base rootfs untouched', async () => {
    const r = await t.job(c, 'touch ~/mine /tmp/t && stat -c %u ~/mine; grep ^vcap: /etc/passwd');
    expect(r.stdout.split('\n')).toEqual([String(c.uid), `vcap:x:${c.uid}:${c.uid}::/home/vcap:/bin/bash`]);
    expect(await stat(join(c.path, 'tmp', 'rootfs', 'home', 'vcap', 'mine'))).toBeTruthy();
    expect(await stat(join(t.host.baseRootfs, 'tmp', 't')).catch(() => undefined)).toBeUndefined();
  });

  it('reaps orphans: the init leaves no zombies', async () => {
    // A double fork: the grandchild is re-parented to the init and exits at once.
    const r = await t.job(c, '(sleep 0.1 &) ; sleep 0.5; ps -o stat= | grep -c Z || true');
    expect(r.stdout.trim()).toBe('0');
  });

  it('reports info from cgroup files', async () => {
    const info = await linuxTasks['linux.info']({ c });
    expect(info.memory_stat?.rss).toBeTypeOf('number');
    expect(info.memory_stat?.total_cache).toBeTypeOf('number');
    expect(info.cpu_stat?.usage).toBeGreaterThan(0);
    expect(info.disk_stat?.bytes_used).toBeTypeOf('number');
    expect(info.container_path).toBe(c.path);
  });

  it('is recovered while alive, not when its init is another process', async () => {
    expect(await linuxTasks['linux.recoverMany']({ host: t.host, cs: [c] })).toEqual([{ alive: true }]);
    const impostor = { ...c, backend: { ...c.backend, initStartTime: 1 } };
    expect(await linuxTasks['linux.recoverMany']({ host: t.host, cs: [impostor] })).toEqual([{ alive: false }]);
    // The live init under an id runc holds no state for (its state.json read stands in for `runc list`).
    const unknown = { ...c, id: randomId() };
    expect(await linuxTasks['linux.recoverMany']({ host: t.host, cs: [unknown] })).toEqual([{ alive: false }]);
  });

  it("reads runc's state as `runc list` reports it", async () => {
    const rt = { binary: t.host.runtime, root: t.host.runtimeRoot };
    const listed = JSON.parse((await execa(rt.binary, ['--root', rt.root, 'list', '--format', 'json'])).stdout) as { id: string; pid: number }[];
    const mine = listed.find((x) => x.id === c.id)!;
    expect(mine.pid).toBe((c.backend as unknown as LinuxFacts).initPid);
    expect(await readRuncState(rt, c.id)).toMatchObject({ id: c.id, pid: mine.pid });
    expect(await readRuncState(rt, randomId())).toBeUndefined();
    expect(await readRuncState(rt, '../etc')).toBeUndefined();
  });
});

describe('bind mounts', () => {
  it('mounts read-only and read-write sources', async () => {
    const ro = join(t.base, 'ro');
    const rw = join(t.base, 'rw');
    await mkdir(ro, { recursive: true });
    await mkdir(rw, { recursive: true, mode: 0o777 });
    await execa('chmod', ['777', rw]);
    await writeFile(join(ro, 'file'), 'host data');
    const b = await t.create({
      bind_mounts: [
        { src_path: ro, dst_path: '/data/ro', mode: 0 },
        { src_path: rw, dst_path: '/data/rw', mode: 1 },
      ],
    });
    const r = await t.job(b, 'cat /data/ro/file; echo; touch /data/ro/x 2>/dev/null; echo "ro=$?"; echo hi > /data/rw/y; echo "rw=$?"');
    expect(r.stdout).toBe('host data\nro=1\nrw=0');
    expect(await readFile(join(rw, 'y'), 'utf8')).toBe('hi\n');
    await t.destroy(b);
  });

  it('fails clearly on a missing source and undoes everything', async () => {
    const rec = t.record({ bind_mounts: [{ src_path: '/nonexistent/warden', dst_path: '/x', mode: 0 }] });
    // As the daemon does: the folder is made (and removed) by the daemon, its contents by the backend.
    await mkdir(rec.path, { recursive: true });
    const err = await linuxTasks['linux.create']({ host: t.host, c: rec }).catch((e: unknown) => e);
    expect(describeError(err)).toMatch(/bind mount source \/nonexistent\/warden does not exist/);
    expect(await readdir(rec.path)).toEqual([]);
    await rm(rec.path, { recursive: true, force: true });
  });
});

it('undoes every step when the runtime step fails', async () => {
  // A rootfs without bash: runc run fails (no init binary to exec).
  const empty = join(t.base, 'empty-rootfs');
  await mkdir(join(empty, 'etc'), { recursive: true });
  const rec = t.record({ rootfs: empty });
  await mkdir(rec.path, { recursive: true });
  await expect(linuxTasks['linux.create']({ host: t.host, c: rec })).rejects.toThrow(new RegExp(`create ${rec.id}`));
  // Nothing of the backend's is left in the folder the daemon made.
  expect(await readdir(rec.path)).toEqual([]);
  await rm(rec.path, { recursive: true, force: true });
  expect(await leftovers(rec)).toEqual([]);
});

it('undoes every step, the running init too, when the network step after it fails', async () => {
  const rec = t.record();
  await mkdir(rec.path, { recursive: true });
  // Something already holds the host end's name: the veth cannot be made once runc has started the init.
  await execa('ip', ['link', 'add', `w-${rec.id}-0`, 'type', 'ifb']);
  const err = await linuxTasks['linux.create']({ host: t.host, c: rec }).catch((e: Error) => e);
  expect(describeError(err)).toMatch(new RegExp(`create ${rec.id}: create network: ip -batch - failed: .*File exists`));
  expect(await readdir(rec.path)).toEqual([]);
  await rm(rec.path, { recursive: true, force: true });
  // The runtime container (its init ran), cgroups, links, rules, mount, subvolume: all gone; the network's undo took the squatter too.
  expect(await leftovers(rec)).toEqual([]);
});

it('destroys completely and idempotently', async () => {
  const d = await t.create();
  await t.job(d, 'dd if=/dev/zero of=/tmp/blob bs=1M count=2 2>/dev/null; sleep 100 >/dev/null 2>&1 &');
  const facts = d.backend as unknown as LinuxFacts;
  const t0 = performance.now();
  await t.destroy(d);
  const ms = performance.now() - t0;
  expect(await leftovers(d, facts)).toEqual([]);
  await linuxTasks['linux.destroy']({ host: t.host, c: d }); // again: nothing to do, no error
  // Destroy kills the job's background sleep instead of waiting for its 100 s: bounded
  // far below those, far above a slow destroy.
  expect(ms).toBeLessThan(30_000);
});

it('sweeps resources no container claims', async () => {
  const e = await t.create();
  const facts = e.backend as unknown as LinuxFacts;
  await linuxTasks['linux.sweep']({ host: t.host, claimed: [c.id], only: [e.id, randomId()] });
  expect(await leftovers(e, facts)).toEqual([]);
  // The claimed container lives on.
  expect((await t.job(c, 'echo alive')).stdout).toBe('alive');
});
