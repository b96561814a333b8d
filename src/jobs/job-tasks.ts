// Worker-side job tasks: start a job's detached supervisor, follow a job's
// output files, kill a job.
// Layer: src/jobs/ (worker side) owns a job's folder and its supervisor; which
// container a job belongs to and what its exit means is the orchestrator's.
import { spawn } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, open, readFile, rename, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { LOST_JOB_STATUS, readExitStatus, readJobPids } from './job-files.ts';
import { SyslogSink, type SyslogTarget } from './syslog-sink.ts';
import { isSameProcess } from '../host/procfs.ts';

const SUPERVISOR = join(import.meta.dirname, 'job-supervisor.sh');
const CHUNK = 64 * 1024;
/** Poll interval when no file event arrives (events can be missed or unsupported). */
const POLL_MS = 250;
/** How often an idle follower checks that the job's supervisor is still alive. */
const LIVENESS_MS = 2000;

export interface StartJobArgs {
  dir: string;
  script: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  discardOutput: boolean;
  /** cgroup.procs files to join before the supervisor starts (see JobLaunch.cgroupProcs). */
  cgroupProcs?: string[];
}

/**
 * Joins the cgroups, then becomes the supervisor's start script: joined before the
 * exec, every page the supervisor and its children allocate is charged there (a
 * page stays charged where it was first allocated). A group that is gone is
 * skipped: the job then runs, charged to the daemon, as before.
 */
const JOIN_THEN_EXEC = 'while [ "$1" != -- ]; do mkdir -p "${1%/*}" 2>/dev/null; echo $$ 2>/dev/null > "$1"; shift; done; shift; exec "$@"';

/** Write the job folder and start its supervisor in a session of its own. */
async function startJob(a: StartJobArgs): Promise<void> {
  await mkdir(a.dir, { recursive: true });
  await writeFile(join(a.dir, 'script'), a.script);
  await new Promise<void>((resolve, reject) => {
    // detached: a session of its own; the script then forks the supervisor
    // away and exits, so the supervisor is not the daemon's child.
    const supervisor = ['/bin/bash', SUPERVISOR, a.dir, a.discardOutput ? '1' : '0', '--', ...a.argv];
    const argv = a.cgroupProcs?.length ? ['/bin/sh', '-c', JOIN_THEN_EXEC, 'warden-job-start', ...a.cgroupProcs, '--', ...supervisor] : supervisor;
    const child = spawn(argv[0]!, argv.slice(1), { cwd: a.cwd, env: a.env, stdio: 'ignore', detached: true });
    child.once('error', (err) => reject(new Error(`cannot start job supervisor: ${err.message}`)));
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`job supervisor failed to start (status ${code})`)),
    );
  });
}

export type FollowMessage =
  | { kind: 'data'; name: 'stdout' | 'stderr'; data: Uint8Array }
  | { kind: 'exit'; status: number; truncated: boolean };

export interface FollowJobArgs {
  dir: string;
  /** Stop reading output past this many bytes (stdout and stderr together). */
  limit: number;
  /** Send output (Link/Stream); false only watches sizes and the exit. */
  sendData: boolean;
  /** Main thread → worker: `{ credit: n }` grants n more chunks; closing the port cancels. */
  port: MessagePort;
  /** When watching (not sendData): also forward the output to syslog. */
  syslog?: SyslogTarget;
}

export interface FollowJobResult {
  /** 'exit' when the job ended, 'limit' when its output passed the limit, 'cancelled' when the port closed. */
  outcome: 'exit' | 'limit' | 'cancelled' | 'gone';
  status?: number;
}

class OutputFile {
  readonly path: string;
  readonly name: 'stdout' | 'stderr';
  fh: FileHandle | undefined;
  offset = 0;
  constructor(path: string, name: 'stdout' | 'stderr') {
    this.path = path;
    this.name = name;
  }

  async size(): Promise<number> {
    try {
      return (await stat(this.path)).size;
    } catch {
      return 0;
    }
  }

  async read(max: number): Promise<Buffer | undefined> {
    if (!this.fh) {
      try {
        this.fh = await open(this.path, 'r');
      } catch {
        return undefined;
      }
    }
    // Its own ArrayBuffer (never the shared pool), so it can be transferred to the main thread.
    const buf = Buffer.allocUnsafeSlow(Math.min(CHUNK, max));
    const { bytesRead } = await this.fh.read(buf, 0, buf.length, this.offset);
    if (bytesRead === 0) return undefined;
    this.offset += bytesRead;
    return bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
  }

  async close(): Promise<void> {
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
  }
}

/**
 * Follow one job until it exits: send its output over `port` (with credit-based
 * flow control, so a slow client stalls only this reader) or just watch that it
 * stays under the output limit. Many of these run at once in each worker.
 */
async function followJob(a: FollowJobArgs): Promise<FollowJobResult> {
  const files = [new OutputFile(join(a.dir, 'stdout'), 'stdout'), new OutputFile(join(a.dir, 'stderr'), 'stderr')];
  let credit = 0;
  let cancelled = false;
  let wake: (() => void) | undefined;
  // An event that comes while the loop is busy (not sleeping) must not be lost:
  // it is remembered, and the next sleep returns at once.
  let nudged = false;
  const nudge = () => {
    const w = wake;
    wake = undefined;
    if (w) w();
    else nudged = true;
  };
  a.port.on('message', (m: { credit?: number }) => {
    if (typeof m.credit === 'number') credit += m.credit;
    nudge();
  });
  a.port.on('close', () => {
    cancelled = true;
    nudge();
  });
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(a.dir, { persistent: false }, nudge);
    watcher.on('error', () => {});
  } catch {
    watcher = undefined; // polling only
  }
  const sleep = () =>
    new Promise<void>((resolve) => {
      if (nudged) {
        nudged = false;
        resolve();
        return;
      }
      const timer = setTimeout(nudge, POLL_MS);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  let sent = 0;
  let lastLiveness = Date.now();
  const sink = !a.sendData && a.syslog ? new SyslogSink(a.syslog) : undefined;
  if (sink) {
    // Output a watcher before a restart already forwarded is not sent again.
    const offsets = await readSyslogOffsets(a.dir);
    files.forEach((f, i) => (f.offset = offsets[i] ?? 0));
    sent = files[0].offset + files[1].offset;
  }
  try {
    for (;;) {
      if (cancelled) return { outcome: 'cancelled' };
      // Read the status before the data: output written before the exit is then surely read below.
      const status = await readExitStatus(a.dir);
      let progressed = false;
      if (a.sendData) {
        for (const f of files) {
          while (sent < a.limit && credit > 0 && !cancelled) {
            const chunk = await f.read(a.limit - sent);
            if (!chunk) break;
            sent += chunk.length;
            credit--;
            progressed = true;
            a.port.postMessage({ kind: 'data', name: f.name, data: chunk } satisfies FollowMessage, [
              chunk.buffer as ArrayBuffer,
            ]);
          }
        }
        if (credit === 0 && !cancelled) {
          await sleep();
          continue;
        }
      } else if (sink) {
        // Forward to syslog everything up to the limit; the sizes tell the rest.
        // Whole lines only while the job runs: a line cut at a restart would
        // reach syslog as two messages.
        let forwarded = false;
        for (const f of files) {
          for (let chunk; sent < a.limit && (chunk = await f.read(a.limit - sent)); ) {
            if (status === undefined && chunk.length < CHUNK) {
              const whole = chunk.lastIndexOf(0x0a) + 1;
              f.offset -= chunk.length - whole;
              if (whole === 0) break;
              chunk = chunk.subarray(0, whole);
            }
            sent += chunk.length;
            progressed = forwarded = true;
            await sink.write(f.name, chunk);
          }
        }
        // The next daemon's watcher goes on from here (each line once, across restarts).
        if (forwarded) await saveSyslogOffsets(a.dir, files);
        if (sent >= a.limit) sent += await pendingBytes(files);
      } else {
        sent = (await files[0].size()) + (await files[1].size());
      }
      const overLimit = a.sendData ? sent >= a.limit && (await pendingBytes(files)) > 0 : sent > a.limit;
      if (status !== undefined && !progressed) {
        // Nothing new after the exit: everything there is was read.
        a.port.postMessage({ kind: 'exit', status, truncated: overLimit } satisfies FollowMessage);
        return { outcome: 'exit', status };
      }
      if (overLimit && status === undefined && !a.sendData) return { outcome: 'limit' };
      if (progressed) continue;
      if (Date.now() - lastLiveness > LIVENESS_MS) {
        lastLiveness = Date.now();
        await stat(a.dir); // ENOENT when the container was destroyed under us
        if (!(await supervisorAlive(a.dir))) {
          const late = await readExitStatus(a.dir);
          if (late === undefined) {
            await writeFile(join(a.dir, 'exit_status'), `${LOST_JOB_STATUS}\n`).catch(() => {});
          }
          continue;
        }
      }
      await sleep();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { outcome: 'gone' };
    throw err;
  } finally {
    watcher?.close();
    for (const f of files) await f.close();
    await sink?.close();
    a.port.close();
  }
}

/** Bytes of stdout and stderr forwarded to syslog so far: `<stdout> <stderr>`. */
const SYSLOG_OFFSETS = 'syslog_offsets';

async function readSyslogOffsets(dir: string): Promise<number[]> {
  try {
    const nums = (await readFile(join(dir, SYSLOG_OFFSETS), 'utf8')).trim().split(' ').map(Number);
    return nums.length === 2 && nums.every((n) => Number.isSafeInteger(n) && n >= 0) ? nums : [0, 0];
  } catch {
    return [0, 0];
  }
}

async function saveSyslogOffsets(dir: string, files: OutputFile[]): Promise<void> {
  // Write then rename: a reader never sees half a file. No fsync: the offsets only
  // need to outlive the daemon, not the host.
  const tmp = join(dir, `${SYSLOG_OFFSETS}.tmp`);
  await writeFile(tmp, `${files[0].offset} ${files[1].offset}\n`);
  await rename(tmp, join(dir, SYSLOG_OFFSETS));
}

async function pendingBytes(files: OutputFile[]): Promise<number> {
  let n = 0;
  for (const f of files) n += Math.max(0, (await f.size()) - f.offset);
  return n;
}

async function supervisorAlive(dir: string): Promise<boolean> {
  const pids = await readJobPids(dir);
  if (!pids) return true; // not started yet
  return isSameProcess(pids.supervisorPid, pids.supervisorStartTime);
}

/** How long signalJob waits for the pid file of a job that is just starting. */
const PID_FILE_WAIT_MS = 1_000;

/** Signal a job's process group (the pid the supervisor recorded), if it still runs. */
async function signalJob(a: { dir: string; signal: NodeJS.Signals }): Promise<boolean> {
  // A job may pass the output limit before its supervisor wrote the pid file.
  let pids = await readJobPids(a.dir);
  for (const deadline = Date.now() + PID_FILE_WAIT_MS; !pids && Date.now() < deadline; pids = await readJobPids(a.dir)) {
    if ((await readExitStatus(a.dir)) !== undefined) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (!pids || !(await isSameProcess(pids.pid, pids.startTime))) return false;
  try {
    process.kill(-pids.pid, a.signal);
    return true;
  } catch {
    return false;
  }
}

export const jobTasks = {
  'job.start': startJob,
  'job.follow': followJob,
  'job.signal': signalJob,
};
