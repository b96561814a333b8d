// The Linux test harness: a daemon whose start fails is killed, and what it made on
// the host (cgroup parents, its own cgroup, runc root, depot mount and loop device,
// pool rules, the egress guard) is removed before the error reaches the test.
// Pool 10.245.240.0/24, host ports 26900-26999, uids 60000-60063.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { parentCgroups } from '../../src/backends/linux/cgroups/cgroups.ts';
import { LinuxDaemon, LinuxDaemonStartError } from '../support/linux/linux-daemon.ts';

const POOL = '10.245.240.0/24';
const elsewhere = join(tmpdir(), `warden-elsewhere-linux-${process.pid}.sock`);

afterAll(() => rmSync(elsewhere, { force: true }));

function processesNaming(s: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      if (/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(s)) out.push(Number(pid));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

describe('a Linux daemon that does not start', () => {
  it('is killed and leaves nothing on the host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-failed-start-'));
    // It sets up the host and listens where the harness does not look: it runs, but
    // never answers. Long enough for it to have made its cgroups, runc root and mount.
    const err = await LinuxDaemon.start({
      pool: POOL, portStart: 26900, uidStart: 60000, dir,
      server: { unix_domain_path: elsewhere }, startTimeoutMs: 20_000,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LinuxDaemonStartError);
    const s = (err as LinuxDaemonStartError).settings;
    expect((err as Error).message).toMatch(/did not come up within 20000 ms \(killed\)/);
    // The daemon got far enough to listen (so it had set up the host).
    expect((err as Error).message).toContain('"msg":"warden started"');

    const left: string[] = [];
    for (const pid of processesNaming(dir)) left.push(`process ${pid}`);
    for (const p of [...(await parentCgroups(s.cgroupParent)), s.runtimeRoot, dir]) {
      if (await stat(p).catch(() => undefined)) left.push(p);
    }
    for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) if (line.includes(dir)) left.push(`mount ${line}`);
    const loops = await execa('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'], { reject: false });
    for (const line of loops.stdout.split('\n')) if (line.includes(dir)) left.push(`loop ${line.trim()}`);
    for (const table of ['filter', 'nat', 'mangle']) {
      const out = await execa('iptables', ['-w', '-t', table, '-S'], { reject: false });
      for (const line of out.stdout.split('\n')) if (line.includes(POOL)) left.push(`iptables ${table}: ${line}`);
    }
    expect(left).toEqual([]);
  }, 120_000);
});
