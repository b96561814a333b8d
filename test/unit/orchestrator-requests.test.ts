// The orchestrator's request methods against the fake backend (no root): each
// request refuses a container in the wrong state with the original's text
// (base.rb check_state_in), names an unknown handle as the original did, and
// NetIn, NetOut, Stop and the Limit requests record what they did (or give back
// what they took when the backend fails).
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { RequestContext } from '../../src/orchestrator/warden-service.ts';
import type { WardenService } from '../../src/orchestrator/warden-service.ts';
import { FakeBackend, UNLIMITED_MEMORY } from '../support/fake-backend.ts';
import { makeHarness, poolState, readSnapshot, type Harness } from '../support/orchestrator-harness.ts';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const stateError = (allowed: string, current: string) => `Container state must be one of '${allowed}', current state is '${current}'`;

/** Every request that names a container, with the states the original allowed. */
const REQUESTS: Array<[string, string, (s: WardenService, handle: string, ctx: RequestContext) => Promise<unknown>]> = [
  ['Stop', 'active, stopped', (s, handle, ctx) => s.stop({ handle }, ctx)],
  ['Info', 'active, stopped', (s, handle, ctx) => s.infoRequest({ handle }, ctx)],
  ['Spawn', 'active', (s, handle, ctx) => s.spawn({ handle, script: 'true' }, ctx)],
  ['Run', 'active', (s, handle, ctx) => s.run({ handle, script: 'true' }, ctx)],
  ['Link', 'active, stopped', (s, handle, ctx) => s.link({ handle, job_id: 1 }, ctx)],
  ['Stream', 'active, stopped', (s, handle, ctx) => s.stream({ handle, job_id: 1 }, ctx)],
  ['NetIn', 'active', (s, handle, ctx) => s.netIn({ handle, container_port: 80 }, ctx)],
  ['NetOut', 'active', (s, handle, ctx) => s.netOut({ handle, network: '10.0.0.1' }, ctx)],
  ['CopyIn', 'active', (s, handle, ctx) => s.copyIn({ handle, src_path: '/a', dst_path: '/b' }, ctx)],
  ['CopyOut', 'active, stopped', (s, handle, ctx) => s.copyOut({ handle, src_path: '/a', dst_path: '/b' }, ctx)],
  ['LimitMemory', 'active, stopped', (s, handle, ctx) => s.limitMemory({ handle, limit_in_bytes: 1 << 20 }, ctx)],
  ['LimitCpu', 'active, stopped', (s, handle, ctx) => s.limitCpu({ handle, limit_in_shares: 10 }, ctx)],
  ['LimitBandwidth', 'active, stopped', (s, handle, ctx) => s.limitBandwidth({ handle, rate: 1000, burst: 100 }, ctx)],
  ['LimitDisk', 'active, stopped', (s, handle, ctx) => s.limitDisk({ handle, byte_limit: 1 << 20 }, ctx)],
];

describe('state rules', () => {
  it('a container still being created (born) refuses every request with the original\'s text', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const gate = h.backend.hold('create');
    const creating = h.service.create({ handle: 'b' }, conn.ctx);
    await gate.reached;
    for (const [name, allowed, call] of REQUESTS) {
      const err = await call(h.service, 'b', conn.ctx).then(() => undefined, (e: Error) => e);
      expect(err?.message, name).toBe(stateError(allowed, 'born'));
    }
    gate.release();
    await creating;
  });

  it('a stopped container refuses what needs it active, and serves the rest', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    await h.service.stop({ handle }, conn.ctx);
    expect(h.service.registry.get(handle).state).toBe('stopped');
    for (const [name, allowed, call] of REQUESTS) {
      const err = await call(h.service, handle, conn.ctx).then(() => undefined, (e: Error) => e);
      if (allowed === 'active') expect(err?.message, name).toBe(stateError('active', 'stopped'));
      // Link and Stream of a job that never was: past the state check.
      else if (name === 'Link' || name === 'Stream') expect(err?.message, name).toBe('no such job');
      else expect(err, name).toBeUndefined();
    }
  });

  it('an unknown handle is "unknown handle" for every request, and Destroy too', async () => {
    h = await makeHarness();
    const conn = h.connect();
    for (const [name, , call] of REQUESTS) {
      await expect(call(h.service, 'nope', conn.ctx), name).rejects.toThrow(/^unknown handle$/);
    }
    await expect(h.service.destroy({ handle: 'nope' }, conn.ctx)).rejects.toThrow(/^unknown handle$/);
  });
});

describe('stop', () => {
  it('snapshots the container stopped before the backend stops it; kill is passed on', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const c = h.service.registry.get(handle);
    const gate = h.backend.hold('stop');
    const stopping = h.service.stop({ handle, kill: true }, conn.ctx);
    await gate.reached;
    expect(JSON.parse(await readFile(c.snapshotPath, 'utf8')).state).toBe('stopped');
    gate.release();
    await stopping;
    expect(h.backend.calls.filter((x) => x.step === 'stop').map((x) => x.detail)).toEqual([{ kill: true }]);
  });

  it('background: answers at once, the stop goes on', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const gate = h.backend.hold('stop');
    await h.service.stop({ handle, background: true }, conn.ctx);
    await gate.reached;
    expect(h.backend.host.get(h.service.registry.get(handle).id)!.stopped).toBe(false);
    gate.release();
    await h.service.registry.get(handle).lock.run(async () => {});
    expect(h.backend.host.get(h.service.registry.get(handle).id)!.stopped).toBe(true);
  });
});

describe('net_in and net_out', () => {
  it('takes a pooled host port, records the rule, and answers both ports', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const c = h.service.registry.get(handle);
    expect(await h.service.netIn({ handle, container_port: 8080 }, conn.ctx)).toEqual({ host_port: 40000, container_port: 8080 });
    expect(c.record.ports).toEqual([40000]);
    expect(c.record.net_in).toEqual([{ host_port: 40000, container_port: 8080 }]);
    expect(h.backend.host.get(c.id)!.netIn).toEqual([{ hostPort: 40000, containerPort: 8080 }]);
    expect((await readSnapshot(c))!.net_in).toEqual([{ host_port: 40000, container_port: 8080 }]);
  });

  it('gives the port back when the backend fails', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    h.backend.fail('netIn', { error: new Error('iptables: No chain/target/match by that name') });
    await expect(h.service.netIn({ handle }, conn.ctx)).rejects.toThrow('iptables: No chain/target/match by that name');
    expect(poolState(h.pools).ports).toBe(0);
    expect(h.service.registry.get(handle).record.net_in).toEqual([]);
  });

  it('answers the original\'s class name when the port pool is empty', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    for (let i = 0; i < 4; i++) await h.service.netIn({ handle }, conn.ctx);
    await expect(h.service.netIn({ handle }, conn.ctx)).rejects.toThrow(/^Warden::Pool::Port::NoPortAvailable$/);
  });

  it('a host port outside the pool is forwarded but not taken from the pool', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    expect(await h.service.netIn({ handle, host_port: 45000, container_port: 22 }, conn.ctx)).toEqual({ host_port: 45000, container_port: 22 });
    expect(poolState(h.pools).ports).toBe(0);
    expect(h.service.registry.get(handle).record.ports).toEqual([]);
  });

  it('net_out: validated, passed on, recorded', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    await h.service.netOut({ handle, network: '10.1.0.0/16', port: 443 }, conn.ctx);
    const c = h.service.registry.get(handle);
    expect(c.record.net_out).toHaveLength(1);
    expect(h.backend.host.get(c.id)!.netOut).toEqual(c.record.net_out);
  });
});

describe('limits', () => {
  it('memory: sets, records and answers the kernel\'s value; without a value only reads', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    expect(await h.service.limitMemory({ handle }, conn.ctx)).toEqual({ limit_in_bytes: UNLIMITED_MEMORY });
    expect(await h.service.limitMemory({ handle, limit_in_bytes: 64 << 20 }, conn.ctx)).toEqual({ limit_in_bytes: 64 << 20 });
    const c = h.service.registry.get(handle);
    expect(c.record.limits.memory_limit_in_bytes).toBe(64 << 20);
    expect((await readSnapshot(c))!.limits.memory_limit_in_bytes).toBe(64 << 20);
  });

  it('memory: a backend failure answers the original\'s words and records nothing', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    h.backend.fail('limitMemory', { error: new Error('write memory.limit_in_bytes: Device or resource busy') });
    await expect(h.service.limitMemory({ handle, limit_in_bytes: 1 }, conn.ctx)).rejects.toThrow(
      /^Failed setting memory limit: write memory.limit_in_bytes: Device or resource busy$/,
    );
    expect(h.service.registry.get(handle).record.limits.memory_limit_in_bytes).toBeUndefined();
  });

  it('cpu records the shares as the kernel keeps them; bandwidth and disk are recorded', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    expect(await h.service.limitCpu({ handle, limit_in_shares: 1 }, conn.ctx)).toEqual({ limit_in_shares: 2 });
    expect(await h.service.limitBandwidth({ handle, rate: 1000, burst: 500 }, conn.ctx)).toEqual({ rate: 1000, burst: 500 });
    await h.service.limitDisk({ handle, byte_limit: 1 << 20 }, conn.ctx);
    const limits = h.service.registry.get(handle).record.limits;
    expect(limits).toEqual({ cpu_limit_in_shares: 2, bandwidth: { rate: 1000, burst: 500 }, disk: { byte_limit: 1 << 20 } });
  });

  it('the insecure backend answers "not implemented", as the original\'s did', async () => {
    h = await makeHarness({ backend: new FakeBackend({ name: 'insecure' }) });
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    for (const [name, , call] of REQUESTS.filter(([n]) => n.startsWith('Limit'))) {
      await expect(call(h.service, handle, conn.ctx), name).rejects.toThrow(/^not implemented$/);
    }
    expect(h.backend.calls.map((c) => c.step)).toEqual(['create']);
  });
});

describe('info', () => {
  it('Infos that come while the host figures are being read share that read; a later one reads again', async () => {
    h = await makeHarness();
    const conn = h.connect();
    const { handle } = await h.service.create({}, conn.ctx);
    const id = h.service.registry.get(handle).id;
    const gate = h.backend.hold('info');
    const first = h.service.infoRequest({ handle }, conn.ctx);
    await gate.reached;
    const second = h.service.infoRequest({ handle }, conn.ctx);
    gate.release();
    const [a, b] = await Promise.all([first, second]);
    expect([a.state, b.state]).toEqual(['active', 'active']);
    expect(h.backend.stepsOf(id).filter((s) => s === 'info')).toHaveLength(1);
    // Each answer is its own object: the daemon's part (state, jobs) is never shared.
    expect(a).not.toBe(b);
    await h.service.infoRequest({ handle }, conn.ctx);
    expect(h.backend.stepsOf(id).filter((s) => s === 'info')).toHaveLength(2);
  });
});
