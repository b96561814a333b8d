// Grace time (no root, fake timers for the grace timer only): a container that
// no connection references is destroyed after its grace time; a connection that
// references it (by naming it, or by connecting at all) cancels the timer; the
// last referencing connection's close arms it again.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeHarness, poolState, type Harness } from '../support/orchestrator-harness.ts';

let h: Harness;
afterEach(async () => {
  vi.useRealTimers();
  await h?.close();
});

/** Only the timers the grace time uses are fake; file I/O and job polling keep real time. */
function fakeGraceTimers(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
}

async function gone(handle: string): Promise<void> {
  await vi.waitFor(() => expect(h.service.list().handles).not.toContain(handle), { timeout: 10_000, interval: 5 });
}

describe('grace time', () => {
  it('arms when the last referencing connection closes, and then destroys the container and frees everything', async () => {
    h = await makeHarness();
    const a = h.connect();
    const { handle } = await h.service.create({ handle: 'g', grace_time: 10 }, a.ctx);
    fakeGraceTimers();
    // Referenced by its creator: no timer, however long.
    expect(h.service.registry.get(handle).graceTimer).toBeUndefined();
    vi.advanceTimersByTime(60_000);
    expect(h.service.list().handles).toEqual(['g']);

    a.close();
    expect(h.service.registry.get(handle).graceTimer).toBeDefined();
    vi.advanceTimersByTime(9_999);
    expect(h.service.list().handles).toEqual(['g']);
    vi.advanceTimersByTime(1);
    await gone('g');
    expect(poolState(h.pools)).toEqual({ networks: 0, uids: 0, ports: 0 });
    expect(await h.depotEntries()).toEqual([]);
  });

  it('a new connection references every container and cancels the timer; its close arms it again', async () => {
    h = await makeHarness();
    const a = h.connect();
    await h.service.create({ handle: 'g', grace_time: 10 }, a.ctx);
    fakeGraceTimers();
    a.close();
    vi.advanceTimersByTime(5_000);
    const b = h.connect();
    expect(h.service.registry.get('g').graceTimer).toBeUndefined();
    vi.advanceTimersByTime(60_000);
    expect(h.service.list().handles).toEqual(['g']);
    b.close();
    // A full grace time again, from this close.
    vi.advanceTimersByTime(9_999);
    expect(h.service.list().handles).toEqual(['g']);
    vi.advanceTimersByTime(1);
    await gone('g');
  });

  it('naming the container in a request holds off the timer while any referencing connection is open', async () => {
    h = await makeHarness();
    const a = h.connect();
    await h.service.create({ handle: 'g', grace_time: 10 }, a.ctx);
    fakeGraceTimers();
    a.close();
    // b connected while the timer ran: connected() references it at once.
    const b = h.connect();
    const c = h.connect();
    await h.service.infoRequest({ handle: 'g' }, c.ctx);
    b.close();
    vi.advanceTimersByTime(60_000);
    expect(h.service.list().handles).toEqual(['g']);
    c.close();
    vi.advanceTimersByTime(10_000);
    await gone('g');
  });

  it('grace_time null: never destroyed, and never referenced by a mere connection', async () => {
    h = await makeHarness({ server: 'container_grace_time: 1' });
    const a = h.connect();
    await h.service.create({ handle: 'forever', grace_time: null as unknown as number }, a.ctx);
    await h.service.create({ handle: 'default' }, a.ctx);
    expect(h.service.registry.get('forever').record.grace_time).toBeNull();
    expect(h.service.registry.get('default').record.grace_time).toBe(1);
    fakeGraceTimers();
    a.close();
    expect(h.service.registry.get('forever').graceTimer).toBeUndefined();
    vi.advanceTimersByTime(1_000);
    await gone('default');
    vi.advanceTimersByTime(3_600_000);
    expect(h.service.list().handles).toEqual(['forever']);
    const b = h.connect();
    expect(b.references.size).toBe(0);
  });

  it('a create whose connection closed meanwhile arms the timer when it is done, not while born', async () => {
    h = await makeHarness();
    const a = h.connect();
    const gate = h.backend.hold('create');
    fakeGraceTimers();
    const creating = h.service.create({ handle: 'late', grace_time: 1 }, a.ctx);
    await gate.reached;
    a.close();
    expect(h.service.registry.get('late').graceTimer).toBeUndefined();
    vi.advanceTimersByTime(10_000);
    expect(h.service.list().handles).toEqual(['late']);
    gate.release();
    await creating;
    expect(h.service.registry.get('late').graceTimer).toBeDefined();
    vi.advanceTimersByTime(1_000);
    await gone('late');
  });

  it('a destroy after the grace time that fails leaves the container listed with the failure in its events', async () => {
    h = await makeHarness();
    const a = h.connect();
    await h.service.create({ handle: 'stuck', grace_time: 1 }, a.ctx);
    h.backend.fail('destroy', { error: new Error('device busy') });
    fakeGraceTimers();
    a.close();
    vi.advanceTimersByTime(1_000);
    await vi.waitFor(() => expect(h.service.registry.get('stuck').record.events).toContain('destroy failed: device busy'), {
      timeout: 10_000,
      interval: 5,
    });
    expect(h.service.list().handles).toEqual(['stuck']);
  });
});
