// Job start (src/jobs/job-tasks.ts, job.start): the supervisor is started by the
// thread's spawner process; the calling thread forks nothing else (a fork of a
// worker copies the daemon's page tables and blocks the thread).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const forked: string[] = [];
vi.mock('node:child_process', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:child_process')>();
  const spawn = ((file: string, ...rest: unknown[]) => {
    forked.push(file);
    return (actual.spawn as (...a: unknown[]) => unknown)(file, ...rest);
  }) as typeof actual.spawn;
  return { ...actual, spawn, default: { ...actual, spawn } };
});

const { jobTasks } = await import('../../src/jobs/job-tasks.ts');

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function waitForFile(path: string): Promise<string> {
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    if (text.endsWith('\n')) return text;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('job.start', () => {
  it('starts the job supervisor through the spawner: only the spawner process is forked from this thread', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'job-start-'));
    dirs.push(dir);
    await jobTasks['job.start']({
      dir,
      script: 'echo "out $WARDEN_TEST_VAR"; echo err >&2; exit 3',
      argv: ['/bin/bash'],
      env: { PATH: '/usr/bin:/bin', WARDEN_TEST_VAR: 'from-the-job-env' },
      cwd: dir,
      discardOutput: false,
    });
    expect(await waitForFile(join(dir, 'exit_status'))).toBe('3\n');
    expect(await readFile(join(dir, 'stdout'), 'utf8')).toBe('out from-the-job-env\n');
    expect(await readFile(join(dir, 'stderr'), 'utf8')).toBe('err\n');
    expect(forked.filter((f) => f !== process.execPath)).toEqual([]);
  });

  it('joins the cgroups given before the supervisor starts (creating a missing group), and keeps their names out of the job', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'job-start-'));
    dirs.push(dir);
    // Stand-ins for cgroup.procs files: one whose group exists, one whose group does not yet.
    const existing = join(dir, 'group-a', 'cgroup.procs');
    const missing = join(dir, 'group-b', 'cgroup.procs');
    await mkdir(join(dir, 'group-a'));
    await jobTasks['job.start']({
      dir,
      script: 'echo "${WARDEN_JOB_CGROUP_PROCS-unset}"',
      argv: ['/bin/bash'],
      env: { PATH: '/usr/bin:/bin' },
      cwd: dir,
      discardOutput: false,
      cgroupProcs: [existing, missing],
    });
    expect(await waitForFile(join(dir, 'exit_status'))).toBe('0\n');
    expect(await readFile(join(dir, 'stdout'), 'utf8')).toBe('unset\n');
    const [pidA, pidB] = [await readFile(existing, 'utf8'), await readFile(missing, 'utf8')];
    expect(pidA).toMatch(/^\d+\n$/);
    expect(pidB).toBe(pidA);
  });

  it('fails when the start script cannot run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'job-start-'));
    dirs.push(dir);
    const start = jobTasks['job.start']({ dir, script: 'true', argv: ['/bin/true'], env: {}, cwd: join(dir, 'missing'), discardOutput: false });
    await expect(start).rejects.toThrow(/cannot start job supervisor|job supervisor failed to start/);
  });
});
