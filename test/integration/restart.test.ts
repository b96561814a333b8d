// Drains, restarts and crashes of the real daemon on the same depot.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { heldJob, type HeldJob } from '../support/held-job.ts';
import { pidAlive } from '../support/pids.ts';
import { FORGOTTEN_LIST_PREFIX } from '../../src/depot/folder-remover.ts';

const text = (b: unknown) => Buffer.from((b as Uint8Array) ?? []).toString('utf8');
/** A held job's script with `after` run once it is released (instead of its exit 0). */
const thenRun = (job: HeldJob, after: string) => `${job.script.replace(/; exit 0$/, '')}; ${after}`;
let daemons: TestDaemon[] = [];

afterEach(async () => {
  for (const d of daemons.reverse()) await d.cleanup();
  daemons = [];
});

async function start(dir?: string): Promise<TestDaemon> {
  const d = await TestDaemon.start(dir ? { dir } : {});
  daemons.push(d);
  return d;
}

describe('drain (SIGUSR2)', () => {
  it('keeps a running job: the next daemon links it with its full output and status', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({});
    // Held across the drain: half its output before, half after the release.
    const job = heldJob('for i in $(seq 1 7); do echo $i; done; ');
    const { job_id } = await c1.spawn({ handle, script: thenRun(job, 'for i in $(seq 8 15); do echo $i; done; echo bye >&2; exit 4') });
    const streaming = c1.link({ handle, job_id }).then(
      () => 'answered',
      (err: Error) => `closed: ${err.message}`,
    );
    await job.ready();
    expect(existsSync(join(d1.dir, 'warden.pid'))).toBe(true);
    expect(await d1.drain()).toBe(0);
    expect(await streaming).toMatch(/^closed/); // a client blocked in Link is disconnected
    expect(existsSync(join(d1.dir, 'warden.pid'))).toBe(false);
    expect(job.alive()).toBe(true);

    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    expect((await c2.list()).handles).toEqual([handle]);
    job.release();
    const r = await c2.link({ handle, job_id });
    job.cleanup();
    expect(text(r.stdout)).toBe(Array.from({ length: 15 }, (_, i) => `${i + 1}\n`).join(''));
    expect(text(r.stderr)).toBe('bye\n');
    expect(r.exit_status).toBe(4);
    // Job ids continue above every id handed out before.
    const next = await c2.spawn({ handle, script: 'true' });
    expect(next.job_id).toBeGreaterThan(job_id);
    await c2.link({ handle, job_id: next.job_id });
    await c2.close();
  });

  it('answers a Create the daemon has begun before it exits, and that container outlives the drain', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const watcher = await d1.client();
    const { handle } = await c1.create({});
    const creating = c1.create({});
    // A Create's handle is listed from its start: drain only once the daemon has begun it.
    for (;;) {
      if (((await watcher.list()).handles ?? []).length === 2) break;
      await sleep(10);
    }
    const drained = d1.drain();
    const created = (await creating).handle;
    expect(await drained).toBe(0);
    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    expect([...((await c2.list()).handles ?? [])].sort()).toEqual([handle, created].sort());
    expect((await c2.info({ handle: created })).state).toBe('active');
    await c2.close();
  });

  it('a signal to the whole process group does not kill jobs', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({});
    const job = heldJob();
    const { job_id } = await c1.spawn({ handle, script: thenRun(job, 'echo alive') });
    await c1.close();
    await job.ready();
    expect(await d1.signalGroup('SIGTERM')).toBe(0);
    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    // The job traps TERM to mark it: no mark by now (a whole daemon start later) means
    // the group's signal never reached it.
    expect(job.termed()).toBe(false);
    expect(job.alive()).toBe(true);
    job.release();
    const r = await c2.link({ handle, job_id });
    job.cleanup();
    expect(text(r.stdout)).toBe('alive\n');
    expect(r.exit_status).toBe(0);
    await c2.close();
  });
});

describe('restart speed', () => {
  // The precise restart time is the bench's (chaos scenario); here: a job spawned just
  // before a drain runs on through it and the next start, and the whole restart stays
  // within a bound so loose (20 s, ten times a slow run) that only a hang or a
  // per-container stall breaks it: the DEA must not see its jobs lost over a restart.
  it('a job spawned just before a drain is still running when linked after the next start (4 containers)', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const handles: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { handle } = await c1.create({});
      await c1.spawn({ handle, script: 'sleep 600' });
      handles.push(handle);
    }
    const job = heldJob();
    const { job_id } = await c1.spawn({ handle: handles[0]!, script: thenRun(job, 'echo finished') });
    await job.ready();
    const t0 = Date.now();
    expect(await d1.drain()).toBe(0);
    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    expect((await c2.info({ handle: handles[0]! })).job_ids).toContain(job_id);
    expect(Date.now() - t0).toBeLessThan(20_000);
    job.release();
    const r = await c2.link({ handle: handles[0]!, job_id });
    job.cleanup();
    expect(text(r.stdout)).toBe('finished\n');
    await c2.close();
  });
});

describe('grace time across a drain and restart', () => {
  it('a client that connects after the restart holds the container: its Info 1.1 s later finds it', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({ grace_time: 1 });
    expect(await d1.drain()).toBe(0);
    const d2 = await start(d1.dir);
    // As the original: a new connection references every container, which
    // cancels the grace timer the recovery armed.
    const c2 = await d2.client();
    // Something must NOT happen: only waiting past the grace time shows it.
    await sleep(1100);
    expect((await c2.info({ handle })).state).toBe('active');
    // Once no connection references it, its grace time runs out.
    await c2.close();
    // A new connection would hold it off again: ask, close, and wait past the grace time.
    await waitFor('the grace time to run out', async () => {
      const c3 = await d2.client();
      const handles = (await c3.list()).handles ?? [];
      await c3.close();
      return !handles.includes(handle);
    }, 30_000, 1500);
  });

  it('a container with grace_time 0 is destroyed after the restart', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({ grace_time: 0 });
    const dir = (await c1.info({ handle })).container_path!;
    expect(await d1.drain()).toBe(0);
    const d2 = await start(d1.dir);
    await waitFor('the container folder to go', () => !existsSync(dir), 30_000);
    const c2 = await d2.client();
    await expect(c2.info({ handle })).rejects.toThrow(/unknown handle/);
    await c2.close();
  });
});

describe('snapshot.json', () => {
  it("has the original's shape: jobs keyed by id, resources with handle, ports, uid, network, net rules", async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({ handle: 'shaped', grace_time: 7 });
    const { host_port } = await c1.netIn({ handle, container_port: 8080 });
    await c1.netOut({ handle, network: '1.2.3.0/32', port: 8765 });
    const done = await c1.spawn({ handle, script: 'exit 2' });
    const running = await c1.spawn({ handle, script: 'sleep 600', log_tag: 'tagged' });
    const info = await c1.info({ handle });
    const path = join(info.container_path!, 'snapshot.json');
    // Spawn answers once the job is in the snapshot, as the original's did.
    expect(JSON.parse(readFileSync(path, 'utf8')).jobs?.[String(running.job_id)]).toMatchObject({ log_tag: 'tagged' });
    // The finished job's exit is recorded once its watcher sees it.
    const snap: Record<string, any> = await waitFor('both jobs in the snapshot, the finished one with its status', () => {
      const s = JSON.parse(readFileSync(path, 'utf8'));
      return s.jobs?.[String(done.job_id)]?.status && s.jobs?.[String(running.job_id)] ? s : undefined;
    }, 30_000, 25);
    expect(snap.state).toBe('active');
    expect(snap.grace_time).toBe(7);
    expect(snap.events).toEqual([]);
    expect(snap.limits).toEqual({});
    expect(snap.jobs[String(done.job_id)]).toMatchObject({ discard_output: false, log_tag: null, status: [2, '', ''] });
    expect(snap.jobs[String(running.job_id)]).toMatchObject({ discard_output: false, log_tag: 'tagged' });
    expect(snap.jobs[String(running.job_id)]).not.toHaveProperty('status');
    const id = info.container_path!.split('/').pop();
    expect(snap.resources).toMatchObject({
      handle,
      container_id: id,
      network: expect.stringMatching(/^\d+\.\d+\.\d+\.\d+$/),
      uid: expect.any(Number),
      ports: [host_port],
      net_in: [[host_port, host_port]], // insecure: container_port is the host port, as in the original
      net_out: [['1.2.3.0/32', '8765', 'tcp', null, null, null]],
    });
    await c1.close();
  });

  it('a container folder moved to another name in the depot is recovered under its new path', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({});
    const { job_id } = await c1.spawn({ handle, script: 'echo started; sleep 0.5; echo moved' });
    const path = (await c1.info({ handle })).container_path!;
    // Moved while the job runs with its output open, not before its supervisor opened it
    // (Spawn answers once the supervisor is started; under load it may not have got that far).
    const stdout = join(path, 'jobs', String(job_id), 'stdout');
    await waitFor('the job to run', () => existsSync(stdout) && readFileSync(stdout, 'utf8') === 'started\n', 10_000, 5);
    expect(await d1.drain()).toBe(0);
    const { renameSync } = await import('node:fs');
    renameSync(path, `${path}__`);
    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    const info = await c2.info({ handle });
    expect(info.container_path).toBe(`${path}__`);
    const r = await c2.link({ handle, job_id });
    expect(text(r.stdout)).toBe('started\nmoved\n');
    await c2.destroy({ handle });
    expect(existsSync(`${path}__`)).toBe(false);
    await c2.close();
  });

  it("recovers a snapshot in the previous build's shape (our record), and rewrites it in the original's", async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({ handle: 'upgraded', grace_time: 60 });
    const { host_port } = await c1.netIn({ handle, container_port: 9000 });
    const job = heldJob();
    const { job_id } = await c1.spawn({ handle, script: thenRun(job, 'echo kept; exit 3') });
    await job.ready();
    const info = await c1.info({ handle });
    const path = info.container_path!;
    expect(await d1.drain()).toBe(0);
    const id = path.split('/').pop()!;
    const snap = JSON.parse(readFileSync(join(path, 'snapshot.json'), 'utf8'));
    // What the build before this one wrote: the container record itself.
    const previous = {
      id, handle, state: 'active', path, network: snap.resources.network, host_ip: info.host_ip,
      container_ip: info.container_ip, uid: snap.resources.uid, ports: [host_port], grace_time: 60,
      bind_mounts: [], rootfs: join(d1.dir, 'rootfs'), events: [],
      net_in: [{ host_port, container_port: 9000 }], net_out: [], limits: {},
      jobs: [{ id: job_id, state: 'running', privileged: false, discard_output: false }],
      created_at: Date.now(), backend: {},
    };
    writeFileSync(join(path, 'snapshot.json'), `${JSON.stringify(previous, null, 1)}\n`);
    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    const after = await c2.info({ handle });
    expect(after).toMatchObject({ state: 'active', host_ip: info.host_ip, container_ip: info.container_ip, container_path: path });
    expect(after.job_ids).toEqual([job_id]);
    // Its port stays taken: a new net_in gets another.
    expect((await c2.netIn({ handle })).host_port).not.toBe(host_port);
    job.release();
    const r = await c2.link({ handle, job_id });
    job.cleanup();
    expect(text(r.stdout)).toBe('kept\n');
    expect(r.exit_status).toBe(3);
    const rewritten = JSON.parse(readFileSync(join(path, 'snapshot.json'), 'utf8'));
    expect(rewritten.resources).toMatchObject({ handle, container_id: id });
    expect(rewritten.resources.net_in[0]).toEqual([host_port, 9000]);
    expect(rewritten.grace_time).toBe(60);
    await c2.close();
  });
});

describe('crash (kill -9)', () => {
  it('during creates: the restart keeps whole containers and removes half-made ones', async () => {
    const d1 = await start();
    const clients = await Promise.all(Array.from({ length: 4 }, () => d1.client()));
    const creates = clients.flatMap((c) => Array.from({ length: 5 }, () => c.create({}).catch(() => undefined)));
    await sleep(40);
    await d1.kill9();
    await Promise.all(creates);

    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    const handles = (await c2.list()).handles ?? [];
    for (const handle of handles) {
      const info = await c2.info({ handle });
      expect(info.state).toBe('active');
      expect(existsSync(join(info.container_path!, 'snapshot.json'))).toBe(true);
    }
    // Every folder left in the depot belongs to a listed container.
    const folders = readdirSync(d1.depot).filter((f) => !f.startsWith('.'));
    expect(folders.sort()).toEqual([...handles].sort());
    for (const handle of handles) await c2.destroy({ handle });
    expect(readdirSync(d1.depot).filter((f) => !f.startsWith('.'))).toEqual([]);
    await c2.close();
  });

  it('during snapshot writes: the restart reads a whole snapshot', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({});
    const writes = (async () => {
      for (let i = 0; i < 200; i++) await c1.netIn({ handle, container_port: 1000 + i });
    })().catch(() => undefined);
    await sleep(150);
    await d1.kill9();
    await writes;

    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    expect((await c2.list()).handles).toEqual([handle]);
    const info = await c2.info({ handle });
    const snap = JSON.parse(readFileSync(join(info.container_path!, 'snapshot.json'), 'utf8'));
    expect(snap.resources.handle).toBe(handle);
    expect(readdirSync(info.container_path!).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // The recovered ports are taken again: a new net_in gets a different one.
    const ports = new Set(snap.resources.net_in.map(([hostPort]: [number, number]) => hostPort));
    const { host_port } = await c2.netIn({ handle });
    expect(ports.has(host_port)).toBe(false);
    await c2.destroy({ handle });
    await c2.close();
  });

  it('right after Links: the next daemon lists none of the linked jobs again, and deletes their folders and lists', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({});
    const kept = (await c1.spawn({ handle, script: 'echo kept' })).job_id;
    const linked: number[] = [];
    for (let i = 0; i < 20; i++) linked.push((await c1.spawn({ handle, script: `echo ${i}` })).job_id);
    const answers = await Promise.all(linked.map((job_id) => c1.link({ handle, job_id })));
    expect(answers.map((r) => text(r.stdout))).toEqual(linked.map((_, i) => `${i}\n`));
    // Killed once the folders are listed (the list is written in the turn after the
    // answers; a kill before that lists the jobs again, as the original's restart
    // did), before the quiet spell after which they go.
    const lists = () => readdirSync(d1.depot).filter((n) => n.startsWith(FORGOTTEN_LIST_PREFIX));
    const listedLines = () => lists().flatMap((n) => readFileSync(join(d1.depot, n), 'utf8').split('\n').filter(Boolean));
    await waitFor('the linked jobs to be listed', () => listedLines().length === linked.length, 5_000, 1);
    await d1.kill9();
    const jobs = join(d1.depot, handle, 'jobs');
    expect(lists().length).toBeGreaterThan(0);

    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    for (const job_id of linked) await expect(c2.link({ handle, job_id })).rejects.toThrow(/no such job/);
    expect(text((await c2.link({ handle, job_id: kept })).stdout)).toBe('kept\n');
    await waitFor('the linked jobs\' folders and their lists to be deleted', () => readdirSync(jobs).length === 0 && lists().length === 0, 10_000, 50);
    await c2.destroy({ handle });
    await c2.close();
  });

  it('removes a depot folder without a snapshot at start', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({});
    await c1.close();
    await d1.kill9();
    const { rmSync } = await import('node:fs');
    rmSync(join(d1.depot, handle, 'snapshot.json'));
    const d2 = await start(d1.dir);
    const c2 = await d2.client();
    expect((await c2.list()).handles ?? []).toEqual([]);
    expect(existsSync(join(d1.depot, handle))).toBe(false);
    await c2.close();
  });

  it('its one host-command spawner, shared by the workers, ends with it and leaves no socket behind', async () => {
    const d1 = await start();
    const c1 = await d1.client();
    const { handle } = await c1.create({});
    // Jobs start through the spawner: several at once reach both workers.
    await Promise.all(Array.from({ length: 4 }, () => c1.run({ handle, script: 'true' })));
    const spawners = await spawnersOf(d1.pid);
    expect(spawners).toHaveLength(1);
    const socket = /--listen (\S+)/.exec(spawners[0]!.args)?.[1];
    expect(socket).toBeDefined();
    expect(existsSync(socket!)).toBe(true);
    await c1.close();
    await d1.kill9();
    await waitFor('the spawner to end', async () => !pidAlive(spawners[0]!.pid));
    expect(existsSync(dirname(socket!))).toBe(false);
  });
});

/** The spawner processes (spawner-process.js) a daemon started, from /proc. */
async function spawnersOf(daemonPid: number): Promise<Array<{ pid: number; args: string }>> {
  const out: Array<{ pid: number; args: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      if (ppid === daemonPid && args.includes('spawner-process.js')) out.push({ pid: Number(name), args });
    } catch {
      // ended meanwhile
    }
  }
  return out;
}
