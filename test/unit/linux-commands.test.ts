// The Linux backend's host commands, run against a fake host (setHostRunner; no
// root): the exact argv and stdin of runc, iptables, iptables-restore and mount
// calls, what a failing command becomes (its error text), and the undo that
// follows. Filesystem work points at temp folders. The real root tests
// (test/linux/) stay what proves the commands work on a real kernel.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostCommandError, JOIN_CGROUP_FAILED } from '../../src/host/run.ts';
import { describeError } from '../../src/model/errors.ts';
import { containerState, deleteContainer, listContainerStates, runContainer, type Runtime } from '../../src/backends/linux/runtime/runc.ts';
import {
  createBatch,
  createContainerNetwork,
  destroyBatch,
  destroyContainerNetwork,
  netIn,
  netInBatch,
  netOut,
} from '../../src/backends/linux/network/container.ts';
import { renderBatch } from '../../src/backends/linux/network/iptables.ts';
import { limitBandwidth } from '../../src/backends/linux/network/shaping.ts';
import { mountOverlay } from '../../src/backends/linux/rootfs/overlay.ts';
import { createContainerOnHost } from '../../src/backends/linux/container/create.ts';
import { destroyContainerOnHost } from '../../src/backends/linux/container/destroy.ts';
import { hostSettings } from '../../src/backends/linux/settings.ts';
import { parseConfig } from '../../src/config/config.ts';
import type { ContainerRecord } from '../../src/model/records.ts';
import type { ContainerNetSpec } from '../../src/backends/linux/network/types.ts';
import { useFakeHostRunner, type HostCall } from '../support/fake-host-runner.ts';

const host = useFakeHostRunner();
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'warden-cmds-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const ID = 'abc123';
const spec: ContainerNetSpec = { id: ID, hostIp: '10.250.0.1', containerIp: '10.250.0.2', mtu: 1500 };
const argv = (c: HostCall) => [c.file, ...c.args];

describe('runc', () => {
  const rt = (): Runtime => ({ binary: 'runc', root: join(tmp, 'runc-root') });

  /** What runc run --detach leaves: its state file under the runtime root, with the init's pid. */
  const fakeRuncState = (pid: number) => async () => {
    await mkdir(join(rt().root, ID), { recursive: true });
    await writeFile(join(rt().root, ID, 'state.json'), JSON.stringify({ id: ID, init_process_pid: pid }));
    return {};
  };

  it('run --detach: --log, --root, run --detach --bundle, output to /dev/null (one runc call, no start); the init pid from runc\'s state file, written to the pid file', async () => {
    host.on('runc --log', fakeRuncState(4242));
    const pidFile = join(tmp, 'wshd.pid');
    expect(await runContainer(rt(), ID, '/b', pidFile, '/b/log')).toBe(4242);
    // No --pid-file: runc opens it O_SYNC, a flush of the depot's disk per create.
    expect(host.calls.map(argv)).toEqual([['runc', '--log', '/b/log', '--root', rt().root, 'run', '--detach', '--bundle', '/b', ID]]);
    expect(host.calls[0]!.stdout).toBe('ignore');
    expect(await readFile(pidFile, 'utf8')).toBe('4242\n');
  });

  it('run with another runtime: it writes the pid file itself', async () => {
    const crun: Runtime = { binary: 'crun', root: rt().root };
    const pidFile = join(tmp, 'crun.pid');
    host.on('crun --log', async () => {
      await writeFile(pidFile, '4343\n');
      return {};
    });
    expect(await runContainer(crun, ID, '/b', pidFile, '/b/log')).toBe(4343);
    expect(host.calls.map(argv)).toEqual([['crun', '--log', '/b/log', '--root', rt().root, 'run', '--detach', '--bundle', '/b', '--pid-file', pidFile, ID]]);
  });

  it('a run that leaves no state file is an error naming the container', async () => {
    await rm(join(rt().root, ID), { recursive: true, force: true });
    await expect(runContainer(rt(), ID, '/b', join(tmp, 'none.pid'), '/b/log')).rejects.toThrow(`runc run ${ID} left no state file`);
  });

  it('run from inside the daemon\'s cgroup: runc is ordered to start from the given cgroup.procs', async () => {
    host.on('runc --log', fakeRuncState(4242));
    await runContainer(rt(), ID, '/b', join(tmp, 'wshd.pid'), '/b/log', '/sys/fs/cgroup/cpu/cgroup.procs');
    expect(argv(host.calls[0]!)).toEqual(['runc', '--log', '/b/log', '--root', rt().root, 'run', '--detach', '--bundle', '/b', ID]);
    expect(host.calls[0]!.joinCgroup).toBe('/sys/fs/cgroup/cpu/cgroup.procs');
  });

  it('a run that cannot get into that cgroup says so', async () => {
    host.on('runc --log', { exitCode: JOIN_CGROUP_FAILED });
    await expect(runContainer(rt(), ID, '/b', join(tmp, 'wshd.pid'), '/b/log', '/nowhere/cgroup.procs')).rejects.toThrow(
      `runc run ${ID} failed: cannot move into the cgroup of /nowhere/cgroup.procs`,
    );
  });

  it('a failed run says why in runc\'s own words, from its log', async () => {
    const log = join(tmp, 'runtime.log');
    host.on('runc --log', async () => {
      await writeFile(
        log,
        'time="2026-01-01T00:00:00Z" level=error msg="runc run failed: unable to start container process: exec: \\"/sbin/init\\": permission denied"\n',
      );
      return { exitCode: 1 };
    });
    const err = await runContainer(rt(), ID, '/b', '/b/pid', log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostCommandError);
    expect((err as Error).message).toBe(
      `runc run ${ID} failed: runc run failed: unable to start container process: exec: \\"/sbin/init\\": permission denied`,
    );
  });

  it('list: its argv; it parses runc\'s JSON (null when empty)', async () => {
    host.on('runc --root', { stdout: '[{"id":"abc123","pid":77,"status":"running","bundle":"/b"}]\n' });
    const states = await listContainerStates(rt());
    host.on('runc --root', { stdout: 'null\n' });
    expect((await listContainerStates(rt())).size).toBe(0);
    expect(host.lines()).toEqual([
      `runc --root ${rt().root} list --format json`,
      `runc --root ${rt().root} list --format json`,
    ]);
    expect(states.get(ID)).toMatchObject({ pid: 77, status: 'running' });
  });

  it('state: undefined for a container runc does not know, an error naming the command otherwise', async () => {
    host.on('runc', { exitCode: 1, stderr: `container "${ID}" does not exist` }, { times: 1 });
    expect(await containerState(rt(), ID)).toBeUndefined();
    host.on('runc', { exitCode: 1, stderr: 'open /run/runc: permission denied' }, { times: 1 });
    await expect(containerState(rt(), ID)).rejects.toThrow(`state of ${ID}: runc state ${ID} failed: open /run/runc: permission denied`);
    host.on('runc', { stdout: '{"id":"abc123","pid":5,"status":"created","bundle":"/b"}' }, { times: 1 });
    expect(await containerState(rt(), ID)).toMatchObject({ pid: 5, status: 'created' });
  });

  it('delete --force; a container runc does not know: the leftover of a cut create is removed, a real one is not', async () => {
    const cut = join(rt().root, 'cut1');
    const whole = join(rt().root, 'whole1');
    await mkdir(cut, { recursive: true });
    await mkdir(whole, { recursive: true });
    await writeFile(join(whole, 'state.json'), '{}');
    host.on(/ delete --force /, (c) => ({ exitCode: 1, stderr: `container "${c.args.at(-1)}" does not exist` }));
    await deleteContainer(rt(), 'cut1');
    await deleteContainer(rt(), 'whole1');
    expect(host.lines()).toEqual([`runc --root ${rt().root} delete --force cut1`, `runc --root ${rt().root} delete --force whole1`]);
    expect(existsSync(cut)).toBe(false);
    expect(existsSync(whole)).toBe(true);
    host.on(/ delete --force /, { exitCode: 1, stderr: 'device or resource busy' });
    await expect(deleteContainer(rt(), 'x1')).rejects.toThrow(`delete x1: runc --root ${rt().root} delete --force x1 failed: device or resource busy`);
  });
});

describe('container network', () => {
  it('create that fails in the namespace step: the rules batch went in, and the undo batch takes it out', async () => {
    // Our own pid is in the host's namespace: the veth step refuses it before any command.
    const err = await createContainerNetwork(spec, process.pid).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(`create network: pid ${process.pid} is in the host's network namespace, not a container's`);
    expect(host.calls.map(argv)).toEqual([
      ['iptables-restore', '-w', '10', '--noflush'],
      ['iptables-restore', '-w', '10', '--noflush'],
    ]);
    expect(host.calls.map((c) => c.input)).toEqual([renderBatch(createBatch(spec)), renderBatch(destroyBatch(ID))]);
  });

  it('a rules batch iptables-restore refuses: the error names the line\'s rule and the setup hint, then the undo runs', async () => {
    host.on('iptables-restore', { exitCode: 2, stderr: "iptables-restore: line 7 failed: No chain/target/match by that name." }, { times: 1 });
    const err = await createContainerNetwork(spec, process.pid).catch((e: Error) => e);
    const line7 = renderBatch(createBatch(spec)).split('\n')[6];
    expect(line7).toBe('-A warden-instances -i w-abc123-0 -g warden-i-abc123');
    expect((err as Error).message).toBe(
      'create network: iptables-restore -w 10 --noflush failed: iptables-restore: line 7 failed: No chain/target/match by that name.' +
        ` (rule: ${line7}) (are the base chains set up? setupNetworkHost runs at daemon start)`,
    );
    expect(host.calls.map((c) => c.input)).toEqual([renderBatch(createBatch(spec)), renderBatch(destroyBatch(ID))]);
  });

  it('destroy: one atomic batch; when it fails, the exact batch from what iptables lists (duplicates too)', async () => {
    await destroyContainerNetwork(ID);
    expect(host.calls.map((c) => [argv(c).join(' '), c.input])).toEqual([['iptables-restore -w 10 --noflush', renderBatch(destroyBatch(ID))]]);

    host.calls.length = 0;
    host.on('iptables-restore', { exitCode: 1, stderr: 'iptables-restore: line 2 failed' }, { times: 1 });
    // Both tables from one listing, as iptables-save prints them.
    host.on('iptables-save', {
      stdout: [
        '# Generated by iptables-nft-save',
        '*filter',
        ':FORWARD DROP [0:0]',
        ':warden-instances - [0:0]',
        ':warden-i-abc123 - [0:0]',
        '-A warden-instances -i w-abc123-0 -g warden-i-abc123',
        '-A warden-instances -i w-abc123-0 -g warden-i-abc123',
        '-A warden-instances -i w-other-0 -g warden-i-other',
        '-A warden-i-abc123 -g warden-default',
        'COMMIT',
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':warden-prerouting - [0:0]',
        'COMMIT',
        '',
      ].join('\n'),
    });
    await destroyContainerNetwork(ID);
    expect(host.lines()).toEqual(['iptables-restore -w 10 --noflush', 'iptables-save', 'iptables-restore -w 10 --noflush']);
    expect(host.calls[2]!.input).toBe(
      [
        '*filter',
        '-D warden-instances -i w-abc123-0 -g warden-i-abc123',
        '-D warden-instances -i w-abc123-0 -g warden-i-abc123',
        '-F warden-i-abc123',
        '-X warden-i-abc123',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('net_in with the recorded rules: one restore that rewrites the nat chain', async () => {
    const existing = [{ host_port: 40000, container_port: 80 }];
    await netIn(spec, 40001, 22, existing);
    expect(host.lines()).toEqual(['iptables-restore -w 10 --noflush']);
    expect(host.calls[0]!.input).toBe(renderBatch(netInBatch(spec, existing, 40001, 22)));
  });

  it('net_in without them: a check, then an append only when the rule is not there; other failures are errors', async () => {
    const rule = ['warden-i-abc123', '-p', 'tcp', '-m', 'tcp', '--dport', '40001', '-j', 'DNAT', '--to-destination', '10.250.0.2:22'];
    host.on('iptables -w 10 -t nat -C', { exitCode: 1, stderr: 'iptables: Bad rule (does a matching rule exist in that chain?).' }, { times: 1 });
    await netIn(spec, 40001, 22);
    await netIn(spec, 40001, 22);
    expect(host.calls.map(argv)).toEqual([
      ['iptables', '-w', '10', '-t', 'nat', '-C', ...rule],
      ['iptables', '-w', '10', '-t', 'nat', '-A', ...rule],
      ['iptables', '-w', '10', '-t', 'nat', '-C', ...rule],
    ]);
    host.on('iptables -w 10 -t nat -C', { exitCode: 4, stderr: 'iptables: Resource temporarily unavailable.' }, { times: 1 });
    await expect(netIn(spec, 40001, 22)).rejects.toThrow(
      `net_in: iptables -w 10 -t nat -C ${rule.join(' ')} failed: iptables: Resource temporarily unavailable.`,
    );
  });

  it('net_out: the rule is checked, then inserted first in the container\'s chain', async () => {
    host.on('iptables -w 10 -t filter -C', { exitCode: 1 });
    await netOut(spec, { network: '10.9.0.0/16', port: 443, protocol: 0 } as never);
    expect(host.calls).toHaveLength(2);
    const [check, insert] = host.calls.map((c) => c.args);
    expect(check!.slice(0, 5)).toEqual(['-w', '10', '-t', 'filter', '-C']);
    expect(insert!.slice(0, 7)).toEqual(['-w', '10', '-t', 'filter', '-I', 'warden-i-abc123', '1']);
    // The same rule in both.
    expect(insert!.slice(7)).toEqual(check!.slice(6));
    expect(check!.join(' ')).toContain('-d 10.9.0.0/16 -p tcp -m tcp --dport 443');
  });

  it('iptables calls of one thread never overlap: the second starts when the first has ended', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let running = 0;
    let overlapped = false;
    host.on('iptables', async (c) => {
      running++;
      if (running > 1) overlapped = true;
      if (host.calls.length === 1) await held;
      running--;
      // The checks find no rule: each is inserted.
      return { exitCode: c.args[4] === '-C' ? 1 : 0 };
    });
    const first = netOut(spec, { network: '10.9.0.1', protocol: 0 } as never);
    const second = netOut(spec, { network: '10.9.0.2', protocol: 0 } as never);
    await new Promise((r) => setImmediate(r));
    expect(host.calls).toHaveLength(1);
    release();
    await Promise.all([first, second]);
    expect(overlapped).toBe(false);
    expect(host.calls.map((c) => c.args[4]).sort()).toEqual(['-C', '-C', '-I', '-I']);
  });

  it('bandwidth on a container without its interface: an error, and no tc run', async () => {
    await expect(limitBandwidth('zz9', 1000, 100)).rejects.toThrow(
      'limit_bandwidth: interface w-zz9-0 does not exist (container network not set up)',
    );
    expect(host.calls).toEqual([]);
  });
});

describe('overlay', () => {
  it('mount: one mount command with the three folders; refuses a path mount would misread', async () => {
    const d = { lower: join(tmp, 'lower'), upper: join(tmp, 'up'), work: join(tmp, 'work'), merged: join(tmp, 'mnt') };
    await mkdir(d.lower, { recursive: true });
    await mountOverlay(d);
    expect(host.calls.map(argv)).toEqual([
      ['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${d.lower},upperdir=${d.upper},workdir=${d.work}`, d.merged],
    ]);
    const odd = join(tmp, 'a,b');
    await mkdir(odd, { recursive: true });
    await expect(mountOverlay({ ...d, lower: odd })).rejects.toThrow(`cannot use ${odd} in an overlay mount`);
    expect(host.calls).toHaveLength(1);
  });
});

describe('container create', () => {
  it('a create that fails at its network step undoes every step before it, in reverse', async () => {
    const depot = join(tmp, 'depot');
    const lower = join(tmp, 'rootfs');
    await mkdir(join(lower, 'etc'), { recursive: true });
    await writeFile(join(lower, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    await mkdir(depot, { recursive: true });
    const config = parseConfig(
      `server:\n  container_klass: Warden::Container::Linux\n  container_depot_path: ${depot}\n  container_rootfs_path: ${lower}\n  quota:\n    disk_quota_enabled: false\n`,
      'linux-commands.yml',
      { localPortRange: [32768, 60999], pidMax: 32768 },
    );
    const links = join(tmp, 'cgroup-links');
    const s = { ...hostSettings(config, { runtimeRoot: join(tmp, 'runc'), cgroupParent: 'warden-cmds-test' }), cgroupLinkRoot: links };
    const path = join(depot, ID);
    const c: ContainerRecord = {
      id: ID, handle: 'h', state: 'born', path, network: '10.250.0.0', host_ip: spec.hostIp, container_ip: spec.containerIp,
      // Our own uid: the rootfs setup chowns the home folder to it, which needs no root then.
      uid: process.getuid!(), ports: [], grace_time: null, bind_mounts: [], rootfs: '', events: [], net_in: [], net_out: [], limits: {},
      jobs: [], created_at: 0, backend: {},
    };
    // runc run "starts" an init: our own pid, which is in the host's network namespace.
    host.on(/^runc .* run --detach /, async () => {
      await mkdir(join(s.runtimeRoot, ID), { recursive: true });
      await writeFile(join(s.runtimeRoot, ID, 'state.json'), JSON.stringify({ id: ID, init_process_pid: process.pid }));
      return {};
    });

    const err = await createContainerOnHost(s, c).catch((e: Error) => e);
    // Wrapped once, with the cause: the whole story reads as one line.
    expect(describeError(err)).toBe(`create ${ID}: create network: pid ${process.pid} is in the host's network namespace, not a container's`);
    expect(host.lines().map((l) => l.split(' ').slice(0, 3).join(' '))).toEqual([
      'mount -t overlay',
      `runc --log ${join(path, 'run', 'runtime.log')}`,
      // the network: its rules, then their undo
      'iptables-restore -w 10',
      'iptables-restore -w 10',
      // the runtime container's undo (the overlay was never really mounted: nothing to unmount)
      `runc --root ${s.runtimeRoot}`,
    ]);
    expect([host.calls[2]!.input, host.calls[3]!.input]).toEqual([renderBatch(createBatch(spec)), renderBatch(destroyBatch(ID))]);
    expect(host.calls[4]!.args.slice(-3)).toEqual(['delete', '--force', ID]);
    // Its subvolume (the disk-limited part) is gone; the folder is the daemon's to remove (its undo destroys it).
    expect(existsSync(join(path, 'tmp'))).toBe(false);
    // The cgroup links it made are gone again.
    const left = await readdir(links, { recursive: true }).catch(() => [] as string[]);
    expect(left.filter((n) => n.includes(ID))).toEqual([]);
  });
});

describe('container destroy', () => {
  it('attempts every step though one fails, and names each failure in one error', async () => {
    const depot = join(tmp, 'depot-destroy');
    const path = join(depot, ID);
    await mkdir(join(path, 'tmp', 'rootfs'), { recursive: true });
    const config = parseConfig(
      `server:\n  container_klass: Warden::Container::Linux\n  container_depot_path: ${depot}\n  quota:\n    disk_quota_enabled: false\n`,
      'linux-commands.yml',
      { localPortRange: [32768, 60999], pidMax: 32768 },
    );
    const s = { ...hostSettings(config, { runtimeRoot: join(tmp, 'runc-d'), cgroupParent: 'warden-cmds-test' }), cgroupLinkRoot: join(tmp, 'links-d') };
    // Cgroups that do not exist (nothing to kill or remove), a plain folder for the subvolume.
    const gone = join(tmp, 'no-such-cgroup');
    const c: ContainerRecord = {
      id: ID, handle: 'h', state: 'active', path, network: '10.250.0.0', host_ip: spec.hostIp, container_ip: spec.containerIp,
      uid: 20000, ports: [], grace_time: null, bind_mounts: [], rootfs: '', events: [], net_in: [], net_out: [], limits: {},
      jobs: [], created_at: 0,
      backend: { initPid: 1, initStartTime: 1, cgroups: { memory: gone, cpu: gone }, subvolume: { btrfs: false }, runtime: { binary: 'runc', root: s.runtimeRoot } },
    };
    host.on(/ delete --force /, { exitCode: 1, stderr: 'container init still running: device or resource busy' });

    const err = await destroyContainerOnHost(s, c).catch((e: Error) => e);
    expect((err as Error).message).toBe(
      `destroy ${ID}: runtime delete: delete ${ID}: runc --root ${s.runtimeRoot} delete --force ${ID} failed: container init still running: device or resource busy`,
    );
    // The steps after the failed one still ran: the network's batch, and the folder is gone.
    expect(host.lines()).toEqual([`runc --root ${s.runtimeRoot} delete --force ${ID}`, 'iptables-restore -w 10 --noflush']);
    expect(host.calls[1]!.input).toBe(renderBatch(destroyBatch(ID)));
    expect(existsSync(path)).toBe(false);
  });
});
