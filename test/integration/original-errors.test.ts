// The error answers a client can see, word for word as the original Warden gave
// them (clients match on these texts), and uint64 values that travel exactly:
// the real daemon (insecure backend) through the client library, raw frames and
// bin/warden.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVER_BIN, TestDaemon } from '../support/daemon.ts';
import { cliDaemonPerFile } from '../support/cli-daemon.ts';

const STOPPED = "Container state must be one of 'active', current state is 'stopped'";

const file = cliDaemonPerFile('warden-errors-');
const cli = (args: string[]) => file.cli(args);

describe('lifecycle errors', () => {
  it('refuses to create a handle twice, and a destroyed handle is unknown', async () => {
    await file.client.create({ handle: 'twice' });
    await expect(file.client.create({ handle: 'twice' })).rejects.toThrow(/^container with handle: twice already exists\.$/);
    await file.client.destroy({ handle: 'twice' });
    await expect(file.client.destroy({ handle: 'twice' })).rejects.toThrow(/^unknown handle$/);
    await expect(file.client.info({ handle: 'twice' })).rejects.toThrow(/^unknown handle$/);
    await expect(file.client.run({ handle: 'never-made', script: 'true' })).rejects.toThrow(/^unknown handle$/);
  });

  it('answers "no such job" for a job id it does not know or has forgotten', async () => {
    const { handle } = await file.client.create({});
    await expect(file.client.link({ handle, job_id: 4242 })).rejects.toThrow(/^no such job$/);
    await expect(file.client.stream({ handle, job_id: 4242 })[Symbol.asyncIterator]().next()).rejects.toThrow(/^no such job$/);
    const { job_id } = await file.client.spawn({ handle, script: 'true' });
    await file.client.link({ handle, job_id });
    await expect(file.client.link({ handle, job_id })).rejects.toThrow(/^no such job$/);
    await file.client.destroy({ handle });
  });

  it("names the allowed states and the current one in the original's words", async () => {
    const { handle } = await file.client.create({});
    await file.client.stop({ handle });
    await expect(file.client.spawn({ handle, script: 'true' })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    await expect(file.client.run({ handle, script: 'true' })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    await expect(file.client.netIn({ handle })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    await expect(file.client.netOut({ handle, network: '10.0.0.1' })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    await expect(file.client.copyIn({ handle, src_path: file.scratch, dst_path: '/tmp' })).rejects.toThrow(new RegExp(`^${STOPPED}$`));
    // Allowed when stopped: stop again, info, destroy.
    await file.client.stop({ handle });
    expect((await file.client.info({ handle })).state).toBe('stopped');
    await file.client.destroy({ handle });
  });

  it('checks the rootfs and bind mount sources of a create and leaves nothing behind', async () => {
    const before = (await file.client.list()).handles ?? [];
    await expect(file.client.create({ rootfs: join(file.scratch, 'no-rootfs') })).rejects.toThrow(new RegExp(`^rootfs ${join(file.scratch, 'no-rootfs')} not found$`));
    const missing = join(file.scratch, 'no-source');
    await expect(file.client.create({ bind_mounts: [{ src_path: missing, dst_path: '/mnt/x', mode: 0 }] })).rejects.toThrow(
      new RegExp(`^Source path for bind mount does not exist: ${missing}$`),
    );
    expect((await file.client.list()).handles ?? []).toEqual(before);
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
    const { handle } = await file.client.create({});
    const r = await file.client.run({ handle, script: "grep 'Max address space' /proc/self/limits", rlimits: { as: big } });
    expect(r.exit_status).toBe(0);
    expect(Buffer.from(r.stdout as Uint8Array).toString()).toMatch(/^Max address space\s+9007199254740993\s+9007199254740993\s+bytes/);
    // 2^64 - 1 is RLIM_INFINITY.
    const inf = await file.client.run({ handle, script: 'ulimit -v', rlimits: { as: 2n ** 64n - 1n } });
    expect(Buffer.from(inf.stdout as Uint8Array).toString()).toBe('unlimited\n');
    await file.client.destroy({ handle });
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
    const { handle } = await file.client.create({});
    const r = await cli(['--', 'run', '--handle', handle, '--rlimits.as', String(big), '--script', "grep -o 'Max address space *[0-9]*' /proc/self/limits"]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/Max address space +9007199254740993\n/);
    await file.client.destroy({ handle });
  });
});
