// stop (TERM, then KILL after the timeout; kill: KILL at once) and killJob (root).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestHost, type TestHost } from '../support/linux/linux-host.ts';
import { waitFor } from '../support/wait.ts';
import { linuxTasks } from '../../src/backends/linux/tasks.ts';
import { containerState } from '../../src/backends/linux/runtime/runc.ts';
import type { ContainerRecord } from '../../src/model/records.ts';
import type { LinuxFacts } from '../../src/backends/linux/container/facts.ts';
import { jobLeader, statAll } from '../../src/backends/linux/jobs/leader.ts';
import { readJobPids } from '../../src/jobs/job-files.ts';
import { readPids } from '../../src/backends/linux/cgroups/cgroups.ts';

let t: TestHost;

beforeAll(async () => {
  t = await makeTestHost();
});

afterAll(async () => {
  await t?.cleanup();
});

async function processCount(c: ContainerRecord): Promise<number> {
  const f = c.backend as unknown as LinuxFacts;
  return (await readFile(join(f.cgroups.pids!, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean).length;
}

/** The job's process in the container, as kill finds it: undefined until runc started it. */
async function leaderOf(c: ContainerRecord, dir: string): Promise<number | undefined> {
  const pids = await readJobPids(dir);
  const f = c.backend as unknown as LinuxFacts;
  return pids && jobLeader(pids, await statAll(await readPids(f.cgroups)));
}

const until = (cond: () => Promise<boolean>) => waitFor('the job processes to be up', cond, 30_000, 20);

it('sends TERM, then KILL to what ignores it, and keeps the init', async () => {
  const c = await t.create();
  const polite = t.job(c, 'sleep 30');
  const stubborn = t.job(c, 'trap "" TERM; touch /tmp/trapped; while :; do sleep 0.05; done');
  // Its shell is counted before it has run the trap: wait for the trap's mark, or a
  // TERM that comes first ends it with 143.
  await until(async () => (await t.job(c, 'test -e /tmp/trapped')).exitCode === 0);
  await until(async () => (await processCount(c)) >= 6);
  const t0 = Date.now();
  await linuxTasks['linux.stop']({ c, kill: false, timeoutMs: 600 });
  const ms = Date.now() - t0;
  expect((await polite).exitCode).toBe(143);
  expect((await stubborn).exitCode).toBe(137);
  // The KILL waited out the timeout (a lower bound: never flaky); that it came at all
  // is the stubborn job's 137, not a duration.
  expect(ms).toBeGreaterThanOrEqual(550);
  const f = c.backend as unknown as LinuxFacts;
  const state = await containerState(f.runtime, c.id);
  expect(state?.status).toBe('running');
  expect(state?.pid).toBe(f.initPid);
  await t.destroy(c);
});

it('kills at once with kill', async () => {
  const c = await t.create();
  // A TERM would leave its mark in the output (and the default timeout then KILLs):
  // at once means no TERM first.
  const job = t.job(c, 'trap "echo termed" TERM; while :; do sleep 0.05; done');
  await until(async () => (await processCount(c)) >= 4);
  await linuxTasks['linux.stop']({ c, kill: true });
  const r = await job;
  expect(r.exitCode).toBe(137);
  expect(r.stdout).toBe('');
  await t.destroy(c);
});

it('kills one job and all its processes, leaving the others', async () => {
  const c = await t.create();
  const dir = join(c.path, 'jobs', 'victim');
  const victim = t.job(c, 'sleep 30 & sleep 31 & wait', { dir });
  // Held until released below, so it is surely still running when the victim dies.
  const other = t.job(c, 'while [ ! -e /tmp/go ]; do sleep 0.05; done; echo survived');
  await until(async () => (await leaderOf(c, dir)) !== undefined);
  await until(async () => (await processCount(c)) >= 7);
  await linuxTasks['linux.killJob']({ c, job: { id: 1, dir } });
  expect((await victim).exitCode).toBe(137);
  await t.job(c, 'touch /tmp/go');
  expect((await other).stdout).toBe('survived');
  const r = await t.job(c, 'ps -o comm= | grep -c "^sleep" || true');
  expect(Number(r.stdout)).toBe(1); // only the init's own sleep
  await t.destroy(c);
});

it('kills a job whose supervisor records its pids only after the kill began (a job killed as it starts)', async () => {
  const c = await t.create();
  const dir = join(c.path, 'jobs', 'early');
  const victim = t.job(c, 'sleep 30 & wait', { dir });
  const pidFile = join(dir, 'pid');
  await until(async () => (await leaderOf(c, dir)) !== undefined);
  await until(async () => (await processCount(c)) >= 4);
  // As when the output limit is hit before the supervisor has written the job's
  // pids: they are not there when the kill starts, and come a moment later.
  await rename(pidFile, `${pidFile}.later`);
  const killing = linuxTasks['linux.killJob']({ c, job: { id: 1, dir } });
  await new Promise((r) => setTimeout(r, 300));
  await rename(`${pidFile}.later`, pidFile);
  await killing;
  expect((await victim).exitCode).toBe(137);
  await t.destroy(c);
});
