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
    // epoll: their event loops (do_epoll_wait); Atomics.wait is a futex wait. A thread
    // still booting, or caught for a moment in a lock or running (wchan 0), is looked
    // at again: an idle worker settles in epoll, a parked one stays in the futex.
    const inEventLoop = (waits: string[]) => waits.length === 2 && waits.every((w) => /epoll/.test(w));
    let waits = workerThreadWaits();
    for (let i = 0; i < 100 && !inEventLoop(waits); i++) {
      await new Promise((r) => setTimeout(r, 20));
      waits = workerThreadWaits();
    }
    expect(waits).toHaveLength(2);
    expect(waits.filter((w) => !/epoll/.test(w))).toEqual([]);
  });
});
