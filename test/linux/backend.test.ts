// LinuxBackend through the daemon's WorkerPool (root): the same path the daemon
// takes, with a private depot, runtime root, cgroup parent and address pool.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { execa } from 'execa';
import { defaultConfig } from '../../src/config/config.ts';
import { WorkerPool } from '../../src/workers/pool.ts';
import { LinuxBackend } from '../../src/backends/linux/linux-backend.ts';
import type { ContainerRecord } from '../../src/model/records.ts';
import { ensureTestRootfs, randomId, runJobLaunch } from '../support/linux/linux-host.ts';

const tag = randomBytes(4).toString('hex');
const base = `/tmp/warden-linux-test-${tag}`;
const net = `10.${randomInt(100, 200)}.${randomInt(0, 256)}`;
let pool: WorkerPool;
let backend: LinuxBackend;
let c: ContainerRecord | undefined;
// Piscina workers load workers/tasks.ts natively: that needs Node >= 23 (node_modules/.bin/node),
// as npm test provides (PATH=$PWD/node_modules/.bin:$PATH vitest run ...).

beforeAll(async () => {
  const config = defaultConfig({ localPortRange: [32768, 61000] });
  config.server.container_depot_path = join(base, 'depot');
  config.server.container_rootfs_path = await ensureTestRootfs();
  config.network.pool_network = `${net}.0/24`;
  config.network.dns_servers = ['10.0.0.53'];
  await mkdir(base, { recursive: true });
  pool = new WorkerPool({ threads: 1 });
  backend = new LinuxBackend(config, pool, {
    runtimeRoot: `/run/warden-test-${tag}/runc`,
    cgroupParent: `warden-test-${tag}`,
    depotImageBytes: 1024 ** 3,
  });
  await backend.setupHost();
  await backend.setupHost(); // idempotent: the depot is mounted once
});

afterAll(async () => {
  if (c) await backend.destroy(c).catch(() => undefined);
  if (pool) {
    await pool.run('linux.teardownHost', { host: backend.settings }).catch(() => undefined);
    await pool.close();
  }
  await rm(base, { recursive: true, force: true });
  await rm(`/run/warden-test-${tag}`, { recursive: true, force: true });
});

it('creates, runs a job, reports info and destroys through the pool', async () => {
  const id = randomId();
  c = {
    id, handle: id, state: 'born', path: join(backend.settings.depot, id),
    network: `${net}.0`, host_ip: `${net}.1`, container_ip: `${net}.2`, uid: 30000 + randomInt(0, 10000),
    ports: [], grace_time: null, bind_mounts: [], rootfs: '', events: [], net_in: [], net_out: [],
    limits: {}, jobs: [], created_at: Date.now(), backend: {},
  };
  await backend.create(c);
  expect(c.backend.initPid).toBeTypeOf('number');

  const dir = join(c.path, 'jobs', '1');
  await mkdir(dir, { recursive: true });
  const launch = backend.jobLaunch(c, { id: 1, dir, privileged: false, rlimits: { nofile: 1_000_000 }, env: { LANG: 'en_US.UTF-8' } });
  const r = await runJobLaunch(launch, dir, 'echo $LANG; ulimit -n; exit 5');
  expect(r.exitCode).toBe(5);
  // Above our hard limit (no CAP_SYS_RESOURCE): clamped rather than failing the job.
  expect(r.stdout.split('\n')[0]).toBe('en_US.UTF-8');
  expect(Number(r.stdout.split('\n')[1])).toBeLessThan(1_000_000);

  const info = await backend.info(c);
  expect(info.cpu_stat?.usage).toBeGreaterThan(0);
  expect(await backend.limitDisk(c, { byte_limit: 5_000_000 })).toMatchObject({ byte_limit: 5_000_000 });
  await expect(backend.limitDisk(c, { inode_hard: 5 })).rejects.toThrow(/inode_hard is not supported/);
  expect(await backend.recoverAll([c])).toEqual([{ alive: true }]);

  await backend.stop(c, true);
  await backend.destroy(c);
  expect(await backend.recoverAll([c])).toEqual([{ alive: false }]);
  c = undefined;
});
