// The worker pool's janitor: background work (finished jobs' folders) runs on a
// thread of its own at a lower CPU priority, so that it neither queues ahead of a
// request's task in a worker nor takes the CPU from one.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkerPool } from '../../src/workers/pool.ts';

/** The nice value of each thread of this process (field 19 of /proc/self/task/T/stat). */
function threadNices(): number[] {
  return readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[16]);
  });
}

describe('WorkerPool janitor', () => {
  const root = mkdtempSync(join(tmpdir(), 'janitor-'));
  const pool = new WorkerPool({ threads: 1 });
  afterAll(async () => {
    await pool.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('removes job folders on a thread of its own, niced, and leaves request tasks at normal priority', async () => {
    // Before any background task, no thread of ours runs niced (the janitor starts on first use).
    await pool.run('state.mkdir', { path: join(root, 'warm') });
    expect(threadNices().filter((n) => n > 0)).toEqual([]);

    const dirs = Array.from({ length: 10 }, (_, i) => join(root, `job-${i}`));
    for (const d of dirs) {
      mkdirSync(d);
      for (const f of ['stdout', 'stderr', 'exit_status', 'pid']) writeFileSync(join(d, f), f);
    }
    await pool.run('state.removeTrees', { paths: dirs });
    expect(dirs.filter((d) => existsSync(d))).toEqual([]);
    // One thread niced to 10: the janitor; every other thread (main, the request worker) is not.
    const nices = threadNices();
    expect(nices.filter((n) => n === 10)).toHaveLength(1);
    expect(nices.filter((n) => n !== 0 && n !== 10)).toEqual([]);

    // A request task still runs on the normal worker.
    await pool.run('state.writeText', { path: join(root, 'after'), text: 'x\n' });
    expect(readFileSync(join(root, 'after'), 'utf8')).toBe('x\n');
  });
});
