// Worker-side job followers (src/jobs/job-tasks.ts), run on this thread: they
// wake on their folder's events, not on timers of their own, and a Stream
// follower sends large reads.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { jobTasks, type FollowMessage } from '../../src/jobs/job-tasks.ts';
import { procStat } from '../../src/host/procfs.ts';
import { SMALL_OUTPUT_BYTES } from '../../src/jobs/kept-output.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A job folder as a running job's supervisor leaves it; this process stands in for the supervisor (alive). */
async function runningJob(stdout: string | Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'job-follow-'));
  dirs.push(dir);
  const start = (await procStat(process.pid))?.startTime;
  await writeFile(join(dir, 'stdout'), stdout);
  await writeFile(join(dir, 'stderr'), '');
  await writeFile(join(dir, 'pid'), `${process.pid} ${start} ${process.pid} ${start}\n`);
  return dir;
}

interface Follower {
  messages: FollowMessage[];
  port: MessagePort;
  done: ReturnType<(typeof jobTasks)['job.follow']>;
  /** Resolves once the follower sent data. */
  firstData: Promise<void>;
}

function follow(dir: string, sendData: boolean): Follower {
  const { port1, port2 } = new MessageChannel();
  const messages: FollowMessage[] = [];
  let gotData!: () => void;
  const firstData = new Promise<void>((r) => (gotData = r));
  port1.on('message', (m: FollowMessage) => {
    messages.push(m);
    if (m.kind === 'data') {
      gotData();
      port1.postMessage({ credit: 1 });
    }
  });
  if (sendData) port1.postMessage({ credit: 4 });
  const done = jobTasks['job.follow']({ dir, limit: 64 * 1024 * 1024, sendData, port: port2 });
  return { messages, port: port1, done, firstData };
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('job followers', () => {
  it('hold no timer of their own while their jobs run quietly, and see the exit from its event', async () => {
    const before = timers();
    const jobs = await Promise.all(Array.from({ length: 5 }, () => runningJob('ready\n')));
    const followers = jobs.map((dir) => follow(dir, true));
    await Promise.all(followers.map((f) => f.firstData));
    // Many turns of the event loop while every job is idle: no follower arms a timer
    // (the worker's one liveness sweep does not hold the thread and is not counted).
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setImmediate(r));
      expect(timers()).toBeLessThanOrEqual(before);
    }
    await Promise.all(jobs.map((dir) => writeFile(join(dir, 'exit_status'), '7\n')));
    const results = await Promise.all(followers.map((f) => f.done));
    expect(results.map((r) => r.outcome)).toEqual(Array(5).fill('exit'));
    expect(results.map((r) => r.status)).toEqual(Array(5).fill(7));
    for (const f of followers) {
      expect(Buffer.concat(f.messages.flatMap((m) => (m.kind === 'data' ? [m.data] : []))).toString()).toBe('ready\n');
      f.port.close();
    }
  });

  it('send a large output in reads of more than 64 KiB', async () => {
    const dir = await runningJob(Buffer.alloc(4 * 1024 * 1024, 'x'));
    const f = follow(dir, true);
    await f.firstData;
    await appendFile(join(dir, 'stdout'), 'end\n');
    await writeFile(join(dir, 'exit_status'), '0\n');
    expect((await f.done).status).toBe(0);
    const chunks = f.messages.flatMap((m) => (m.kind === 'data' ? [m.data] : []));
    expect(chunks.reduce((n, c) => n + c.length, 0)).toBe(4 * 1024 * 1024 + 4);
    expect(Math.max(...chunks.map((c) => c.length))).toBeGreaterThan(64 * 1024);
    f.port.close();
  });

  it('that only watch hand back a small output whole at the exit, and no large one', async () => {
    const small = await runningJob('done\n');
    await writeFile(join(small, 'stderr'), 'warn\n');
    const large = await runningJob(Buffer.alloc(SMALL_OUTPUT_BYTES + 1, 'x'));
    const watched = [follow(small, false), follow(large, false)];
    await writeFile(join(small, 'exit_status'), '0\n');
    await writeFile(join(large, 'exit_status'), '0\n');
    const [s, l] = await Promise.all(watched.map((f) => f.done));
    expect(s.outcome).toBe('exit');
    expect(Buffer.from(s.output!.stdout).toString()).toBe('done\n');
    expect(Buffer.from(s.output!.stderr).toString()).toBe('warn\n');
    expect(l.outcome).toBe('exit');
    expect(l.output).toBeUndefined();
    for (const f of watched) f.port.close();
  });
});
