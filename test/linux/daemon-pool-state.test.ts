// Through the real daemon (Linux backend, root): pool-level host state. A drain keeps
// what the next daemon on the same config needs (its containers live on) and nothing
// else; tagged pool rules of a config nobody uses any more go at the next start; and
// `warden-server --cleanup --config FILE` removes everything of one config.
// Pools 10.247.115.0/24 to 10.247.118.0/24; ports 38300-38699; uids 55300-55663.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { LinuxDaemon, processAlive } from '../support/linux/linux-daemon.ts';
import { parentCgroups } from '../../src/backends/linux/cgroups/cgroups.ts';
import { mountAt } from '../../src/backends/linux/disk/depot.ts';
import { readDaemonRecord, tagOf } from '../../src/backends/linux/host/daemon-records.ts';
import { SERVER_BIN } from '../support/daemon.ts';

const started: LinuxDaemon[] = [];
afterAll(async () => {
  const problems: string[] = [];
  for (const d of started) problems.push(...(await d.cleanup()));
  expect(problems).toEqual([]);
});

async function start(pool: string, portStart: number, uidStart: number): Promise<LinuxDaemon> {
  const d = await LinuxDaemon.start({ pool, portStart, uidStart });
  started.push(d);
  return d;
}

/** The daemon's iptables rules (filter and nat, warden-* chains; not the tests' egress guard) for the pool. */
async function poolRules(pool: string): Promise<string[]> {
  const out: string[] = [];
  for (const table of ['filter', 'nat']) {
    const r = await execa('iptables', ['-w', '-t', table, '-S']);
    out.push(...r.stdout.split('\n').filter((l) => l.startsWith('-A warden-') && l.includes(` -s ${pool} `)));
  }
  return out;
}

/** The pool-level state of d's config on the host, as readable names. */
async function poolState(d: LinuxDaemon): Promise<string[]> {
  const s = d.settings;
  const found: string[] = (await poolRules(d.pool)).map((r) => `rule ${r}`);
  if (await stat(s.runtimeRoot).catch(() => undefined)) found.push(`runtime root ${s.runtimeRoot}`);
  for (const p of await parentCgroups(s.cgroupParent)) if (await stat(p).catch(() => undefined)) found.push(`cgroup parent ${p}`);
  if (await mountAt(s.depot)) found.push(`depot mount ${s.depot}`);
  if (await readDaemonRecord(tagOf(s))) found.push(`daemon record ${tagOf(s)}`);
  return found;
}

describe('a drain', () => {
  it('keeps what its running containers need, and leaves nothing once no container is left', async () => {
    const d = await start('10.247.115.0/24', 38300, 55300);
    let c = await d.client();
    const { handle } = await d.create(c);
    const rules = await poolRules(d.pool);
    expect(rules.length).toBeGreaterThan(0);
    // Tagged with the depot tag, so a later start can tell whose they are.
    for (const r of rules) expect(r).toContain(`warden:${tagOf(d.settings)}`);

    expect(await d.daemon.signal('SIGTERM')).toBe(0);
    const kept = await poolState(d);
    expect(kept).toEqual(expect.arrayContaining([`runtime root ${d.settings.runtimeRoot}`, `depot mount ${d.settings.depot}`]));
    expect(kept.filter((k) => k.startsWith('rule ')).length).toBe(rules.length);

    await d.restart();
    c = await d.client();
    expect((await d.run(c, handle, 'echo still here')).stdout).toBe('still here\n');
    await c.destroy({ handle });
    await d.closeClients();
    expect(await d.daemon.signal('SIGTERM')).toBe(0);
    expect(await poolState(d)).toEqual([]);
  }, 240_000);
});

describe('a start', () => {
  it('removes the tagged pool rules of a config nobody uses any more, and keeps those of a killed daemon whose containers live', async () => {
    const gone = await start('10.247.116.0/24', 38400, 55400);
    const other = await start('10.247.117.0/24', 38500, 55500);
    let c = await gone.client();
    const { handle } = await gone.create(c);
    const goneRules = await poolRules(gone.pool);
    expect(goneRules.length).toBeGreaterThan(0);

    // Killed while a container runs: the container still needs its pool's rules.
    await gone.daemon.kill9();
    expect(await other.daemon.signal('SIGTERM')).toBe(0);
    await other.restart();
    expect(await poolRules(gone.pool)).toEqual(goneRules);

    // Its container destroyed, then killed again: a config nobody uses.
    await gone.restart();
    c = await gone.client();
    await c.destroy({ handle });
    await gone.closeClients();
    await gone.daemon.kill9();
    expect(await poolRules(gone.pool)).toEqual(goneRules);
    expect(await other.daemon.signal('SIGTERM')).toBe(0);
    await other.restart();
    expect(await poolRules(gone.pool)).toEqual([]);
    expect(await readDaemonRecord(tagOf(gone.settings))).toBeUndefined();
    // The live daemon's own rules are there.
    expect((await poolRules(other.pool)).length).toBeGreaterThan(0);
  }, 300_000);
});

describe('warden-server --cleanup --config FILE', () => {
  it('refuses while the daemon runs or containers exist; with --destroy-containers removes everything of the config', async () => {
    const d = started.find((x) => x.pool === '10.247.115.0/24')!;
    if (!d.running) await d.restart();
    const c = await d.client();
    const { handle, info } = await d.create(c);
    const initPid = await d.initPid(info.container_path!);
    const cleanup = (...extra: string[]) => execa(SERVER_BIN, ['--cleanup', '--config', d.daemon.configPath, ...extra], { reject: false });

    const whileRunning = await cleanup('--destroy-containers');
    expect(whileRunning.exitCode).toBe(1);
    expect(whileRunning.stderr).toMatch(/serves this config .*: stop it first/);

    await d.closeClients();
    await d.daemon.kill9();
    const withContainers = await cleanup();
    expect(withContainers.exitCode).toBe(1);
    expect(withContainers.stderr).toMatch(/1 container\(s\) of this config still exist.*--destroy-containers/);
    expect(await processAlive(initPid)).toBe(true);

    const confirmed = await cleanup('--destroy-containers');
    expect(confirmed.stderr).toBe('');
    expect(confirmed.exitCode).toBe(0);
    expect(confirmed.stdout).toContain('destroyed 1 container(s)');
    expect(await processAlive(initPid)).toBe(false);
    expect(await poolState(d)).toEqual([]);
    expect(await d.containerProcesses()).toEqual([]);
    expect(handle).toBeTruthy();
  }, 240_000);
});

describe('a create cut by a SIGKILL', () => {
  it('leaves a runtime state folder without state.json that the next start removes (found by the chaos scenario)', async () => {
    const d = await start('10.247.118.0/24', 38600, 55600);
    await d.daemon.kill9();
    // What `runc run` leaves when the daemon dies before runc wrote its state.
    const leftover = join(d.settings.runtimeRoot, 'd27cftjltig');
    await mkdir(leftover, { recursive: true });
    await d.restart();
    expect(await stat(leftover).catch(() => undefined)).toBeUndefined();
    // And so the drain of a daemon with no container removes the runtime root.
    await d.closeClients();
    expect(await d.daemon.signal('SIGTERM')).toBe(0);
    expect(await poolState(d)).toEqual([]);
  }, 120_000);
});
