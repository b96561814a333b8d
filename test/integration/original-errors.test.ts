// The error answers a client can see, word for word as the original Warden gave
// them (clients match on these texts), and uint64 values that travel exactly:
// the real daemon (insecure backend) through the client library, raw frames and
// bin/warden.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import { SERVER_BIN, TestDaemon } from '../support/daemon.ts';
import { runCli, type CliResult } from '../support/cli.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';

const STOPPED = "Container state must be one of 'active', current state is 'stopped'";

let d: TestDaemon;
let c: WardenClient;
let scratch: string;

beforeAll(async () => {
  d = await TestDaemon.start();
  c = await d.client();
  scratch = mkdtempSync(join(tmpdir(), 'warden-errors-'));
});

afterAll(async () => {
  await c?.close().catch(() => {});
  await d?.cleanup();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, { socket: d.socket, scratch });
}

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => c);

describe('lifecycle errors', () => {
  it('refuses to create a handle twice, and a destroyed handle is unknown', async () => {
    await c.create({ handle: 'twice' });
    await expect(c.create({ handle: 'twice' })).rejects.toThrow(/^container with handle: twice already exists\.$/);
    await c.destroy({ handle: 'twice' });
    await expect(c.destroy({ handle: 'twice' })).rejects.toThrow(/^unknown handle$/);
    await expect(c.info({ handle: 'twice' })).rejects.toThrow(/^unknown handle$/);
    await expect(c.run({ handle: 'never-made', script: 'true' })).rejects.toThrow(/^unknown handle$/);
  });

  it('answers "no such job" for a job id it does not know or has forgotten', async () => {
    const { handle } = await c.create({});
    await expect(c.link({ handle, job_id: 4242 })).rejects.toThrow(/^no such job$/);
    await expect(c.stream({ handle, job_id: 4242 })[Symbol.asyncIterator]().next()).rejects.toThrow(/^no such job$/);
    const { job_id } = await c.spawn({ handle, script: 'true' });
    await c.link({ handle, job_id });
    await expect(c.link({ handle, job_id })).rejects.toThrow(/^no such job$/);
    await c.destroy({ handle });
  });

  it("names the allowed states and the current one in the original's words", async () => {
    const { handle } = await c.create({});
    await c.stop({ handle });
    await expect(c.spawn({ handle, script: 'true' })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    await expect(c.run({ handle, script: 'true' })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    await expect(c.netIn({ handle })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    await expect(c.netOut({ handle, network: '10.0.0.1' })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    await expect(c.copyIn({ handle, src_path: scratch, dst_path: '/tmp' })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    // Allowed when stopped: stop again, info, destroy.
    await c.stop({ handle });
    expect((await c.info({ handle })).state).toBe('stopped');
    await c.destroy({ handle });
  });

  it('checks the rootfs and bind mount sources of a create and leaves nothing behind', async () => {
    const before = (await c.list()).handles ?? [];
    await expect(c.create({ rootfs: join(scratch, 'no-rootfs') })).rejects.toThrow(new RegExp(`^rootfs ${join(scratch, 'no-rootfs')} not found$`));
    const missing = join(scratch, 'no-source');
    await expect(c.create({ bind_mounts: [{ src_path: missing, dst_path: '/mnt/x', mode: 0 }] })).rejects.toThrow(
      new RegExp(`^Source path for bind mount does not exist: ${missing}$`),
    );
    expect((await c.list()).handles ?? []).toEqual(before);
  });
});

describe('pool errors', () => {
  it('answers "Could not acquire network" when the pool is used up, and names a /30 it cannot have', async () => {
    // Two /30s (10.253.7.0 and .4) that come back only after a minute.
    const n = await TestDaemon.start({ network: { pool_start_address: '10.253.7.0', pool_size: 2, release_delay: 60 } });
    try {
      const k = await n.client();
      const a = await k.create({ network: '10.253.7.5' });
      // Any address of a taken /30 names that /30's network address.
      await expect(k.create({ network: '10.253.7.6' })).rejects.toThrow(/^Could not acquire network: 10\.253\.7\.4$/);
      await expect(k.create({ network: '10.253.99.1' })).rejects.toThrow(/^Could not acquire network: 10\.253\.99\.0$/);
      const b = await k.create({});
      await expect(k.create({})).rejects.toThrow(/^Could not acquire network$/);
      await expect(k.create({ network: '10.253.7.2' })).rejects.toThrow(/^Could not acquire network: 10\.253\.7\.0$/);
      // A released /30 waits out the release delay: still none to be had.
      await k.destroy({ handle: b.handle });
      await expect(k.create({})).rejects.toThrow(/^Could not acquire network$/);
      await expect(k.create({ network: '10.253.7.1' })).rejects.toThrow(/^Could not acquire network: 10\.253\.7\.0$/);
      await k.destroy({ handle: a.handle });
      await k.close();
    } finally {
      await n.cleanup();
    }
  });

  it("answers the original uid and port pools' errors when none is left", async () => {
    // One uid, two host ports.
    const p = await TestDaemon.start({ port: { pool_start_port: 61300, pool_size: 2 }, user: { pool_start_uid: 61300, pool_size: 1 } });
    try {
      const k = await p.client();
      const { handle } = await k.create({});
      await expect(k.create({})).rejects.toThrow(/^Warden::Pool::Uid::NoUidAvailable$/);
      await k.netIn({ handle });
      await k.netIn({ handle });
      await expect(k.netIn({ handle })).rejects.toThrow(/^Warden::Pool::Port::NoPortAvailable$/);
      await k.destroy({ handle });
      await k.close();
    } finally {
      await p.cleanup();
    }
  });
});

describe('uint64 values', () => {
  // 2^53 + 1: the first integer a double cannot hold.
  const big = 9007199254740993n;

  it('reach a job exactly from the client library', async () => {
    const { handle } = await c.create({});
    const r = await c.run({ handle, script: "grep 'Max address space' /proc/self/limits", rlimits: { as: big } });
    expect(r.exit_status).toBe(0);
    expect(Buffer.from(r.stdout as Uint8Array).toString()).toMatch(/^Max address space\s+9007199254740993\s+9007199254740993\s+bytes/);
    // 2^64 - 1 is RLIM_INFINITY.
    const inf = await c.run({ handle, script: 'ulimit -v', rlimits: { as: 2n ** 64n - 1n } });
    expect(Buffer.from(inf.stdout as Uint8Array).toString()).toBe('unlimited\n');
    await c.destroy({ handle });
  });

  it('reach a job exactly from the config (container_rlimits) and show in --check-config', async () => {
    const raw = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
    const k = await TestDaemon.start({ server: { container_rlimits: { as: raw(String(big)) } } });
    try {
      const checked = await new Promise<string>((resolve, reject) =>
        execFile(SERVER_BIN, ['--check-config', k.configPath], (err, stdout) => (err ? reject(err) : resolve(stdout))),
      );
      expect(checked).toMatch(/^ +as: 9007199254740993$/m);
      const kc = await k.client();
      const { handle } = await kc.create({});
      const r = await kc.run({ handle, script: "grep 'Max address space' /proc/self/limits" });
      expect(Buffer.from(r.stdout as Uint8Array).toString()).toMatch(/^Max address space\s+9007199254740993\s+9007199254740993\s+bytes/);
      await kc.destroy({ handle });
      // SIGHUP compares the re-read config with this one, bigint and all, and serves on.
      k.proc!.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 500));
      expect(await kc.ping()).toEqual({});
      expect(k.proc!.exitCode).toBeNull();
      await kc.close();
    } finally {
      await k.cleanup();
    }
  });

  it('reach a job exactly from bin/warden', async () => {
    const { handle } = await c.create({});
    const r = await cli(['--', 'run', '--handle', handle, '--rlimits.as', String(big), '--script', "grep -o 'Max address space *[0-9]*' /proc/self/limits"]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/Max address space +9007199254740993\n/);
    await c.destroy({ handle });
  });
});
