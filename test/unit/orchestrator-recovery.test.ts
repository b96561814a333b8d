// Recovery's decisions (no root): a first service fills a temp depot and the
// fake backend's "host"; a second service over the same depot and host runs
// recover() as a restarted daemon would. Adopted: active or stopped snapshots
// whose host state is there. Destroyed: folders without a snapshot, born
// snapshots (a cut create), containers whose processes are gone, and records
// claiming resources another already holds.
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { recover, scanDepot } from '../../src/orchestrator/recovery.ts';
import { FORGOTTEN_LIST_PREFIX } from '../../src/depot/folder-remover.ts';
import { INIT_EXITED_EVENT } from '../../src/orchestrator/warden-service.ts';
import { makeHarness, poolState, type Harness } from '../support/orchestrator-harness.ts';

const silent = pino({ level: 'silent' });
const WAIT = { timeout: 10_000, interval: 10 };
let before: Harness | undefined;
let after: Harness | undefined;

afterEach(async () => {
  await after?.close();
  if (before) await rm(before.depot, { recursive: true, force: true, maxRetries: 10 });
  before = after = undefined;
});

/** The first daemon goes away without touching its containers: its watchers stop, its jobs run on. */
async function stopWithoutDestroying(h: Harness): Promise<void> {
  h.service.stopping = true;
  for (const c of h.service.registry.all()) if (c.graceTimer) clearTimeout(c.graceTimer);
  await h.service.stopGuards(2000);
  await h.pool.idle();
}

/** A second daemon over the same depot and host, recovered. */
async function restart(
  h: Harness,
  server?: string,
  early?: Parameters<typeof recover>[4],
): Promise<{ next: Harness; report: Awaited<ReturnType<typeof recover>> }> {
  await stopWithoutDestroying(h);
  const next = await makeHarness({ depot: h.depot, backend: h.backend, server });
  after = next;
  const report = await recover(next.service, next.backend, next.pool, silent, early);
  await report.cleanup;
  return { next, report };
}

describe('recovery', () => {
  it('takes the scan made while the host was prepared, and scans again when the depot was mounted meanwhile', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'kept' }, conn.ctx);
    // Read before a mount: an empty folder on another device.
    const stale = Promise.resolve({ dev: -2, entries: [], forgottenLists: [] });
    const { next, report } = await restart(before, undefined, stale);
    expect(report.recovered).toEqual(['kept']);
    expect(next.service.list().handles).toEqual(['kept']);
    // The same device: the early scan is used as it is.
    await next.service.create({ handle: 'second' }, next.connect().ctx);
    const { dev, entries } = await scanDepot(next.pool, next.depot);
    const id = next.service.registry.get('second').id;
    const one = entries.filter((e) => e.id === id);
    expect(one).toHaveLength(1);
    before = next;
    const again = await restart(next, undefined, Promise.resolve({ dev, entries: one, forgottenLists: [] }));
    expect(again.report.recovered).toEqual(['second']);
  });

  it('adopts active and stopped containers: listed, resources taken, host state kept, sweep told', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'up' }, conn.ctx);
    await before.service.netIn({ handle: 'up', container_port: 80 }, conn.ctx);
    await before.service.create({ handle: 'down' }, conn.ctx);
    await before.service.stop({ handle: 'down' }, conn.ctx);
    const ids = ['up', 'down'].map((x) => before!.service.registry.get(x).id);

    const { next, report } = await restart(before);
    expect(report.recovered.sort()).toEqual(['down', 'up']);
    expect(report.destroyed).toEqual([]);
    expect(next.service.list().handles!.sort()).toEqual(['down', 'up']);
    expect(next.service.registry.get('up').state).toBe('active');
    expect(next.service.registry.get('down').state).toBe('stopped');
    expect(next.service.registry.get('up').record.net_in).toEqual([{ host_port: 40000, container_port: 80 }]);
    expect(poolState(next.pools)).toEqual({ networks: 2, uids: 2, ports: 1 });
    expect([...next.backend.sweptWith!].sort()).toEqual([...ids].sort());
    expect(next.backend.calls.filter((c) => c.step === 'destroy')).toEqual([]);
    // The next create does not take what the adopted ones hold.
    const c2 = next.connect();
    await next.service.create({ handle: 'new' }, c2.ctx);
    const nets = next.service.registry.all().map((c) => c.record.network);
    expect(new Set(nets).size).toBe(3);
  });

  it('rewrites only the snapshots the record would change (here one in the shape earlier builds wrote)', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'same' }, conn.ctx);
    await before.service.create({ handle: 'reshaped' }, conn.ctx);
    // Whitespace alone changes nothing: the snapshot is compared as the value it holds.
    const same = before.service.registry.get('same').snapshotPath;
    await writeFile(same, JSON.stringify(JSON.parse(await readFile(same, 'utf8'))));
    const reshaped = before.service.registry.get('reshaped');
    await writeFile(reshaped.snapshotPath, JSON.stringify(reshaped.record));

    const { next } = await restart(before);
    await next.pool.idle();
    const snapshotWrites = (next.pool.callsOf('state.writeText') as Array<{ path: string }>).filter((w) => w.path.endsWith('/snapshot.json'));
    expect(snapshotWrites.map((w) => w.path)).toEqual([reshaped.snapshotPath]);
    // A drain with nothing changed writes none.
    await next.service.snapshotAll();
    expect((next.pool.callsOf('state.writeText') as Array<{ path: string }>).filter((w) => w.path.endsWith('/snapshot.json'))).toHaveLength(1);
  });

  it('serves adopted containers while it destroys and sweeps the rest; a Create waits until the sweep is done', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'kept' }, conn.ctx);
    await before.service.create({ handle: 'lost' }, conn.ctx);
    const lost = before.service.registry.get('lost').id;
    before.backend.lostIds.add(lost);
    await stopWithoutDestroying(before);
    const next = await makeHarness({ depot: before.depot, backend: before.backend });
    after = next;
    const sweep = next.backend.hold('sweep');
    const report = await recover(next.service, next.backend, next.pool, silent);
    expect(report.recovered).toEqual(['kept']);
    await sweep.reached;
    // Recovery has returned (the daemon listens): the adopted container answers.
    const c2 = next.connect();
    expect(next.service.list().handles).toEqual(['kept']);
    expect((await next.service.infoRequest({ handle: 'kept' }, c2.ctx)).state).toBe('active');
    const order: string[] = [];
    const callsBefore = next.backend.calls.length;
    const creating = next.service.create({ handle: 'new' }, c2.ctx).then(() => order.push('created'));
    // A Create is held: a later turn of the loop still finds no 'new', nor any host step for it.
    await new Promise((r) => setImmediate(r));
    expect(next.service.registry.find('new')).toBeUndefined();
    expect(next.backend.calls.slice(callsBefore).filter((c) => c.step === 'create')).toEqual([]);
    expect(report.destroyed).toEqual([lost]);
    order.push('sweep released');
    sweep.release();
    await report.cleanup;
    await creating;
    expect(order).toEqual(['sweep released', 'created']);
    expect([...next.backend.sweptWith!]).toEqual([next.service.registry.get('kept').id]);
    expect(next.service.createsHeld).toBeUndefined();
  });

  it('destroys a container whose processes are gone: host state, folder and resources', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'lost' }, conn.ctx);
    const id = before.service.registry.get('lost').id;
    before.backend.lostIds.add(id);
    const { next, report } = await restart(before);
    expect({ recovered: report.recovered, destroyed: report.destroyed }).toEqual({ recovered: [], destroyed: [id] });
    expect(next.backend.stepsOf(id).slice(-2)).toEqual(['recover', 'destroy']);
    expect(next.backend.host.has(id)).toBe(false);
    expect(await next.depotEntries()).toEqual([]);
    expect(poolState(next.pools)).toEqual({ networks: 0, uids: 0, ports: 0 });
  });

  it('destroys half-made folders: one without a snapshot, one whose snapshot says born', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'cut' }, conn.ctx);
    const cut = before.service.registry.get('cut');
    // A create cut after its born snapshot: rewrite the snapshot as it was then.
    const snap = JSON.parse(await readFile(cut.snapshotPath, 'utf8'));
    await writeFile(cut.snapshotPath, JSON.stringify({ ...snap, state: 'born' }));
    // A folder a create made before any snapshot.
    await mkdir(join(before.depot, 'd0000000001', 'jobs'), { recursive: true });

    const { next, report } = await restart(before);
    expect(report.recovered).toEqual([]);
    expect(report.destroyed.sort()).toEqual(['d0000000001', cut.id].sort());
    // The backend tore both down by id (the orphan with a minimal record), and nothing was asked to recover.
    expect(next.backend.calls.filter((c) => c.step === 'destroy').map((c) => c.id).sort()).toEqual(['d0000000001', cut.id].sort());
    expect(next.backend.calls.filter((c) => c.step === 'recover')).toEqual([]);
    expect(await next.depotEntries()).toEqual([]);
    expect(poolState(next.pools)).toEqual({ networks: 0, uids: 0, ports: 0 });
  });

  it('of two records claiming one network, adopts one and destroys the other', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'orig' }, conn.ctx);
    const c = before.service.registry.get('orig');
    // A copy under another id (and handle) with the same resources.
    const copy = join(before.depot, 'd0000000002');
    await cp(c.record.path, copy, { recursive: true });
    const snap = JSON.parse(await readFile(join(copy, 'snapshot.json'), 'utf8'));
    snap.resources.handle = 'copy';
    snap.resources.container_id = 'd0000000002';
    await writeFile(join(copy, 'snapshot.json'), JSON.stringify(snap));
    // Both alive on the host: the one found first in the depot keeps the network.
    before.backend.host.set('d0000000002', { ...before.backend.host.get(c.id)!, id: 'd0000000002' });

    const { next, report } = await restart(before);
    expect(report.recovered).toHaveLength(1);
    expect(report.destroyed).toHaveLength(1);
    expect(next.service.list().handles).toEqual(report.recovered);
    expect(poolState(next.pools)).toEqual({ networks: 1, uids: 1, ports: 0 });
    expect(await next.depotEntries()).toHaveLength(1);
    expect(next.backend.host.size).toBe(1);
  });

  it('a dead record found first does not cost a live one its network', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'live' }, conn.ctx);
    const c = before.service.registry.get('live');
    // A stale copy of it (same network and uid) under an id that comes first in the depot; its processes are gone.
    const stale = join(before.depot, '00000000001');
    await cp(c.record.path, stale, { recursive: true });
    const snap = JSON.parse(await readFile(join(stale, 'snapshot.json'), 'utf8'));
    snap.resources.handle = 'stale';
    snap.resources.container_id = '00000000001';
    await writeFile(join(stale, 'snapshot.json'), JSON.stringify(snap));

    const { next, report } = await restart(before);
    expect({ recovered: report.recovered, destroyed: report.destroyed }).toEqual({ recovered: ['live'], destroyed: ['00000000001'] });
    expect(next.backend.host.has(c.id)).toBe(true);
    expect(poolState(next.pools)).toEqual({ networks: 1, uids: 1, ports: 0 });
  });

  it('a job that ran on while no daemon ran is watched again: Link answers it, job ids continue above', async () => {
    before = await makeHarness();
    const conn = before.connect();
    const { handle } = await before.service.create({}, conn.ctx);
    const dir = before.service.registry.get(handle).record.path;
    const running = await before.service.spawn({ handle, script: 'until [ -e "$HOME/go" ]; do sleep 0.01; done; echo late; exit 5' }, conn.ctx);
    const ended = await before.service.spawn({ handle, script: 'echo early; exit 4' }, conn.ctx);
    await vi.waitFor(() => expect(before!.service.registry.get(handle).jobs.get(ended.job_id)!.running).toBe(false), WAIT);

    const { next } = await restart(before);
    const c = next.service.registry.get(handle);
    expect(c.jobs.get(running.job_id)!.running).toBe(true);
    expect(c.jobs.get(ended.job_id)!.record).toMatchObject({ state: 'exited', exit_status: 4 });
    await writeFile(join(dir, 'go'), '');
    // The watch records the exit without any Link.
    await vi.waitFor(() => expect(c.jobs.get(running.job_id)!.record).toMatchObject({ state: 'exited', exit_status: 5 }), WAIT);
    const b = next.connect();
    const r = await next.service.link({ handle, job_id: running.job_id }, b.ctx);
    expect([r.exit_status, r.stdout!.toString()]).toEqual([5, 'late\n']);
    const again = await next.service.spawn({ handle, script: 'true' }, b.ctx);
    expect(again.job_id).toBeGreaterThan(Math.max(running.job_id, ended.job_id));
  });

  it('a job linked just before the stop is not listed again, and the folder it left is deleted, then the list', async () => {
    before = await makeHarness();
    const conn = before.connect();
    const { handle } = await before.service.create({}, conn.ctx);
    const jobs = join(before.service.registry.get(handle).record.path, 'jobs');
    const kept = await before.service.spawn({ handle, script: 'echo kept' }, conn.ctx);
    const linked = await before.service.spawn({ handle, script: 'echo linked' }, conn.ctx);
    expect((await before.service.link({ handle, job_id: linked.job_id }, conn.ctx)).stdout!.toString()).toBe('linked\n');
    // The drain waits for the folder to be listed as forgotten, not for its delete (left to the next daemon).
    await before.service.stopGuards(2000);
    expect((await readdir(jobs)).sort()).toEqual([String(kept.job_id), String(linked.job_id)].sort());
    const lists = (await readdir(before.depot)).filter((n) => n.startsWith(FORGOTTEN_LIST_PREFIX));
    expect(lists).toHaveLength(1);
    const id = before.service.registry.get(handle).id;
    expect(await readFile(join(before.depot, lists[0]!), 'utf8')).toBe(`${id}/jobs/${linked.job_id}\n`);

    const { next, report } = await restart(before);
    const c = next.service.registry.get(handle);
    expect([...c.jobs.keys()]).toEqual([kept.job_id]);
    await report.hiddenDeleted;
    expect(await readdir(jobs)).toEqual([String(kept.job_id)]);
    expect((await readdir(next.depot)).filter((n) => n.startsWith(FORGOTTEN_LIST_PREFIX))).toEqual([]);
  });

  it('an init that died before recovery listed the container, or an OOM while no daemon watched, stops it', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'died' }, conn.ctx);
    await before.service.create({ handle: 'oom' }, conn.ctx);
    const died = before.service.registry.get('died').id;
    before.backend.oomKilledIds.add(before.service.registry.get('oom').id);
    await stopWithoutDestroying(before);
    // The death is reported while recovery asks the backend about the container.
    const gate = before.backend.hold('recover');
    const next = await makeHarness({ depot: before.depot, backend: before.backend });
    after = next;
    const recovering = recover(next.service, next.backend, next.pool, silent);
    await gate.reached;
    next.backend.emit({ kind: 'init-exited', id: died });
    gate.release();
    await (await recovering).cleanup;
    await vi.waitFor(() => {
      expect(next.service.registry.get('died').state).toBe('stopped');
      expect(next.service.registry.get('oom').state).toBe('stopped');
    }, WAIT);
    expect(next.service.registry.get('died').record.events).toEqual([INIT_EXITED_EVENT]);
    expect(next.service.registry.get('oom').record.events).toEqual(['out of memory']);
  });

  it('arms the grace time of adopted containers (no connection references them yet)', async () => {
    before = await makeHarness();
    const conn = before.connect();
    await before.service.create({ handle: 'g', grace_time: 3600 }, conn.ctx);
    await before.service.create({ handle: 'never', grace_time: null as unknown as number }, conn.ctx);
    const { next } = await restart(before);
    expect(next.service.registry.get('g').graceTimer).toBeDefined();
    expect(next.service.registry.get('never').graceTimer).toBeUndefined();
    // A client that connects holds it off.
    next.connect();
    expect(next.service.registry.get('g').graceTimer).toBeUndefined();
  });
});
