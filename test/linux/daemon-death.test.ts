// How jobs and containers die, through the real daemon (Linux backend, root), as
// the original Warden reported it: a job ended by a signal reports 255 (`exit 137`
// stays 137); the output limit kills with 255 and the original's event; an OOM
// kill stops the container (`out of memory`) before the job's Run is answered,
// also after a drain or a kill -9 of the daemon and for OOMs while it was down;
// a container whose init was killed is stopped with an event and refuses work
// with a clear error. Pool 10.247.32.0/24, ports 33000-33099, uids 45000-45063.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LinuxDaemon, sleep, waitFor } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';

const MiB = 1024 * 1024;
const OUTPUT_LIMIT = 4096;
let d: LinuxDaemon;
let client: WardenClient;

beforeAll(async () => {
  d = await LinuxDaemon.start({
    pool: '10.247.32.0/24',
    portStart: 33000,
    uidStart: 45000,
    server: { job_output_limit: OUTPUT_LIMIT },
  });
  client = await d.client();
});

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
});

// The original's spec grows a string in perl by 1 MiB twenty times; the test rootfs
// has no perl, so bash does the same in a child (the job's own bash survives the
// OOM kill of its child and exits with 137).
const HOG = `bash -c 'for ((i = 0; i < 20; i++)); do foo+=$(head -c ${MiB} /dev/zero | tr "\\0" A); done'`;

async function oomKills(id: string): Promise<number> {
  const cg = await d.cgroups(id);
  const m = /oom_kill (\d+)/.exec(await readFile(join(cg.memory!, 'memory.oom_control'), 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** What a job wrote so far, read from its folder on the host (a Link would forget the job). */
async function jobOutput(handle: string, job: number): Promise<string> {
  const info = await client.info({ handle });
  return readFile(join(info.container_path!, 'jobs', String(job), 'stdout'), 'utf8').catch(() => '');
}

/** Run the hog under a 10 MiB limit: Run answers 255, and Info 10 ms later says stopped, out of memory. */
async function expectOomStops(c: WardenClient, handle: string): Promise<void> {
  const r = await c.run({ handle, script: HOG });
  expect(r.exit_status).toBe(255);
  await sleep(10);
  const info = await c.info({ handle });
  expect(info.state).toBe('stopped');
  expect(info.events).toContain('out of memory');
}

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => client);

describe('exit status of a job', () => {
  it('is its own when it exits (137 too), 255 when a signal ends it', async () => {
    const { handle } = await d.create(client);
    expect((await d.run(client, handle, 'exit 3')).exit_status).toBe(3);
    expect((await d.run(client, handle, 'exit 137')).exit_status).toBe(137);
    expect((await d.run(client, handle, 'kill -9 $$')).exit_status).toBe(255);
    expect((await d.run(client, handle, 'kill -TERM $$')).exit_status).toBe(255);
    // The job's bash survives a child's death and exits normally with 128+N.
    expect((await d.run(client, handle, "{ bash -c 'kill -9 $$'; } 2>/dev/null; exit $?")).exit_status).toBe(137);
    await client.destroy({ handle });
  });

  it('is 255 after stop with kill; a job that handles TERM reports its own status on a plain stop', async () => {
    const { handle } = await d.create(client);
    const killed = await client.spawn({ handle, script: "trap '' TERM; echo ready; sleep 100" });
    await waitFor('the job to set its trap', async () => (await jobOutput(handle, killed.job_id)).includes('ready'));
    await client.stop({ handle, kill: true });
    expect((await client.link({ handle, job_id: killed.job_id })).exit_status).toBe(255);
    await client.destroy({ handle });

    const { handle: h } = await d.create(client);
    const trapped = await client.spawn({ handle: h, script: "trap 'exit 37' TERM; echo ready; sleep 100 & wait" });
    await waitFor('the job to set its trap', async () => (await jobOutput(h, trapped.job_id)).includes('ready'));
    await client.stop({ handle: h });
    expect((await client.link({ handle: h, job_id: trapped.job_id })).exit_status).toBe(37);
    await client.destroy({ handle: h });
  });

  it('is 255 when the output limit kills the job, with the original event', async () => {
    const { handle } = await d.create(client);
    const r = await client.run({ handle, script: 'yes BLABLABLABLA' });
    expect(r.exit_status).toBe(255);
    expect(Buffer.from(r.stdout ?? []).length).toBeLessThanOrEqual(OUTPUT_LIMIT);
    expect(r.info?.events).toContain('command exceeded maximum output');
    expect((await client.info({ handle })).events).toContain('command exceeded maximum output');
    await client.destroy({ handle });
  });
});

describe('out of memory', () => {
  it('stops the container before Run answers', async () => {
    const { handle, id } = await d.create(client);
    await client.limitMemory({ handle, limit_in_bytes: 10 * MiB });
    await expectOomStops(client, handle);
    expect(await oomKills(id)).toBeGreaterThan(0);
    await expect(client.run({ handle, script: 'true' })).rejects.toThrow(/current state is 'stopped'/);
    await client.destroy({ handle });
  });

  it('the same after a drain and a restart', async () => {
    const { handle } = await d.create(client);
    await client.limitMemory({ handle, limit_in_bytes: 10 * MiB });
    expect(await d.daemon.drain()).toBe(0);
    await d.restart();
    client = await d.client();
    expect((await client.info({ handle })).state).toBe('active');
    await expectOomStops(client, handle);
    await client.destroy({ handle });
  });

  it('the same after a kill -9 of the daemon and a restart', async () => {
    const { handle } = await d.create(client);
    await client.limitMemory({ handle, limit_in_bytes: 10 * MiB });
    await d.daemon.kill9();
    await d.restart();
    client = await d.client();
    expect((await client.info({ handle })).state).toBe('active');
    await expectOomStops(client, handle);
    await client.destroy({ handle });
  });

  it('an OOM while no daemon runs stops the container at the next start', async () => {
    const { handle, id } = await d.create(client);
    await client.limitMemory({ handle, limit_in_bytes: 10 * MiB });
    await client.spawn({ handle, script: `sleep 1; ${HOG}` });
    await d.daemon.kill9();
    await waitFor('the OOM kill while the daemon is down', async () => (await oomKills(id)) > 0, 20_000);
    await d.restart();
    client = await d.client();
    const info = await client.info({ handle });
    expect(info.state).toBe('stopped');
    expect(info.events).toContain('out of memory');
    await client.destroy({ handle });
  });
});

describe('a container whose init is killed', () => {
  it('is stopped with an event, and Run says why instead of a runtime error', async () => {
    const { handle, info } = await d.create(client);
    const initPid = await d.initPid(info.container_path!);
    process.kill(initPid, 'SIGKILL');
    const after = await waitFor('the container to be stopped', async () => {
      const i = await client.info({ handle });
      return i.state === 'stopped' ? i : undefined;
    }, 5_000);
    expect(after.events).toContain('container init exited');
    await expect(client.run({ handle, script: 'true' })).rejects.toThrow(/current state is 'stopped'/);
    await client.destroy({ handle });
    expect(await client.list().then((l) => l.handles ?? [])).not.toContain(handle);
  });
});
