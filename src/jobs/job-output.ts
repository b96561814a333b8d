// Main-thread side of a job's output: followJobFromMain runs a `job.follow` task
// in a worker and receives its output over a MessagePort (credits flow back only
// as fast as the consumer takes chunks, so a slow client holds at most a few
// chunks in memory); readFinishedOutput reads a finished job's files once.
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import type { TaskRunner } from '../workers/pool.ts';
import type { FollowMessage } from './job-tasks.ts';

/** Chunks (of up to 512 KiB, see output-files.ts) in flight per streaming follower: at most 2 MiB. */
const INITIAL_CREDIT = 4;

export interface FollowOptions {
  dir: string;
  limit: number;
  /**
   * Receives each chunk; resolve (or return) when ready for more. A returned
   * promise also says that `data` is no longer needed: its buffer then goes back
   * to the reader for its next chunk, so keep no reference to it. Omit to only
   * watch the job's exit and output size.
   */
  onData?: (name: 'stdout' | 'stderr', data: Buffer) => void | Promise<void>;
  signal?: AbortSignal;
  /** Watching only: forward the output to this syslog socket. */
  syslog?: { socket: string; tag: string };
}

export interface FollowResult {
  outcome: 'exit' | 'limit' | 'cancelled' | 'gone';
  status?: number;
  /** Output went past the limit and was cut. */
  truncated: boolean;
  /** A watched job's whole output at its exit, when it was small. */
  output?: FinishedOutput;
}

export async function followJobFromMain(pool: TaskRunner, opts: FollowOptions): Promise<FollowResult> {
  const { port1, port2 } = new MessageChannel();
  let truncated = false;
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      port1.close();
    }
  };
  if (opts.signal?.aborted) close();
  opts.signal?.addEventListener('abort', close, { once: true });
  // Messages on the port and the task's result travel separately: the result
  // may arrive before the last chunks, so wait for the port's own end marker.
  let portDone!: () => void;
  const portEnded = new Promise<void>((resolve) => (portDone = resolve));
  port1.on('close', () => portDone());
  port1.on('message', (m: FollowMessage) => {
    if (m.kind === 'exit') {
      truncated = m.truncated;
      portDone();
      return;
    }
    const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
    const ready = opts.onData?.(m.name, data);
    if (ready instanceof Promise) {
      ready.then(() => {
        if (closed) return;
        // The consumer is done with the chunk: a full-size one goes back to be read into again.
        if (m.reusable) port1.postMessage({ credit: 1, recycle: m.data.buffer }, [m.data.buffer as ArrayBuffer]);
        else port1.postMessage({ credit: 1 });
      }, close);
    } else if (!closed) port1.postMessage({ credit: 1 });
  });
  if (opts.onData && !closed) port1.postMessage({ credit: INITIAL_CREDIT });
  try {
    const r = await pool.run('job.follow', { dir: opts.dir, limit: opts.limit, sendData: !!opts.onData, port: port2, syslog: opts.syslog }, [port2]);
    if (r.outcome === 'exit') await portEnded;
    const output = r.output && { stdout: asBuffer(r.output.stdout), stderr: asBuffer(r.output.stderr) };
    return { outcome: r.outcome, status: r.status, truncated, ...(output ? { output } : {}) };
  } finally {
    opts.signal?.removeEventListener('abort', close);
    close();
  }
}

export interface FinishedOutput {
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * A finished job's output, stdout then stderr, at most `limit` bytes together
 * (what a follower would have sent): one read per file, without a worker. The
 * files no longer grow once the job's exit was recorded, but a process the job
 * left behind may still write: what is there now is what the job answered.
 */
export async function readFinishedOutput(dir: string, limit: number): Promise<FinishedOutput> {
  // Both at once (each waits its turn in the threadpool).
  const [stdout, stderr] = await Promise.all([readUpTo(join(dir, 'stdout'), limit), readUpTo(join(dir, 'stderr'), limit)]);
  return withinLimit({ stdout, stderr }, limit);
}

/** At most `limit` bytes of output, stdout first: stderr gets what stdout leaves. */
export function withinLimit(out: FinishedOutput, limit: number): FinishedOutput {
  const stdout = out.stdout.length > limit ? out.stdout.subarray(0, Math.max(0, limit)) : out.stdout;
  const room = Math.max(0, limit - stdout.length);
  return { stdout, stderr: out.stderr.length > room ? out.stderr.subarray(0, room) : out.stderr };
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Most job output is small: one read of this size tells the whole of it (a short read is the end of a file). */
const FIRST_READ = 64 * 1024;

async function readUpTo(path: string, max: number): Promise<Buffer> {
  if (max <= 0) return Buffer.alloc(0);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return Buffer.alloc(0); // discarded or never written
  }
  try {
    let buf = Buffer.allocUnsafe(Math.min(FIRST_READ, max));
    let got = (await fh.read(buf, 0, buf.length, 0)).bytesRead;
    if (got === buf.length && got < max) {
      // More than one read's worth: read the rest at the size the file has now.
      const size = Math.min((await fh.stat()).size, max);
      if (size > got) {
        const whole = Buffer.allocUnsafe(size);
        buf.copy(whole, 0, 0, got);
        buf = whole;
        for (let n = 1; got < size && n > 0; got += n) n = (await fh.read(buf, got, size - got, got)).bytesRead;
      }
    }
    return got === buf.length ? buf : buf.subarray(0, got);
  } finally {
    // Not waited for: the answer does not depend on it.
    fh.close().catch(() => {});
  }
}
