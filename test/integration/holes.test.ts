// Through the real daemon (insecure backend), what no other file checked: a refused
// Create or NetIn takes nothing from the other pools; NetIn with a host port outside
// the pool or already taken; LimitCpu and the other limits on a stopped or destroyed
// container (the state rules come before the original's "not implemented"); a Stream
// cut short by Destroy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import type { StreamResponse } from '../../src/protocol/types.ts';
import { TestDaemon } from '../support/daemon.ts';
import { settlesWithin } from '../support/wait.ts';
import { expectStreamEndsOnDestroy } from '../support/stream-cut.ts';

const text = (b: unknown) => Buffer.from((b as Uint8Array) ?? []).toString('utf8');

/** The daemon's free count for a pool, from /metrics on its health port. */
async function poolFree(d: TestDaemon, pool: 'network' | 'uid' | 'port'): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${d.healthPort}/metrics`);
  const m = new RegExp(`^warden_pool_free\\{pool="${pool}"\\} (\\d+)$`, 'm').exec(await res.text());
  if (!m) throw new Error(`no warden_pool_free for ${pool}`);
  return Number(m[1]);
}

let d: TestDaemon;
let c: WardenClient;

beforeAll(async () => {
  // Three host ports, one uid.
  d = await TestDaemon.start({ port: { pool_start_port: 61400, pool_size: 3 }, user: { pool_start_uid: 61400, pool_size: 1 } });
  c = await d.client();
});

afterAll(async () => {
  await c?.close();
  await d?.cleanup();
});

describe('pools running out', () => {
  it('a Create refused for want of a uid gives its network back; a NetIn refused for want of a port takes none', async () => {
    const { handle } = await c.create({});
    try {
      const networks = await poolFree(d, 'network');
      await expect(c.create({})).rejects.toThrow(/^Warden::Pool::Uid::NoUidAvailable$/);
      expect(await poolFree(d, 'network')).toBe(networks);
      expect((await c.list()).handles).toEqual([handle]);

      for (let i = 0; i < 3; i++) await c.netIn({ handle });
      expect(await poolFree(d, 'port')).toBe(0);
      await expect(c.netIn({ handle })).rejects.toThrow(/^Warden::Pool::Port::NoPortAvailable$/);
      expect((await c.info({ handle })).state).toBe('active');
    } finally {
      await c.destroy({ handle });
    }
    // Destroy gives back all three ports and the uid.
    expect(await poolFree(d, 'port')).toBe(3);
    expect(await poolFree(d, 'uid')).toBe(1);
  });
});

describe('NetIn with an explicit host port', () => {
  it('outside the pool: taken as asked (as the original did), twice too, and not counted', async () => {
    const { handle } = await c.create({});
    try {
      expect(await c.netIn({ handle, host_port: 61500 })).toEqual({ host_port: 61500, container_port: 61500 });
      expect(await c.netIn({ handle, host_port: 61500 })).toEqual({ host_port: 61500, container_port: 61500 });
      expect(await poolFree(d, 'port')).toBe(3);
      await expect(c.netIn({ handle, host_port: 65536 })).rejects.toThrow(/^ports must be at most 65535$/);
    } finally {
      await c.destroy({ handle });
    }
  });

  it('inside the pool: reserved; refused while taken (ours: the original mapped it twice)', async () => {
    const { handle } = await c.create({});
    try {
      expect(await c.netIn({ handle, host_port: 61401 })).toEqual({ host_port: 61401, container_port: 61401 });
      expect(await poolFree(d, 'port')).toBe(2);
      await expect(c.netIn({ handle, host_port: 61401 })).rejects.toThrow(/^port 61401 is already in use$/);
      // The pool does not hand it out either.
      const next = [(await c.netIn({ handle })).host_port, (await c.netIn({ handle })).host_port];
      expect(next.sort()).toEqual([61400, 61402]);
      // The refusals took nothing more.
      expect(await poolFree(d, 'port')).toBe(0);
    } finally {
      await c.destroy({ handle });
    }
  });
});

describe('limits on a stopped or destroyed container', () => {
  it("a stopped container passes the state rule (active or stopped) and gets the insecure backend's \"not implemented\"", async () => {
    const { handle } = await c.create({});
    try {
      await c.stop({ handle });
      expect((await c.info({ handle })).state).toBe('stopped');
      await expect(c.limitCpu({ handle, limit_in_shares: 10 })).rejects.toThrow(/^not implemented$/);
      await expect(c.limitCpu({ handle })).rejects.toThrow(/^not implemented$/);
      await expect(c.limitMemory({ handle, limit_in_bytes: 1 << 20 })).rejects.toThrow(/^not implemented$/);
      await expect(c.limitDisk({ handle, byte_limit: 1 << 20 })).rejects.toThrow(/^not implemented$/);
      await expect(c.limitBandwidth({ handle, rate: 1000, burst: 1000 })).rejects.toThrow(/^not implemented$/);
      // NetIn, by contrast, wants an active container.
      await expect(c.netIn({ handle })).rejects.toThrow("Container state must be one of 'active', current state is 'stopped'");
    } finally {
      await c.destroy({ handle });
    }
    await expect(c.limitCpu({ handle, limit_in_shares: 10 })).rejects.toThrow(/^unknown handle$/);
    await expect(c.limitMemory({ handle })).rejects.toThrow(/^unknown handle$/);
  });
});

describe('Stream', () => {
  it('cut short by Destroy: the stream ends with what was written and the exit status, it does not hang', async () => {
    const { handle } = await c.create({});
    const streamer = await d.client();
    await expectStreamEndsOnDestroy(c, streamer, handle);
    await streamer.close();
  });
});
