// The orchestrator's Create and Destroy against the fake backend and the
// in-thread task runner (no root): a create that fails at any step gives back
// every reservation and leaves nothing in the depot or on the "host"; a destroy
// that fails keeps the container listed, with the failure in its events, and can
// be retried.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeHarness, poolState, type Harness } from '../support/orchestrator-harness.ts';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const EMPTY = { networks: 0, uids: 0, ports: 0 };

describe('create', () => {
  it('reserves a network, a uid and a folder, snapshots born then active, and lists the handle', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({ handle: 'web' }, conn.ctx);
    expect(handle).toBe('web');
    expect(h.service.list()).toEqual({ handles: ['web'] });
    expect(poolState(h.pools)).toEqual({ networks: 1, uids: 1, ports: 0 });
    const c = h.service.registry.get('web');
    // The born snapshot is written with the folder, before the backend starts (recovery then destroys a cut create).
    const prepared = h.pool.callsOf('state.prepareContainer') as Array<{ snapshot: { state: string } }>;
    expect(prepared.map((p) => p.snapshot.state)).toEqual(['born']);
    const writes = h.pool.callsOf('state.writeText') as Array<{ path: string; text: string }>;
    expect(writes.filter((w) => w.path === c.snapshotPath).map((w) => JSON.parse(w.text).state)).toEqual(['active']);
    expect(h.backend.stepsOf(c.id)).toEqual(['create']);
    expect(JSON.parse(await readFile(c.snapshotPath, 'utf8')).state).toBe('active');
  });

  it('answers the original\'s text for a handle that exists, and takes nothing', async () => {
    h = await makeHarness();
    const conn = h.connect();
    await h.service.create({ handle: 'web' }, conn.ctx);
    const before = poolState(h.pools);
    await expect(h.service.create({ handle: 'web' }, conn.ctx)).rejects.toThrow('container with handle: web already exists.');
    expect(poolState(h.pools)).toEqual(before);
    expect(await h.depotEntries()).toHaveLength(1);
  });

  it('a backend create that fails half-way: undone, every reservation back, nothing in the depot or on the host', async () => {
    h = await makeHarness();
    const conn = h.connect();
    h.backend.fail('create', { error: new Error('runc create failed: no space left') });
    const err = await h.service.create({ handle: 'doomed', network: '10.250.0.4' }, conn.ctx).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('cannot create container');
    expect(((err as Error).cause as Error).message).toBe('runc create failed: no space left');
    expect(poolState(h.pools)).toEqual(EMPTY);
    expect(h.service.list()).toEqual({ handles: [] });
    expect(await h.depotEntries()).toEqual([]);
    // The half-made host state was torn down by a destroy.
    expect(h.backend.calls.map((c) => c.step)).toEqual(['create', 'destroy']);
    expect(h.backend.host.size).toBe(0);
    // The very network asked for is free again, and the handle can be used again.
    await h.service.create({ handle: 'doomed', network: '10.250.0.4' }, conn.ctx);
    expect(h.service.registry.get('doomed').record.network).toBe('10.250.0.4');
  });

  it('a failed folder and born snapshot (before the backend): nothing asked of the backend, nothing left', async () => {
    h = await makeHarness();
    const conn = h.connect();
    h.pool.failNext('state.prepareContainer', { error: new Error('EIO: i/o error, open snapshot.json') });
    await expect(h.service.create({}, conn.ctx)).rejects.toThrow('cannot create container');
    expect(poolState(h.pools)).toEqual(EMPTY);
    expect(h.service.list().handles).toEqual([]);
    expect(await h.depotEntries()).toEqual([]);
    expect(h.backend.calls.filter((c) => c.step === 'create')).toEqual([]);
  });

  it('a failed active snapshot (after the backend made it): the backend destroys it, nothing left', async () => {
    h = await makeHarness();
    const conn = h.connect();
    // The second snapshot write of the create: the one in state active.
    h.pool.failNext('state.writeText', {
      when: (a) => (a as { path: string }).path.endsWith('/snapshot.json') && JSON.parse((a as { text: string }).text).state === 'active',
    });
    await expect(h.service.create({}, conn.ctx)).rejects.toThrow('cannot create container');
    expect(poolState(h.pools)).toEqual(EMPTY);
    expect(await h.depotEntries()).toEqual([]);
    expect(h.backend.calls.map((c) => c.step)).toEqual(['create', 'destroy']);
    expect(h.backend.host.size).toBe(0);
  });

  it('a rootfs that is not there: the original\'s message as it is, and nothing left', async () => {
    h = await makeHarness();
    const conn = h.connect();
    await expect(h.service.create({ rootfs: '/nonexistent/rootfs' }, conn.ctx)).rejects.toThrow(/^rootfs \/nonexistent\/rootfs not found$/);
    await expect(
      h.service.create({ bind_mounts: [{ src_path: '/nonexistent/src', dst_path: '/mnt', mode: 0 }] }, conn.ctx),
    ).rejects.toThrow(/^Source path for bind mount does not exist: \/nonexistent\/src$/);
    expect(poolState(h.pools)).toEqual(EMPTY);
    expect(await h.depotEntries()).toEqual([]);
  });

  it('when the undo fails too, the reservations still go back and the folder stays for recovery', async () => {
    h = await makeHarness();
    const conn = h.connect();
    h.backend.fail('create');
    h.backend.fail('destroy');
    await expect(h.service.create({ handle: 'x' }, conn.ctx)).rejects.toThrow('cannot create container');
    expect(poolState(h.pools)).toEqual(EMPTY);
    expect(h.service.list().handles).toEqual([]);
    // The folder with its born snapshot: the next start's recovery destroys it.
    const [left] = await h.depotEntries();
    expect(JSON.parse(await readFile(join(h.depot, left!, 'snapshot.json'), 'utf8')).state).toBe('born');
  });

  it('refuses past max_containers and past the pools with the original\'s answers, taking nothing', async () => {
    h = await makeHarness({ server: 'max_containers: 2' });
    const conn = h.connect();
    await h.service.create({}, conn.ctx);
    await h.service.create({}, conn.ctx);
    await expect(h.service.create({}, conn.ctx)).rejects.toThrow(
      'cannot create container: the daemon holds its maximum of 2 containers (server.max_containers)',
    );
    expect(poolState(h.pools)).toEqual({ networks: 2, uids: 2, ports: 0 });
  });

  it('a Destroy that arrives during the create waits for it, then removes the container', async () => {
    h = await makeHarness();
    const a = h.connect();
    const b = h.connect();
    const gate = h.backend.hold('create');
    const creating = h.service.create({ handle: 'racy' }, a.ctx);
    await gate.reached;
    // Listed (and in state born) from the start.
    expect(h.service.list().handles).toEqual(['racy']);
    await expect(h.service.infoRequest({ handle: 'racy' }, b.ctx)).rejects.toThrow(
      "Container state must be one of 'active, stopped', current state is 'born'",
    );
    const destroying = h.service.destroy({ handle: 'racy' }, b.ctx);
    gate.release();
    await creating;
    await destroying;
    expect(h.service.list().handles).toEqual([]);
    expect(poolState(h.pools)).toEqual(EMPTY);
    expect(await h.depotEntries()).toEqual([]);
  });
});

describe('destroy', () => {
  it('releases the network, uid and ports, removes the folder and the host state', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    await h.service.netIn({ handle, container_port: 8080 }, conn.ctx);
    expect(poolState(h.pools)).toEqual({ networks: 1, uids: 1, ports: 1 });
    const id = h.service.registry.get(handle).id;
    await h.service.destroy({ handle }, conn.ctx);
    expect(poolState(h.pools)).toEqual(EMPTY);
    expect(h.service.list().handles).toEqual([]);
    expect(await h.depotEntries()).toEqual([]);
    expect(h.backend.host.has(id)).toBe(false);
    await expect(h.service.destroy({ handle }, conn.ctx)).rejects.toThrow(/^unknown handle$/);
  });

  it('a failed destroy keeps the container listed, with the failure in its events and its snapshot back; a retry finishes', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const c = h.service.registry.get(handle);
    const failures: string[] = [];
    h.service.observer = { destroyFailed: (hd) => failures.push(hd) };
    h.backend.fail('destroy', { error: new Error('umount: target is busy') });
    await expect(h.service.destroy({ handle }, conn.ctx)).rejects.toThrow(/^destroy failed: umount: target is busy$/);
    expect(failures).toEqual([handle]);
    expect(h.service.list().handles).toEqual([handle]);
    expect(poolState(h.pools)).toEqual({ networks: 1, uids: 1, ports: 0 });
    const info = await h.service.infoRequest({ handle }, conn.ctx);
    expect(info.events).toContain('destroy failed: umount: target is busy');
    // Listed, so snapshotted again: a restart still knows it.
    expect(existsSync(c.snapshotPath)).toBe(true);
    expect(JSON.parse(await readFile(c.snapshotPath, 'utf8')).events).toContain('destroy failed: umount: target is busy');

    await h.service.destroy({ handle }, conn.ctx);
    expect(h.service.list().handles).toEqual([]);
    expect(poolState(h.pools)).toEqual(EMPTY);
    expect(await h.depotEntries()).toEqual([]);
  });

  it('kills the container before it takes the lock: a graceful Stop in progress does not delay it', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const id = h.service.registry.get(handle).id;
    const gate = h.backend.hold('stop');
    const stopping = h.service.stop({ handle }, conn.ctx);
    await gate.reached;
    const destroying = h.service.destroy({ handle }, conn.ctx);
    // The kill goes out while the graceful stop still holds the container's lock.
    await vi.waitFor(() => expect(h.backend.stepsOf(id)).toEqual(['create', 'stop', 'stop']), { timeout: 10_000, interval: 5 });
    gate.release();
    await Promise.all([stopping, destroying]);
    expect(h.backend.stepsOf(id).filter((s) => s !== 'info')).toEqual(['create', 'stop', 'stop', 'destroy']);
    expect(h.backend.calls.filter((c) => c.step === 'stop').map((c) => c.detail)).toEqual([{ kill: false }, { kill: true }]);
  });
});
