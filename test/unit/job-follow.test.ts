// Worker-side job followers (src/jobs/job-tasks.ts), run on this thread: they
// wake on their folder's events, not on timers of their own (except while a job
// writes without pause), and a Stream follower sends large reads in buffers the
// receiver may hand back.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { jobTasks, type FollowMessage } from '../../src/jobs/job-tasks.ts';
import { procStat } from '../../src/host/procfs.ts';
import { SMALL_OUTPUT_BYTES } from '../../src/jobs/kept-output.ts';
import { sleep, waitFor } from '../support/wait.ts';

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

/** recycle: take a copy of each chunk and hand a reusable one's buffer back, as the main thread does once the client has it. */
function follow(dir: string, sendData: boolean, o: { recycle?: boolean } = {}): Follower {
  const { port1, port2 } = new MessageChannel();
  const messages: FollowMessage[] = [];
  let gotData!: () => void;
  const firstData = new Promise<void>((r) => (gotData = r));
  let gotExit!: () => void;
  const exitMessage = new Promise<void>((r) => (gotExit = r));
  port1.on('message', (m: FollowMessage) => {
    if (m.kind === 'exit') gotExit();
    if (m.kind === 'data' && o.recycle) {
      messages.push({ ...m, data: new Uint8Array(m.data) });
      if (m.reusable) port1.postMessage({ credit: 1, recycle: m.data.buffer }, [m.data.buffer as ArrayBuffer]);
      else port1.postMessage({ credit: 1 });
      gotData();
      return;
    }
    messages.push(m);
    if (m.kind === 'data') {
      gotData();
      port1.postMessage({ credit: 1 });
    }
  });
  if (sendData) port1.postMessage({ credit: 4 });
  // The task's result may come before the port's last messages (as on the main
  // thread, job-output.ts): done waits for the exit message too.
  const done = jobTasks['job.follow']({ dir, limit: 64 * 1024 * 1024, sendData, port: port2 }).then(async (r) => {
    if (r.outcome === 'exit') await exitMessage;
    return r;
  });
  return { messages, port: port1, done, firstData };
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** inotify watches this process holds on dir, as the kernel lists them (fdinfo: one line per watch, with its inode). */
function watchesOn(dir: string): number {
  const ino = statSync(dir, { bigint: true }).ino;
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== 'anon_inode:inotify') continue;
    for (const m of readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').matchAll(/^inotify wd:\S+ ino:([0-9a-f]+) /gm)) {
      if (BigInt(`0x${m[1]}`) === ino) n++;
    }
  }
  return n;
}

/** Byte i of a pattern no two nearby chunks share (a chunk read into a wrong or reused buffer shows). */
function pattern(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) b.writeUInt32LE(i, i);
  return b;
}

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

  it('stop listening while their job writes without pause, and listen again once it is quiet', async () => {
    for (const sendData of [true, false]) {
      const dir = await runningJob('');
      const f = follow(dir, sendData);
      await waitFor('the follower to watch its folder', () => watchesOn(dir) === 1);
      // The job writes a line about every millisecond (each write an event while the
      // follower listens) until the follower no longer watches its folder. A pause
      // in these writes may let it listen again for a while, so the test writes on
      // until it sees it stopped; the deadline only bounds a failure.
      const expected: string[] = [];
      const deadline = Date.now() + 10_000;
      while (watchesOn(dir) !== 0) {
        if (Date.now() > deadline) throw new Error(`the ${sendData ? 'streaming' : 'watching'} follower never stopped listening`);
        const line = `line ${expected.length}\n`;
        expected.push(line);
        await appendFile(join(dir, 'stdout'), line);
        await sleep(1);
      }
      // The job is quiet now: the follower listens again.
      await waitFor('the follower to watch its folder again', () => watchesOn(dir) === 1);
      await writeFile(join(dir, 'exit_status'), '3\n');
      const r = await f.done;
      expect(r.status).toBe(3);
      if (sendData) {
        const text = Buffer.concat(f.messages.flatMap((m) => (m.kind === 'data' ? [m.data] : []))).toString();
        expect(text).toBe(expected.join(''));
      }
      f.port.close();
    }
  });

  it('keep listening when the supervisor only creates the empty output files (a job that writes nothing)', async () => {
    const dir = await runningJob('');
    const followers = [follow(dir, true), follow(dir, false)];
    await new Promise((r) => setTimeout(r, 20));
    // As job-supervisor.sh does at the start, twice over: events, but no output.
    for (let i = 0; i < 2; i++) {
      await writeFile(join(dir, 'stdout'), '');
      await writeFile(join(dir, 'stderr'), '');
    }
    await new Promise((r) => setTimeout(r, 5));
    // Still listening: the exit's event (not a timer) ends them.
    expect(watchesOn(dir)).toBe(1);
    await writeFile(join(dir, 'exit_status'), '0\n');
    expect((await Promise.all(followers.map((f) => f.done))).map((r) => r.status)).toEqual([0, 0]);
    for (const f of followers) f.port.close();
  });

  it('read full chunks into the buffers the receiver hands back, and the bytes stay right', async () => {
    const body = pattern(5 * 512 * 1024 + 1000);
    const dir = await runningJob(body.subarray(0, 3 * 512 * 1024));
    const f = follow(dir, true, { recycle: true });
    await f.firstData;
    await appendFile(join(dir, 'stdout'), body.subarray(3 * 512 * 1024));
    await writeFile(join(dir, 'exit_status'), '0\n');
    expect((await f.done).status).toBe(0);
    const data = f.messages.flatMap((m) => (m.kind === 'data' ? [m] : []));
    const got = Buffer.concat(data.map((m) => m.data));
    expect(got.length).toBe(body.length);
    expect(got.equals(body)).toBe(true);
    // Full chunks are the reader's own buffers; the short last one is a copy of its size.
    expect(data.filter((m) => m.reusable).length).toBeGreaterThanOrEqual(5);
    expect(data.filter((m) => !m.reusable).every((m) => m.data.length < 512 * 1024)).toBe(true);
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
