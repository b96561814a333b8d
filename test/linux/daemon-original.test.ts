// Through the real daemon (Linux backend): limit requests without a value answer
// the setting in force, 64-bit values travel exactly (library, bin/warden, the
// health port's JSON), and the original's error texts for create and the states.
// Pool 10.247.16.0/24, host ports 32000-32099, uids 43000-43063.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import { LinuxDaemon } from '../support/linux/linux-daemon.ts';
import { runCli, type CliResult } from '../support/cli.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';

/** memory.limit_in_bytes of a cgroup v1 group without a limit (2^63 rounded down to 4 KiB pages). */
const UNLIMITED = 9223372036854771712n;
const MiB = 1024 * 1024;

let d: LinuxDaemon;
let client: WardenClient;
let scratch: string;

beforeAll(async () => {
  // No default limits (server.container_*_limit): what the original's fresh container answered.
  d = await LinuxDaemon.start({
    pool: '10.247.16.0/24', portStart: 32000, uidStart: 43000,
    server: { container_memory_limit: null, container_disk_limit: null },
    // The bulk Info JSON is read from the TCP port here (off by default: any local user reaches it).
    health: { containers_on_tcp: true },
  });
  client = await d.client();
  scratch = await mkdtemp(join(tmpdir(), 'warden-original-'));
});

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
});

const cgroupText = async (dir: string | undefined, file: string) => (await readFile(join(dir!, file), 'utf8')).trim();

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, { socket: d.daemon.socket, scratch });
}

function httpGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve(body));
    });
    req.once('error', reject);
    req.end();
  });
}

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => client);

describe('limits without a value answer the setting in force', () => {
  it('LimitMemory: the cgroup says unlimited as 9223372036854771712, exactly, everywhere', async () => {
    const { handle, id } = await d.create(client);
    const cg = await d.cgroups(id);
    expect(await cgroupText(cg.memory, 'memory.limit_in_bytes')).toBe(String(UNLIMITED));
    expect(await client.limitMemory({ handle })).toEqual({ limit_in_bytes: UNLIMITED });
    expect((await client.info({ handle })).memory_stat?.hierarchical_memory_limit).toBe(UNLIMITED);

    // bin/warden prints it as it is (not 9223372036854772000).
    const out = await cli(['--', 'limit_memory', '--handle', handle]);
    expect(out).toEqual({ code: 0, stdout: `limit_in_bytes : ${UNLIMITED}\n`, stderr: '' });
    // The health port's JSON too.
    const json = await httpGet(d.daemon.healthPort, `/containers?handle=${handle}`);
    expect(json).toContain(`"hierarchical_memory_limit":${UNLIMITED}`);

    // A set limit is answered as the kernel keeps it, also without a value afterwards.
    expect(await client.limitMemory({ handle, limit_in_bytes: 100 * MiB })).toEqual({ limit_in_bytes: 100 * MiB });
    expect(await client.limitMemory({ handle })).toEqual({ limit_in_bytes: 100 * MiB });
    // Above 2^53 and not a whole page: the kernel rounds down to 2^60, and that comes back.
    expect(await client.limitMemory({ handle, limit_in_bytes: 2n ** 60n + 1n })).toEqual({ limit_in_bytes: 2n ** 60n });
    expect(await cgroupText(cg.memory, 'memory.limit_in_bytes')).toBe(String(2n ** 60n));
    expect(await client.limitMemory({ handle })).toEqual({ limit_in_bytes: 2n ** 60n });
    await client.destroy({ handle });
  });

  it('LimitCpu: the shares in force, as the kernel keeps them (1 reads back as 2)', async () => {
    const { handle, id } = await d.create(client);
    const cg = await d.cgroups(id);
    const shares = Number(await cgroupText(cg.cpu, 'cpu.shares'));
    expect(await client.limitCpu({ handle })).toEqual({ limit_in_shares: shares });
    expect(await client.limitCpu({ handle, limit_in_shares: 1 })).toEqual({ limit_in_shares: 2 });
    expect(await client.limitCpu({ handle, limit_in_shares: 100 })).toEqual({ limit_in_shares: 100 });
    expect(await client.limitCpu({ handle })).toEqual({ limit_in_shares: 100 });
    await client.destroy({ handle });
  });

  it('LimitDisk: every field of the limits in force, 0 while there is none', async () => {
    const { handle } = await d.create(client);
    expect(await client.limitDisk({ handle })).toEqual({
      byte_limit: 0, byte: 0, byte_soft: 0, byte_hard: 0,
      block_limit: 0, block: 0, block_soft: 0, block_hard: 0,
      inode_limit: 0, inode: 0, inode_soft: 0, inode_hard: 0,
    });
    await client.limitDisk({ handle, byte_limit: 10 * MiB });
    expect(await client.limitDisk({ handle })).toMatchObject({ byte_limit: 10 * MiB, byte_hard: 10 * MiB, block_limit: 10 * 1024 });
    await client.destroy({ handle });
  });
});

describe('limits across a restart', () => {
  it('a new daemon reads a snapshot with a limit above 2^53 and answers the limits in force', async () => {
    const { handle, id } = await d.create(client);
    await client.limitCpu({ handle, limit_in_shares: 100 });
    await client.limitMemory({ handle, limit_in_bytes: 2n ** 60n + 1n });
    expect(await d.daemon.drain()).toBe(0);
    // The limit asked for, exactly, in the snapshot the next daemon reads.
    expect(await readFile(join(d.settings.depot, id, 'snapshot.json'), 'utf8')).toMatch(/"limit_memory": 1152921504606846977\b/);
    await d.restart();
    client = await d.client();
    expect((await client.list()).handles).toContain(handle);
    expect(await client.limitCpu({ handle })).toEqual({ limit_in_shares: 100 });
    expect(await client.limitMemory({ handle })).toEqual({ limit_in_bytes: 2n ** 60n });
    await client.destroy({ handle });
  }, 120_000);
});

describe("the original's error texts", () => {
  it('wraps a memory limit the kernel refuses as "Failed setting memory limit: ..."', async () => {
    const { handle } = await d.create(client);
    await expect(client.limitMemory({ handle, limit_in_bytes: 4096 })).rejects.toThrow(/^Failed setting memory limit: memory limit 4096 /);
    await client.destroy({ handle });
  });

  it('checks the rootfs and bind mount sources of a create', async () => {
    const before = (await client.list()).handles ?? [];
    const rootfs = join(scratch, 'no-rootfs');
    await expect(client.create({ rootfs })).rejects.toThrow(new RegExp(`^rootfs ${rootfs} not found$`));
    const src = join(scratch, 'no-source');
    await expect(client.create({ bind_mounts: [{ src_path: src, dst_path: '/mnt/x', mode: 1 }] })).rejects.toThrow(
      new RegExp(`^Source path for bind mount does not exist: ${src}$`),
    );
    expect((await client.list()).handles ?? []).toEqual(before);
  });

  it('names every allowed state inside one pair of quotes while a container is born', async () => {
    // A Linux create takes a while: ask for Info while it runs (the handle is listed from the start).
    const other = await d.client();
    let seen: string | undefined;
    for (let i = 0; i < 5 && seen === undefined; i++) {
      const handle = `born-${i}`;
      const created = client.create({ handle });
      for (;;) {
        const listed = ((await other.list()).handles ?? []).includes(handle);
        const settled = await Promise.race([created.then(() => true, () => true), Promise.resolve(false)]);
        if (listed) {
          const answer = await other.info({ handle }).then((r) => r.state, (e: Error) => e.message);
          if (answer !== 'active') seen = answer;
          break;
        }
        if (settled) break;
      }
      await created;
      const info = await client.info({ handle });
      d.ids.add(info.container_path!.split('/').pop()!);
      await client.destroy({ handle });
    }
    expect(seen).toBe("Container state must be one of 'active, stopped', current state is 'born'");
  });
});
