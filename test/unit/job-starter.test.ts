// The spawner's job starter (job-starter.sh): supervisors forked by one shell the
// spawner keeps, instead of a process start each. What a supervisor started so
// must match one started the usual way: its environment, its files, its answer;
// orders it cannot take go the usual way; a starter retires after its quota of
// orders and a dead one is replaced.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobTasks, type StartJobArgs } from '../../src/jobs/job-tasks.ts';
import { runHost } from '../../src/host/run.ts';
import { spawnHost } from '../../src/host/spawner.ts';
import { isSameProcess, procStat } from '../../src/host/procfs.ts';
import { waitFor } from '../support/wait.ts';
import { pidAlive } from '../support/pids.ts';

const SUPERVISOR = join(import.meta.dirname, '../../src/jobs/job-supervisor.sh');
const STARTER = join(import.meta.dirname, '../../src/jobs/job-starter.sh');
const PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

let base: string;
let n = 0;
/** This thread's spawner (the parent of what it starts). */
let spawnerPid: number;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'warden-starter-'));
  spawnerPid = Number((await runHost('/bin/sh', ['-c', 'echo $PPID'], { context: 'test' })).stdout);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** Job folders of this test: a job still running when it ends (it failed midway) is killed. */
const started: string[] = [];
afterEach(async () => {
  for (const dir of started.splice(0)) {
    const [pid, startTime] = (await readFile(join(dir, 'pid'), 'utf8').catch(() => '')).split(' ').map(Number);
    // The same process still (a pid alone may have been reused): its group goes.
    if (!pid || !startTime || !(await isSameProcess(pid, startTime))) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // ended just now
    }
  }
});

async function jobDir(): Promise<string> {
  const dir = join(base, String(++n));
  await mkdir(dir);
  started.push(dir);
  return dir;
}

/** Starts a job as the daemon's job.start task does (through the starter when the order allows). */
async function start(script: string, env: Record<string, string> = { PATH }, argv = ['/bin/bash']): Promise<string> {
  const dir = await jobDir();
  const a: StartJobArgs = { dir, script, argv, env, cwd: dir, discardOutput: false };
  await jobTasks['job.start'](a);
  return dir;
}

async function exitStatus(dir: string): Promise<number> {
  const file = join(dir, 'exit_status');
  await waitFor('the job to end', async () => (await readFile(file, 'utf8').catch(() => '')) !== '', 10_000, 10);
  return Number(await readFile(file, 'utf8'));
}

/** pid's parent, or undefined once it has ended. */
async function ppidOf(pid: number): Promise<number | undefined> {
  return (await procStat(pid))?.ppid;
}

function cmdline(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
}

/** The spawner's live job starters. */
async function starters(): Promise<number[]> {
  const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number);
  const parents = await Promise.all(pids.map(ppidOf));
  return pids.filter((pid, i) => {
    try {
      return parents[i] === spawnerPid && cmdline(pid).includes('job-starter.sh');
    } catch {
      return false;
    }
  });
}

function supervisorPid(dir: string): number {
  return Number(readFileSync(join(dir, 'pid'), 'utf8').split(' ')[2]);
}

describe('the job starter', () => {
  it('starts a supervisor that records the job as the start script does', async () => {
    const dir = await start('echo out; echo err >&2; exit 3');
    expect(await exitStatus(dir)).toBe(3);
    expect(await readFile(join(dir, 'stdout'), 'utf8')).toBe('out\n');
    expect(await readFile(join(dir, 'stderr'), 'utf8')).toBe('err\n');
    const [starter] = await starters();
    expect(starter).toBeDefined();
    // A signal death is 255, an exit 137 is its own, as with the start script.
    expect(await exitStatus(await start('kill -9 $$'))).toBe(255);
    expect(await exitStatus(await start('exit 137'))).toBe(137);
  });

  it('gives the job the order environment only, as a supervisor started with it has', async () => {
    const env = { PATH, WARDEN_JOB_FD3: 'fd3file' };
    const viaStarter = await start('env | sort; ls -l /proc/self/fd/3 >/dev/null 2>&1 && echo fd3', env, ['/bin/bash']);
    // FOO makes the order one the starter does not take: the usual start script runs it.
    const usual = await start('env | sort; ls -l /proc/self/fd/3 >/dev/null 2>&1 && echo fd3', { ...env, FOO: 'x' }, ['/bin/bash']);
    expect(await exitStatus(viaStarter)).toBe(0);
    expect(await exitStatus(usual)).toBe(0);
    const lines = async (dir: string) =>
      (await readFile(join(dir, 'stdout'), 'utf8')).split('\n').filter((l) => !l.startsWith('FOO=') && !l.startsWith('PWD='));
    expect(await lines(viaStarter)).toEqual(await lines(usual));
    expect(await readFile(join(viaStarter, 'stdout'), 'utf8')).toContain(`PWD=${viaStarter}\n`);
    expect(await readFile(join(viaStarter, 'stdout'), 'utf8')).not.toMatch(/OLDPWD|WARDEN_/);
    expect(await readFile(join(viaStarter, 'stdout'), 'utf8')).toContain('fd3');
  });

  it('leaves SIGPIPE at its default for the job: a writer to a closed pipe dies of it', async () => {
    const dir = await start('yes | head -n 1 > /dev/null; echo "${PIPESTATUS[0]}"');
    expect(await exitStatus(dir)).toBe(0);
    expect(await readFile(join(dir, 'stdout'), 'utf8')).toBe('141\n');
  });

  it('passes fields as they are: newlines, spaces, control bytes; one holding its field end goes the usual way', async () => {
    const value = ' two\nlines\x02 and  spaces ';
    const held = async (v: string) => {
      const dir = await start('printf %s "$WARDEN_X"; sleep 30', { PATH, WARDEN_X: v });
      await waitFor('the pid file', async () => (await readFile(join(dir, 'pid'), 'utf8').catch(() => '')) !== '');
      const viaStarter = (await starters()).includes((await ppidOf(supervisorPid(dir)))!);
      await waitFor('the output', async () => (await readFile(join(dir, 'stdout'), 'utf8')) === v);
      process.kill(-Number(readFileSync(join(dir, 'pid'), 'utf8').split(' ')[0]), 'SIGKILL');
      await exitStatus(dir);
      return viaStarter;
    };
    expect(await held(value)).toBe(true);
    expect(await held('a\x01b')).toBe(false);
  });

  it('runs the supervisor as a child of the starter, out of the spawner, with the job in a process group of its own', async () => {
    const dir = await start('sleep 30');
    await waitFor('the pid file', async () => (await readFile(join(dir, 'pid'), 'utf8').catch(() => '')) !== '');
    const sup = supervisorPid(dir);
    const job = Number(readFileSync(join(dir, 'pid'), 'utf8').split(' ')[0]);
    expect(await starters()).toContain(await ppidOf(sup));
    expect((await procStat(job))?.pgrp).toBe(job);
    process.kill(-job, 'SIGKILL');
    expect(await exitStatus(dir)).toBe(255);
  });

  it('refuses an order for another supervisor script, and one that cannot enter its directory fails', async () => {
    const dir = await jobDir();
    const other = await spawnHost({
      file: '/bin/bash', args: ['/bin/true', dir, '0', '--', '/bin/true'], cwd: dir, env: { PATH },
      stdout: 'ignore', stderr: 'ignore', timeoutMs: 10_000, killGraceMs: 1000, maxOutputBytes: 0, starter: STARTER,
    });
    expect(other.exitCode).toBe(127);
    const gone = await spawnHost({
      file: '/bin/bash', args: [SUPERVISOR, join(base, 'nowhere'), '0', '--', '/bin/true'], cwd: join(base, 'nowhere'), env: { PATH },
      stdout: 'ignore', stderr: 'ignore', timeoutMs: 10_000, killGraceMs: 1000, maxOutputBytes: 0, starter: STARTER,
    });
    expect(gone.exitCode).toBe(1);
  });

  it('a killed starter is replaced at the next order', async () => {
    await exitStatus(await start('true'));
    const [old] = await starters();
    expect(old).toBeDefined();
    process.kill(old!, 'SIGKILL');
    await waitFor('the starter to end', async () => !pidAlive(old!));
    expect(await exitStatus(await start('exit 5'))).toBe(5);
    const now = await starters();
    expect(now).not.toContain(old);
    expect(now).toHaveLength(1);
  });

  it('hands orders to a fresh starter after its quota; the old one ends once its own are answered', { timeout: 60_000 }, async () => {
    await exitStatus(await start('true'));
    const first = await starters();
    expect(first).toHaveLength(1);
    // Quota 256: enough orders that the current starter surely retires, 16 at a time.
    const dirs: string[] = [];
    for (let i = 0; i < 17; i++) dirs.push(...(await Promise.all(Array.from({ length: 16 }, () => start('true')))));
    for (const dir of dirs) expect(await exitStatus(dir)).toBe(0);
    await waitFor('the retired starter to end', async () => !pidAlive(first[0]!));
    expect(await starters()).toHaveLength(1);
  });
});
