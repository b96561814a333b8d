// The daemon's shared spawner (src/host/spawner.ts): started by the main thread
// before anything else, reached by the worker threads over a unix socket in a
// private folder, and replaced by a spawner of the worker's own when it is gone.
// Nothing of it outlives the daemon: its folder goes when it ends, also when the
// daemon was killed, and the next daemon removes the folder of one killed with it.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { removeStaleSharedSpawners, startSharedSpawner, type SharedSpawner } from '../../src/host/spawner.ts';
import { runHost } from '../../src/host/run.ts';
import { pidAlive } from '../support/pids.ts';
import { waitFor } from '../support/wait.ts';

const WORKER = new URL('../support/spawner-worker.ts', import.meta.url);
const workers: Worker[] = [];

afterAll(async () => {
  await Promise.all(workers.map((w) => w.terminate()));
});

function worker(spawner: SharedSpawner | undefined): Worker {
  const w = new Worker(WORKER, { workerData: { spawner } });
  workers.push(w);
  return w;
}

/** Has the worker run one command; the pid of the process that started it. */
function commandParent(w: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    w.once('message', (m: { ppid?: number; error?: string }) => (m.error ? reject(new Error(m.error)) : resolve(m.ppid!)));
    w.postMessage('run');
  });
}

/** This process's children that run spawner-process.js. */
async function spawnerChildren(): Promise<number[]> {
  const out = await runHost('pgrep', ['-P', String(process.pid), '-f', 'spawner-process.js'], { context: 't', allowFailure: true });
  return out.stdout.split('\n').filter(Boolean).map(Number);
}

describe('the shared spawner', () => {
  const shared = startSharedSpawner()!;

  it('listens in a folder only the daemon user can enter', async () => {
    expect(shared).toBeDefined();
    await waitFor('the socket', () => existsSync(shared.socket));
    const dir = statSync(dirname(shared.socket));
    expect(dir.mode & 0o777).toBe(0o700);
    expect(dir.uid).toBe(process.getuid!());
    expect(statSync(shared.socket).isSocket()).toBe(true);
  });

  it('starts the commands of every worker and of the main thread: one spawner for all', async () => {
    const [a, b] = [worker(shared), worker(shared)];
    const parents = await Promise.all([commandParent(a), commandParent(b), commandParent(a), commandParent(b)]);
    const mine = await runHost('/bin/sh', ['-c', 'echo $PPID'], { context: 't' });
    const spawners = await spawnerChildren();
    expect(spawners).toHaveLength(1);
    expect(new Set([...parents, Number(mine.stdout.trim())])).toEqual(new Set(spawners));
  });

  it('a worker starts its own spawner once the shared one is gone, and the folder goes with it', async () => {
    const w = worker(shared);
    const [first] = await spawnerChildren();
    expect(await commandParent(w)).toBe(first);
    process.kill(first!, 'SIGKILL');
    await waitFor('the shared spawner to die', () => !pidAlive(first!));
    await waitFor('its folder to be removed', () => !existsSync(dirname(shared.socket)));
    // The worker's next command may still meet the dying connection; the one after has a spawner of its own.
    await commandParent(w).catch(() => undefined);
    const next = await commandParent(w);
    expect(next).not.toBe(first);
    expect(pidAlive(next)).toBe(true);
    // A worker that boots now does not wait for the dead one.
    expect(await commandParent(worker(shared))).toBeGreaterThan(0);
  });
});

describe('a daemon killed with SIGKILL', () => {
  it('leaves no socket: its spawner removes its folder when the daemon is gone', async () => {
    // A stand-in daemon: it starts a shared spawner, says where, and waits to be killed.
    const src = new URL('../../src/host/spawner.ts', import.meta.url).pathname;
    const daemon = spawn(
      process.execPath,
      ['--input-type=module', '-e', `import { startSharedSpawner } from ${JSON.stringify(src)}; const s = startSharedSpawner(); console.log(s.socket); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const socket = await new Promise<string>((resolve) => daemon.stdout.once('data', (b: Buffer) => resolve(b.toString().trim())));
    await waitFor('the socket', () => existsSync(socket));
    daemon.kill('SIGKILL');
    await waitFor('the folder to be removed by the orphaned spawner', () => !existsSync(dirname(socket)));
  });

  it('together with its spawner leaves a folder that the next daemon removes', async () => {
    // A pid that is not running: a child that has exited.
    const gone = spawn('true');
    await new Promise((r) => gone.once('exit', r));
    const stale = join(tmpdir(), `warden-spawner-${gone.pid}-aB3dE9`);
    await mkdir(stale, { mode: 0o700 });
    await writeFile(join(stale, 's'), '');
    // One whose daemon (here: this process's parent) still runs stays.
    const live = join(tmpdir(), `warden-spawner-${process.ppid}-xY7zQ1`);
    await mkdir(live, { mode: 0o700 });
    // What another user may plant under such a name: a symlink to a folder with an
    // entry `s` (which must not be removed through it).
    const target = await mkdtemp(join(tmpdir(), 'warden-spawner-target-'));
    await writeFile(join(target, 's'), 'keep');
    const planted = join(tmpdir(), `warden-spawner-${gone.pid}-pL4nT3`);
    await symlink(target, planted);
    try {
      const removed = await removeStaleSharedSpawners();
      expect(removed).toContain(stale);
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(live)).toBe(true);
      expect(removed).not.toContain(planted);
      expect(readFileSync(join(target, 's'), 'utf8')).toBe('keep');
    } finally {
      await Promise.all([stale, live, target, planted].map((p) => rm(p, { recursive: true, force: true })));
    }
  });
});
