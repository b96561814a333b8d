// An idle worker waits in its event loop, not blocked in a futex: work a worker
// started on its own (the task families it preloads at boot, replies of its
// spawner) goes on while no task is in flight. Piscina's default 'sync' atomics
// would park the whole thread in Atomics.wait between tasks.
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkerPool } from '../../src/workers/pool.ts';

/** Where each worker thread of this process sleeps (the kernel's wchan). */
function workerThreadWaits(): string[] {
  return readdirSync('/proc/self/task')
    .filter((tid) => readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'WorkerThread')
    .map((tid) => readFileSync(`/proc/self/task/${tid}/wchan`, 'utf8').trim());
}

describe('WorkerPool idle workers', () => {
  const pool = new WorkerPool({ threads: 2, preload: ['state'] });
  const dir = join(tmpdir(), `worker-idle-${process.pid}`);
  afterAll(async () => {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sleep in their event loop between tasks', async () => {
    await Promise.all([pool.run('state.mkdir', { path: dir }), pool.run('state.mkdir', { path: dir })]);
    // Both workers are up and idle; a thread waking or starting may be seen running (wchan 0).
    let waits: string[] = [];
    for (let i = 0; i < 50; i++) {
      waits = workerThreadWaits();
      if (waits.length === 2 && waits.every((w) => w !== '0')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(waits).toHaveLength(2);
    // epoll: their event loops (do_epoll_wait); a futex wait would be Atomics.wait.
    expect(waits.filter((w) => !/epoll/.test(w))).toEqual([]);
  });
});
