// A private Linux backend host for one test file: its own depot (a 1 GiB btrfs image
// under /tmp), runtime root, cgroup parent and address pool, so test files can run
// in parallel with each other and with a daemon on the same machine.
import { randomBytes, randomInt } from 'node:crypto';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { newContainerRecord, type ContainerRecord } from '../../../src/model/records.ts';
import type { JobLaunch, JobSpec } from '../../../src/backends/backend.ts';
import type { LinuxHostSettings } from '../../../src/backends/linux/settings.ts';
import { linuxTasks } from '../../../src/backends/linux/tasks.ts';
import { jobLaunch } from '../../../src/backends/linux/jobs/launch.ts';
import { runtimeOf } from '../../../src/backends/linux/container/facts.ts';
import { procStat } from '../../../src/host/procfs.ts';

export const TEST_ROOTFS = '/tmp/warden-test-rootfs';
const BUILD = fileURLToPath(new URL('../../../scripts/build-rootfs', import.meta.url));

export async function ensureTestRootfs(): Promise<string> {
  if (await stat(join(TEST_ROOTFS, 'bin', 'bash')).catch(() => undefined)) return TEST_ROOTFS;
  // Parallel test files may race to build it; the loser's rename fails but the tree is there.
  await execa(BUILD, ['--test', TEST_ROOTFS]).catch(async (err) => {
    if (!(await stat(join(TEST_ROOTFS, 'bin', 'bash')).catch(() => undefined))) throw err;
  });
  return TEST_ROOTFS;
}

export function randomId(): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuv';
  return Array.from(randomBytes(11), (b) => alphabet[b % 32]).join('');
}

export interface TestHost {
  host: LinuxHostSettings;
  base: string;
  /** A record ready for linux.create (the n-th /30 of the pool). */
  record(overrides?: Partial<ContainerRecord>): ContainerRecord;
  /** Creates a container and remembers it for cleanup. */
  create(overrides?: Partial<ContainerRecord>): Promise<ContainerRecord>;
  destroy(c: ContainerRecord): Promise<void>;
  /** Runs a script as a job the way the daemon's supervisor does. */
  job(c: ContainerRecord, script: string, opts?: Partial<JobSpec>): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  cleanup(): Promise<void>;
}

export async function makeTestHost(): Promise<TestHost> {
  const tag = randomBytes(4).toString('hex');
  const base = `/tmp/warden-linux-test-${tag}`;
  const rootfs = await ensureTestRootfs();
  const octet2 = randomInt(100, 200);
  const octet3 = randomInt(0, 256);
  const host: LinuxHostSettings = {
    runtime: 'runc',
    runtimeRoot: `/run/warden-test-${tag}/runc`,
    cgroupParent: `warden-test-${tag}`,
    depot: join(base, 'depot'),
    diskQuota: true,
    depotImage: join(base, 'depot.img'),
    depotImageBytes: 1024 ** 3,
    baseRootfs: rootfs,
    dnsServers: ['10.0.0.53'],
    mtu: 1500,
    network: { poolNetwork: `10.${octet2}.${octet3}.0/24`, allowNetworks: [], denyNetworks: [], allowHostAccess: false },
  };
  await mkdir(base, { recursive: true });
  await linuxTasks['linux.setupHost']({ host });
  const created = new Map<string, ContainerRecord>();
  let next = 0;
  let uid = 20000 + randomInt(0, 20000);

  const record = (overrides: Partial<ContainerRecord> = {}): ContainerRecord => {
    const n = next++;
    const id = overrides.id ?? randomId();
    return newContainerRecord({
      id,
      handle: id,
      state: 'born',
      path: join(host.depot, id),
      network: `10.${octet2}.${octet3}.${n * 4}`,
      host_ip: `10.${octet2}.${octet3}.${n * 4 + 1}`,
      container_ip: `10.${octet2}.${octet3}.${n * 4 + 2}`,
      uid: uid++,
      created_at: Date.now(),
      ...overrides,
    });
  };

  const t: TestHost = {
    host,
    base,
    record,
    async create(overrides) {
      const c = record(overrides);
      created.set(c.id, c);
      c.backend = { ...(await linuxTasks['linux.create']({ host, c })) };
      c.state = 'active';
      return c;
    },
    async destroy(c) {
      await linuxTasks['linux.destroy']({ host, c });
      created.delete(c.id);
    },
    async job(c, script, opts = {}) {
      const dir = opts.dir ?? join(c.path, 'jobs', String(randomInt(1, 1e9)));
      await mkdir(dir, { recursive: true });
      const spec: JobSpec = { id: 1, privileged: false, rlimits: {}, env: { LANG: 'C' }, ...opts, dir };
      return runJobLaunch(jobLaunch(runtimeOf(c, host), c, spec), dir, script);
    },
    async cleanup() {
      const errors: string[] = [];
      for (const c of created.values()) {
        await linuxTasks['linux.destroy']({ host, c }).catch((e: Error) => errors.push(e.message));
      }
      const ids = [...created.keys()];
      await linuxTasks['linux.sweep']({ host, claimed: [], only: ids }).catch((e: Error) => errors.push(e.message));
      await linuxTasks['linux.teardownHost']({ host }).catch((e: Error) => errors.push(e.message));
      await rm(base, { recursive: true, force: true });
      await rm(`/run/warden-test-${tag}`, { recursive: true, force: true });
      if (errors.length) throw new Error(`test host cleanup: ${errors.join('; ')}`);
    },
  };
  return t;
}

/**
 * Runs a JobLaunch as the job supervisor would, without it: its files written into
 * the job's folder, its fd3 file opened as fd 3, the script on stdin; the job's
 * `pid` and `exit_status` files written as the supervisor writes them.
 */
export async function runJobLaunch(launch: JobLaunch, dir: string, script: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  for (const [name, content] of Object.entries(launch.files ?? {})) await writeFile(join(dir, name), content);
  const fd3 = launch.fd3 === undefined ? undefined : openSync(join(dir, launch.fd3), 'w');
  try {
    const [file, ...args] = launch.argv;
    const child = spawn(file!, args, { cwd: launch.cwd, env: launch.env, stdio: ['pipe', 'pipe', 'pipe', fd3 ?? 'ignore'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve(code ?? -1));
    });
    exited.catch(() => undefined); // awaited below; a spawn error must not count as unhandled meanwhile
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(script);
    // The job's pids, as its supervisor records them: kill and stop find the job's
    // process in the container as runc's child (src/backends/linux/jobs/leader.ts).
    const [runc, self] = [await procStat(child.pid ?? 0), await procStat(process.pid)];
    if (runc && self) await writeFile(join(dir, 'pid'), `${runc.pid} ${runc.startTime} ${self.pid} ${self.startTime}\n`);
    const exitCode = await exited;
    await writeFile(join(dir, 'exit_status'), `${exitCode}\n`);
    // As execa gave them: without the final newline.
    return { exitCode, stdout: stdout.replace(/\n$/, ''), stderr: stderr.replace(/\n$/, '') };
  } finally {
    if (fd3 !== undefined) closeSync(fd3);
  }
}
