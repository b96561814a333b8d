// A daemon start on a host set up before (every restart but the first) runs as few
// host commands as it can: the depot's quota and its containers' limit are read
// from sysfs, the network's setup from one iptables listing, and the stale-qgroup
// listing waits until after the start. When something is missing or different
// (quota off, another reserve, a rule or chain gone, another config), the start
// puts exactly that right. Root, against the real host: its own depot image, pool,
// cgroup parent and runtime root (beside other test files); the base chains are
// broken by hand only in a private network namespace, where nothing else uses them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, readFile, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { setHostRunner } from '../../src/host/run.ts';
import { spawnHost } from '../../src/host/spawner.ts';
import { linuxTasks } from '../../src/backends/linux/tasks.ts';
import { depotTag, type LinuxHostSettings } from '../../src/backends/linux/settings.ts';
import { filesystemId } from '../../src/backends/linux/disk/subvolume.ts';
import { containersShare } from '../../src/backends/linux/disk/containers-qgroup.ts';
import { ROOT } from '../support/daemon.ts';
import { waitFor } from '../support/wait.ts';
import type { Step } from '../support/linux/host-rules-private.ts';

const id = randomBytes(4).toString('hex');
const base = `/tmp/warden-setup-again-${id}`;
const runDir = `/run/warden-test-${id}`;
const pool = `10.243.${randomInt(0, 256)}.0/24`;
const depot = join(base, 'depot');
const tag = depotTag(depot);
const MiB = 1024 * 1024;

const host: LinuxHostSettings = {
  runtime: 'runc',
  runtimeRoot: `${runDir}/runc`,
  cgroupParent: `warden-test-${id}`,
  depot,
  diskQuota: true,
  depotImage: join(base, 'depot.img'),
  depotImageBytes: 1024 ** 3,
  depotReserve: null,
  baseRootfs: '/tmp/warden-test-rootfs',
  dnsServers: ['10.0.0.53'],
  mtu: 1500,
  network: { poolNetwork: pool, allowNetworks: [], denyNetworks: ['10.9.0.0/16'], allowHostAccess: false },
};

interface Call {
  line: string;
  input?: string;
}
const calls: Call[] = [];

/** One daemon start's host setup; the commands it ran. */
async function start(): Promise<Call[]> {
  calls.length = 0;
  await linuxTasks['linux.setupHost']({ host });
  return [...calls];
}

/** The stale-qgroup listing a start leaves for a second later, in the background. */
const ADOPT = `btrfs qgroup show --raw ${depot}`;

/** Command lines starting with prefix; an earlier start's background listing, which may fall into a later start, left out. */
const lines = (cs: Call[], prefix = '') => cs.map((c) => c.line).filter((l) => l.startsWith(prefix) && l !== ADOPT);

/** The start's own background listing: not during the start (cs), but after it. */
async function adoptedAfter(cs: Call[]): Promise<void> {
  expect(cs.map((c) => c.line)).not.toContain(ADOPT);
  calls.length = 0;
  await waitFor('the stale-qgroup listing after the start', () => calls.some((c) => c.line === ADOPT), 10_000, 50);
}

/**
 * Restores other than one that only deletes other configs' stale pool rules: a test
 * file beside this one may leave its rules stale at any moment, and whichever daemon
 * starts next removes them.
 */
function ownRestores(cs: Call[]): string[] {
  const others = (l: string) => l.startsWith('-D ') && /--comment "?warden:[0-9a-z]+/.test(l) && !l.includes(`warden:${tag}`);
  return cs
    .filter((c) => c.line.startsWith('iptables-restore'))
    .map((c) => c.input ?? '')
    .filter((input) => input.split('\n').some((l) => l && !l.startsWith('*') && l !== 'COMMIT' && !others(l)));
}

async function sysfsLimit(): Promise<string> {
  const fsid = await filesystemId(depot, { fresh: true });
  return (await readFile(`/sys/fs/btrfs/${fsid}/qgroups/1_1/max_referenced`, 'utf8')).trim();
}

async function share(reserve: number | null): Promise<number> {
  const fs = await statfs(depot);
  return containersShare(fs.blocks * fs.bsize, reserve);
}

describe('a start on a host set up before', () => {
  beforeAll(async () => {
    await mkdir(base, { recursive: true });
    setHostRunner((req) => {
      const input = req.inputBase64 === undefined ? undefined : Buffer.from(req.inputBase64, 'base64').toString('utf8');
      calls.push({ line: [req.file, ...req.args].join(' '), ...(input === undefined ? {} : { input }) });
      return spawnHost(req);
    });
  });

  afterAll(async () => {
    setHostRunner(undefined);
    // Pool rules, cgroup parents, the depot's mount, the runtime root and the daemon record.
    await linuxTasks['linux.teardownHost']({ host }).catch((err: Error) => console.error(`teardown: ${err.message}`));
    await execa('umount', [depot]).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  it('the first start mounts the depot, turns quota on, makes and limits the containers\' qgroup, and restores the rules', async () => {
    const cs = await start();
    const want = await share(null);
    expect(lines(cs, 'btrfs')).toEqual([`btrfs quota enable ${depot}`, `btrfs qgroup create 1/1 ${depot}`, `btrfs qgroup limit ${want} 1/1 ${depot}`]);
    expect(await sysfsLimit()).toBe(String(want));
    expect(lines(cs, 'iptables-save')).toHaveLength(1);
    expect(ownRestores(cs)).toHaveLength(1);
    expect(lines(cs, 'findmnt')).toEqual([]);
    await adoptedAfter(cs);
  });

  it('the next start runs one iptables-save and nothing else; the stale qgroups are listed after it', async () => {
    const cs = await start();
    expect(lines(cs).filter((l) => !l.startsWith('iptables-restore'))).toEqual(['iptables-save']);
    expect(ownRestores(cs)).toEqual([]);
    await adoptedAfter(cs);
  });

  it('our pool\'s rule deleted by hand: the next start puts it back with one restore', async () => {
    const masquerade = ['-s', pool, '!', '-o', 'w-+', '-m', 'comment', '--comment', `warden:${tag}`, '-j', 'MASQUERADE'];
    await execa('iptables', ['-w', '-t', 'nat', '-D', 'warden-postrouting', ...masquerade]);
    const cs = await start();
    expect(ownRestores(cs)).toHaveLength(1);
    await execa('iptables', ['-w', '-t', 'nat', '-C', 'warden-postrouting', ...masquerade]);
    expect(ownRestores(await start())).toEqual([]);
  });

  it('a changed deny list: one restore, the old rule gone and the new one in', async () => {
    const list = async () => (await execa('iptables', ['-w', '-S', 'warden-default'])).stdout.split('\n').filter((l) => l.includes(` -s ${pool} `));
    host.network.denyNetworks = ['10.8.0.0/16'];
    try {
      expect(ownRestores(await start())).toHaveLength(1);
      expect(await list()).toEqual([`-A warden-default -s ${pool} -d 10.8.0.0/16 -m comment --comment "warden:${tag}" -j DROP`]);
    } finally {
      host.network.denyNetworks = ['10.9.0.0/16'];
    }
    expect(ownRestores(await start())).toHaveLength(1);
    expect(await list()).toEqual([`-A warden-default -s ${pool} -d 10.9.0.0/16 -m comment --comment "warden:${tag}" -j DROP`]);
  });

  it('a changed reserve: the next start sets the containers\' limit again, and only that', async () => {
    host.depotReserve = 100 * MiB;
    const want = await share(host.depotReserve);
    expect(String(want)).not.toBe(await sysfsLimit());
    expect(lines(await start(), 'btrfs')).toEqual([`btrfs qgroup limit ${want} 1/1 ${depot}`]);
    expect(await sysfsLimit()).toBe(String(want));
    expect(lines(await start(), 'btrfs')).toEqual([]);
  });

  it('quota turned off by hand: the next start turns it on, makes and limits the qgroup', async () => {
    await execa('btrfs', ['quota', 'disable', depot]);
    const want = await share(host.depotReserve ?? null);
    expect(lines(await start(), 'btrfs')).toEqual([`btrfs quota enable ${depot}`, `btrfs qgroup create 1/1 ${depot}`, `btrfs qgroup limit ${want} 1/1 ${depot}`]);
    expect(await sysfsLimit()).toBe(String(want));
    expect(lines(await start(), 'btrfs')).toEqual([]);
  });
});

// The base chains are shared by every pool on a host: broken by hand only where nothing else uses them.
describe('the network setup in a private network namespace', () => {
  let steps: Record<string, Step>;
  const poolNs = '10.243.0.0/22';

  beforeAll(async () => {
    const { stdout } = await execa('unshare', [
      '-n', join(ROOT, 'node_modules/.bin/node'), join(ROOT, 'test/support/linux/host-rules-private.ts'), poolNs, '10.245.240.0/24',
    ]);
    steps = JSON.parse(stdout) as Record<string, Step>;
  }, 60_000);

  const restoreOnly = ['iptables-save', 'iptables-restore -w 10 --noflush'];

  it('set up: one restore; again: one iptables-save and no restore', () => {
    expect(steps.first!.commands).toEqual(restoreOnly);
    expect(steps.again!.commands).toEqual(['iptables-save']);
    expect(steps.again!.rules).toEqual(steps.first!.rules);
  });

  it('a jump, a whole chain, a rule of warden-forward or of the pool deleted by hand: one restore puts back the same rules', () => {
    for (const name of ['jumpDeleted', 'chainDeleted', 'forwardChanged', 'poolRuleDeleted']) {
      expect(steps[name]!.commands, name).toEqual(restoreOnly);
      expect(steps[name]!.rules, name).toEqual(steps.first!.rules);
    }
    expect(steps.chainDeleted!.restores[0]).toContain('-N warden-postrouting');
  });

  it('a changed deny list: one restore to change it, none the next time, one to change it back', () => {
    expect(steps.denyChanged!.commands).toEqual(restoreOnly);
    expect(steps.denyChanged!.rules.filter((l) => l.includes(' -j DROP') && l.includes(poolNs))).toEqual([
      `-A warden-default -s ${poolNs} -d 10.8.0.0/16 -m comment --comment "warden:f00d0001" -j DROP`,
    ]);
    expect(steps.denyChangedAgain!.commands).toEqual(['iptables-save']);
    expect(steps.denyBack!.commands).toEqual(restoreOnly);
    expect(steps.denyBack!.rules).toEqual(steps.first!.rules);
  });

  it('another config\'s stale rules: deleted in one restore with nothing else, and the tag reported', () => {
    expect(steps.staleLeft!.commands).toEqual(restoreOnly);
    expect(steps.staleLeft!.stale).toEqual(['dead0001']);
    expect(steps.staleLeft!.restores[0]!.split('\n').filter((l) => l && !l.startsWith('*') && l !== 'COMMIT')).toEqual([
      '-D warden-input -s 10.245.240.0/24 -m comment --comment "warden:dead0001" -j REJECT --reject-with icmp-host-prohibited',
      '-D warden-postrouting -s 10.245.240.0/24 ! -o w-+ -m comment --comment "warden:dead0001" -j MASQUERADE',
    ]);
    expect(steps.staleLeft!.rules).toEqual(steps.first!.rules);
    expect(steps.afterStale!.commands).toEqual(['iptables-save']);
    expect(steps.afterStale!.stale).toEqual([]);
  });
});
