// Restart fidelity with the Linux backend, through the real daemon: a job spawned
// just before a drain is still running after the next start; a grace time armed by
// the recovery is cancelled by a client that connects; snapshot.json has the
// original's shape; a container folder moved in the depot is recovered under its
// new path (Info, destroy; runc keeps the old rootfs path, so jobs do not start there). Nothing is left on the host afterwards.
// Pool 10.247.64.0/24, host ports 35000-35099, uids 49000-49063.
import { renameSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinuxDaemon, processAlive, sleep } from '../support/linux/linux-daemon.ts';

let d: LinuxDaemon;

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.247.64.0/24', portStart: 35000, uidStart: 49000 });
}, 120_000);

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
}, 300_000);

async function drainAndStart(): Promise<void> {
  expect(await d.daemon.drain()).toBe(0);
  await d.restart();
}

describe('restart (Linux)', () => {
  it('a 2-second job spawned just before a drain is still running when linked after the next start (4 containers)', async () => {
    const c = await d.client();
    const handles: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { handle } = await d.create(c);
      await c.spawn({ handle, script: 'sleep 600' });
      handles.push(handle);
    }
    const { job_id } = await c.spawn({ handle: handles[0]!, script: 'sleep 2; echo finished' });
    await drainAndStart();
    const k = await d.client();
    // On failure, say where the time went (the daemon logs its drain and start phases).
    const phases = d.daemon.log().split('\n').filter((l) => /drained, exiting|recovery done|warden started/.test(l)).slice(-3).join('\n');
    expect((await k.info({ handle: handles[0]! })).job_ids, phases).toContain(job_id);
    const r = await k.link({ handle: handles[0]!, job_id });
    expect(String(r.stdout)).toBe('finished\n');
    for (const handle of handles) await k.destroy({ handle });
  }, 120_000);

  it('grace time: a client that connects after the restart holds the container; its Info 1.1 s later finds it', async () => {
    const c = await d.client();
    const { handle } = await d.create(c, { grace_time: 1 });
    await drainAndStart();
    const k = await d.client();
    await sleep(1100);
    expect((await k.info({ handle })).state).toBe('active');
    await k.destroy({ handle });
  }, 120_000);

  it("snapshot.json has the original's shape, with the backend's facts beside", async () => {
    const c = await d.client();
    const { handle, id, info } = await d.create(c);
    const { host_port } = await c.netIn({ handle, container_port: 8080 });
    await c.limitMemory({ handle, limit_in_bytes: 64 * 1024 * 1024 });
    await c.limitCpu({ handle, limit_in_shares: 256 });
    const snap = JSON.parse(readFileSync(join(info.container_path!, 'snapshot.json'), 'utf8'));
    expect(snap.state).toBe('active');
    expect(snap.resources).toMatchObject({
      handle, container_id: id, network: expect.stringMatching(/^10\.247\.64\.\d+$/), ports: [host_port], net_in: [[host_port, 8080]],
      limit_memory: 64 * 1024 * 1024, limit_cpu: 256, uid: expect.any(Number),
    });
    expect(snap.resources.backend.initPid).toBeGreaterThan(0);
    await c.destroy({ handle });
  }, 120_000);

  it('a container folder moved to another name in the depot is recovered under its new path, and destroyed whole', async () => {
    const c = await d.client();
    const { handle, info } = await d.create(c);
    const path = info.container_path!;
    expect(await d.daemon.drain()).toBe(0);
    renameSync(path, `${path}__`);
    await d.restart();
    const k = await d.client();
    const after = await k.info({ handle });
    expect(after.container_path).toBe(`${path}__`);
    expect(await processAlive(await d.initPid(`${path}__`))).toBe(true);
    // (New jobs there do not start: runc keeps the rootfs path in its own state.)
    await k.destroy({ handle });
    expect(existsSync(`${path}__`)).toBe(false);
  }, 120_000);
});
