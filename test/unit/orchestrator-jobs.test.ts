// Jobs through the orchestrator (no root): real job supervisors run /bin/bash
// scripts as local processes (the fake backend's launch), the real job tasks run
// in the test's thread. The job watch records a job's exit without any Link;
// Link, Stream and Run answer it; the output limit, the job limit and container
// deaths reported by the backend end up in the container's events.
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { INIT_EXITED_EVENT, JOB_IDS_FILE, OUTPUT_EXCEEDED_EVENT } from '../../src/orchestrator/warden-service.ts';
import { makeHarness, readSnapshot, type Harness } from '../support/orchestrator-harness.ts';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const WAIT = { timeout: 10_000, interval: 10 };

/** Script prefix: wait until the test puts the file `go` in the container's folder ($HOME), then read it into $line. */
const AWAIT_GO = 'until [ -e "$HOME/go" ]; do sleep 0.01; done; read -r line < "$HOME/go"; ';

/** Lets a job waiting with AWAIT_GO go on (written then renamed: the job never reads half of it). */
async function go(handle: string, text = '\n'): Promise<void> {
  const dir = h.service.registry.get(handle).record.path;
  await writeFile(join(dir, 'go.tmp'), text);
  await rename(join(dir, 'go.tmp'), join(dir, 'go'));
}

describe('job watch', () => {
  it('records a job\'s exit (and snapshots it) without any Link; Link then answers it once', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const c = h.service.registry.get(handle);
    // The job waits for the test's go, so that it is seen running first.
    const goDir = await mkdtemp(join(tmpdir(), 'warden-go-'));
    onTestFinished(() => rm(goDir, { recursive: true, force: true }));
    const go = join(goDir, 'go');
    const { job_id } = await h.service.spawn({ handle, script: `while [ ! -e ${go} ]; do sleep 0.01; done; echo out; echo err >&2; exit 7` }, conn.ctx);
    expect((await h.service.infoRequest({ handle }, conn.ctx)).job_ids).toEqual([job_id]);
    await writeFile(go, '');
    await vi.waitFor(async () => {
      const job = (await readSnapshot(c))!.jobs.find((j) => j.id === job_id);
      expect(job).toMatchObject({ state: 'exited', exit_status: 7 });
    }, WAIT);
    expect(c.jobs.get(job_id)!.record).toMatchObject({ state: 'exited', exit_status: 7 });
    expect((await h.service.infoRequest({ handle }, conn.ctx)).job_ids).toEqual([]);

    const r = await h.service.link({ handle, job_id }, conn.ctx);
    expect(r.exit_status).toBe(7);
    expect(r.stdout!.toString()).toBe('out\n');
    expect(r.stderr!.toString()).toBe('err\n');
    expect(r.info?.state).toBe('active');
    // Linked to its end: forgotten, as the original did.
    await expect(h.service.link({ handle, job_id }, conn.ctx)).rejects.toThrow(/^no such job$/);
  });

  it('Link waits for a running job; Stream sends its output in pieces, then the status', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const a = await h.service.spawn({ handle, script: `${AWAIT_GO}echo "$line"; exit 3` }, conn.ctx);
    const linking = h.service.link({ handle, job_id: a.job_id }, conn.ctx);
    // The job waits for this file: Link must be waiting on a live job.
    // Still running: nothing settled yet.
    expect(h.service.registry.get(handle).jobs.get(a.job_id)!.running).toBe(true);
    await go(handle, 'hello\n');
    expect(await linking).toMatchObject({ exit_status: 3 });
    expect((await linking).stdout!.toString()).toBe('hello\n');

    const b = await h.service.spawn({ handle, script: 'echo one; echo two >&2; exit 0' }, conn.ctx);
    const r = await h.service.stream({ handle, job_id: b.job_id }, conn.ctx);
    expect(r.exit_status).toBe(0);
    const byName = (n: string) => conn.streamed.filter((s) => s.name === n).map((s) => Buffer.from(s.data!).toString()).join('');
    expect(byName('stdout')).toBe('one\n');
    expect(byName('stderr')).toBe('two\n');
  });

  it('Run answers the output and status in one', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const r = await h.service.run({ handle, script: 'printf %s "$((6 * 7))"; exit 42' }, conn.ctx);
    expect(r.exit_status).toBe(42);
    expect(r.stdout!.toString()).toBe('42');
  });

  it('a job past job_output_limit whose kill missed is killed again: it never writes on unbounded', async () => {
    h = await makeHarness({ server: 'job_output_limit: 1000' });
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const c = h.service.registry.get(handle);
    // The first kill reaches nothing, as a kill of a job still starting did on Linux.
    h.backend.fail('killJob', { times: 1 });
    const { job_id } = await h.service.spawn({ handle, script: 'head -c 5000 /dev/zero; sleep 60' }, conn.ctx);
    await vi.waitFor(() => expect(c.jobs.get(job_id)!.record.state).toBe('exited'), { timeout: 15_000, interval: 50 });
    expect(h.backend.calls.filter((x) => x.step === 'killJob')).toHaveLength(2);
    expect((await h.service.link({ handle, job_id }, conn.ctx)).exit_status).toBe(255);
  });

  it('a job past job_output_limit is killed: the original\'s event, status 255', async () => {
    h = await makeHarness({ server: 'job_output_limit: 1000' });
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const c = h.service.registry.get(handle);
    const { job_id } = await h.service.spawn({ handle, script: 'head -c 5000 /dev/zero; sleep 60' }, conn.ctx);
    await vi.waitFor(() => expect(c.jobs.get(job_id)!.record.state).toBe('exited'), WAIT);
    expect(c.record.events).toContain(OUTPUT_EXCEEDED_EVENT);
    expect(h.backend.calls.filter((x) => x.step === 'killJob').map((x) => x.detail)).toEqual([{ job: job_id }]);
    const r = await h.service.link({ handle, job_id }, conn.ctx);
    expect(r.exit_status).toBe(255);
    expect(r.stdout!.length).toBe(1000);
  });

  it('refuses a spawn past container_max_jobs, and counts only running jobs', async () => {
    h = await makeHarness({ server: 'container_max_jobs: 1' });
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const c = h.service.registry.get(handle);
    const a = await h.service.spawn({ handle, script: AWAIT_GO }, conn.ctx);
    await expect(h.service.spawn({ handle, script: 'true' }, conn.ctx)).rejects.toThrow(
      'cannot spawn job: the container runs its maximum of 1 jobs (server.container_max_jobs)',
    );
    await go(handle);
    await vi.waitFor(() => expect(c.jobs.get(a.job_id)!.record.state).toBe('exited'), WAIT);
    await h.service.spawn({ handle, script: 'true' }, conn.ctx);
  });

  it('a job that cannot start: "cannot spawn job", and it is not listed', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    h.pool.failNext('job.start', { error: new Error('spawn /bin/bash ENOMEM') });
    await expect(h.service.spawn({ handle, script: 'true' }, conn.ctx)).rejects.toThrow('cannot spawn job');
    expect(h.service.registry.get(handle).record.jobs).toEqual([]);
    expect((await h.service.infoRequest({ handle }, conn.ctx)).job_ids).toEqual([]);
  });

  it('job ids persist their ceiling in the depot before they are handed out', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const { job_id } = await h.service.spawn({ handle, script: 'true' }, conn.ctx);
    const ceiling = Number((await readFile(join(h.depot, JOB_IDS_FILE), 'utf8')).trim());
    expect(ceiling).toBeGreaterThanOrEqual(job_id);
  });

  it('a Link whose connection closes is cancelled; the job runs on and another Link answers it', async () => {
    h = await makeHarness();
    const a = h.connect();
    const b = h.connect();
    const { handle } = await h.service.create({}, a.ctx);
    const { job_id } = await h.service.spawn({ handle, script: `${AWAIT_GO}echo done` }, a.ctx);
    const linking = h.service.link({ handle, job_id }, a.ctx);
    a.close();
    await expect(linking).rejects.toThrow(/^connection closed$/);
    await go(handle);
    const r = await h.service.link({ handle, job_id }, b.ctx);
    expect([r.exit_status, r.stdout!.toString()]).toEqual([0, 'done\n']);
  });
});

describe('destroy while jobs are read', () => {
  it('a Link and a Stream waiting on a job both end, with 255 and the output so far', async () => {
    h = await makeHarness();
    const a = h.connect();
    const b = h.connect();
    const { handle } = await h.service.create({}, a.ctx);
    const { job_id } = await h.service.spawn({ handle, script: 'echo started; sleep 30' }, a.ctx);
    const linking = h.service.link({ handle, job_id }, a.ctx);
    const streaming = h.service.stream({ handle, job_id }, b.ctx);
    await vi.waitFor(() => expect(b.streamed.map((x) => Buffer.from(x.data!).toString())).toEqual(['started\n']), WAIT);
    await h.service.destroy({ handle }, b.ctx);
    const [l, s] = await Promise.all([linking, streaming]);
    // (Their info is the container's when the job ended: active or already destroyed, by timing.)
    expect([l.exit_status, l.stdout!.toString()]).toEqual([255, 'started\n']);
    expect(s.exit_status).toBe(255);
    expect(h.service.list().handles).toEqual([]);
  });
});

describe('container deaths the backend reports', () => {
  it('an init that exited stops the container with an event saying so, and the backend kills the rest', async () => {
    h = await makeHarness();
    h.service.watchContainerEvents();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const c = h.service.registry.get(handle);
    h.backend.emit({ kind: 'init-exited', id: c.id });
    expect(c.state).toBe('stopped');
    expect(c.record.events).toEqual([INIT_EXITED_EVENT]);
    await vi.waitFor(() => expect(h.backend.calls.filter((x) => x.step === 'stop').map((x) => x.detail)).toEqual([{ kill: true }]), WAIT);
    await expect(h.service.spawn({ handle, script: 'true' }, conn.ctx)).rejects.toThrow(
      "Container state must be one of 'active', current state is 'stopped'",
    );
  });

  it('an OOM kill stops the container with the original\'s "out of memory"; a job killed by it reports 255', async () => {
    h = await makeHarness();
    h.service.watchContainerEvents();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const c = h.service.registry.get(handle);
    // The kernel's counter says OOM before the job dies (Spawn may answer after its end).
    h.backend.oomKilledIds.add(c.id);
    const { job_id } = await h.service.spawn({ handle, script: 'kill -KILL $$' }, conn.ctx);
    const r = await h.service.link({ handle, job_id }, conn.ctx);
    expect(r.exit_status).toBe(255);
    expect(c.state).toBe('stopped');
    expect(c.record.events).toEqual(['out of memory']);
    expect(r.info?.events).toEqual(['out of memory']);
  });

  it('an event for a container that is not ours is ignored', async () => {
    h = await makeHarness();
    h.service.watchContainerEvents();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    h.backend.emit({ kind: 'oom', id: 'someoneelse' });
    expect(h.service.registry.get(handle).state).toBe('active');
  });
});
