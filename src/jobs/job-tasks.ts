// Worker-side job tasks: start a job's detached supervisor (through the thread's
// spawner process), follow a job's output files, kill a job.
// Layer: src/jobs/ (worker side) owns a job's folder and its supervisor; which
// container a job belongs to and what its exit means is the orchestrator's.
import { closeSync, mkdirSync, openSync, readSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { LOST_JOB_STATUS, readExitStatus, readExitStatusSync, readJobPids, type JobPids } from './job-files.ts';
import { SyslogSink, type SyslogTarget } from './syslog-sink.ts';
import { LivenessSweep } from './liveness-sweep.ts';
import { CHUNK, OutputFile, dropSpareChunks, pendingBytes, readSyslogOffsets, recycleChunk, saveSyslogOffsets } from './output-files.ts';
import { spawnHost } from '../host/spawner.ts';
import type { SpawnReport } from '../host/spawner-wire.js';
import { isSameProcess } from '../host/procfs.ts';
import { SMALL_OUTPUT_BYTES } from './kept-output.ts';

const SUPERVISOR = join(import.meta.dirname, 'job-supervisor.sh');
/** The spawner's fork server for supervisors (see spawner-process.js, job-starter.sh). */
const STARTER = join(import.meta.dirname, 'job-starter.sh');
const EXIT_STATUS = 'exit_status';
/** Output events this soon after the last look wait for the rest (see followJob): a streamed job, and one only watched. */
const STREAM_HOLD_MS = 10;
const WATCH_HOLD_MS = 50;
/**
 * How often a follower looks while its job writes without pause (it then stops
 * listening to the folder's events, see followJob), and so how late it may see
 * that job's exit at most.
 */
const HOT_LOOK_MS = 10;
/** Poll interval where a job's folder cannot be watched (no inotify). */
const POLL_MS = 250;
/** How often the worker's followers check that their jobs' supervisors are still alive (and look again, should an event have been lost). */
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
  /** See JobLaunch.files and JobLaunch.fd3. */
  files?: Record<string, string>;
  fd3?: string;
}

/** A name JobLaunch.files or fd3 may use: a plain file in the job's folder, none of the supervisor's own. */
function checkJobFileName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || ['script', 'stdout', 'stderr', 'pid', EXIT_STATUS, 'child_end'].includes(name)) {
    throw new Error(`job file name ${JSON.stringify(name)} is not allowed`);
  }
}

/** The supervisor's start script forks the supervisor away and exits at once; a wedged one is killed after this long. */
const START_TIMEOUT_MS = 60_000;

/**
 * Write the job folder and start its supervisor. The thread's spawner process
 * starts it (a small process; forking this worker's would copy the daemon's page
 * tables and block the thread for tens of ms) with the job's environment only:
 * through its job starter, a shell that forks supervisors (the Linux backend's
 * orders), or else as a command in a session of its own whose start script forks
 * the supervisor away and exits. Either way the supervisor is no child of ours.
 */
async function startJob(a: StartJobArgs): Promise<void> {
  const files = Object.entries(a.files ?? {});
  for (const [name] of files) checkJobFileName(name);
  if (a.fd3 !== undefined) checkJobFileName(a.fd3);
  // Blocking: a few small files in a fresh folder (a threadpool trip each otherwise).
  mkdirSync(a.dir, { recursive: true });
  writeFileSync(join(a.dir, 'script'), a.script);
  for (const [name, content] of files) writeFileSync(join(a.dir, name), content);
  // The supervisor joins the job's cgroups first thing (job-supervisor.sh).
  const env: Record<string, string> = { ...a.env };
  if (a.cgroupProcs?.length) env.WARDEN_JOB_CGROUP_PROCS = a.cgroupProcs.join('\n');
  if (a.fd3 !== undefined) env.WARDEN_JOB_FD3 = a.fd3;
  const r = await spawnHost({
    file: '/bin/bash',
    args: [SUPERVISOR, a.dir, a.discardOutput ? '1' : '0', '--', ...a.argv],
    cwd: a.cwd,
    env,
    stdout: 'ignore',
    stderr: 'ignore',
    timeoutMs: START_TIMEOUT_MS,
    killGraceMs: 2_000,
    maxOutputBytes: 0,
    starter: STARTER,
  }).catch((err: Error): SpawnReport => ({ id: 0, spawnError: err.message }));
  if (r.spawnError !== undefined) throw new Error(`cannot start job supervisor: ${r.spawnError}`);
  if (r.exitCode !== 0) throw new Error(`job supervisor failed to start (status ${r.exitCode ?? r.signal})`);
}

export type FollowMessage =
  /** reusable: data fills a buffer of the reader's own, which the receiver may send back (recycle) once done with it. */
  | { kind: 'data'; name: 'stdout' | 'stderr'; data: Uint8Array; reusable: boolean }
  | { kind: 'exit'; status: number; truncated: boolean };

export interface FollowJobArgs {
  dir: string;
  /** Stop reading output past this many bytes (stdout and stderr together). */
  limit: number;
  /** Send output (Link/Stream); false only watches sizes and the exit. */
  sendData: boolean;
  /** Main thread → worker: `{ credit: n, recycle? }` grants n more chunks (and may return a reusable chunk's buffer); closing the port cancels. */
  port: MessagePort;
  /** When watching (not sendData): also forward the output to syslog. */
  syslog?: SyslogTarget;
}

export interface FollowJobResult {
  /** 'exit' when the job ended, 'limit' when its output passed the limit, 'cancelled' when the port closed. */
  outcome: 'exit' | 'limit' | 'cancelled' | 'gone';
  status?: number;
  /** A watched job's whole output at its exit, when it is small (SMALL_OUTPUT_BYTES together): a Link answers from it. */
  output?: { stdout: Uint8Array; stderr: Uint8Array };
}

/** What changed in a job's folder since the follower last looked (from its watcher's events). */
interface Dirty {
  status: boolean;
  output: boolean;
}

/**
 * Follow one job until it exits: send its output over `port` (with credit-based
 * flow control, so a slow client stalls only this reader) or just watch that it
 * stays under the output limit. Many of these run at once in each worker. It
 * wakes on its folder's events (inotify), on credit, and on the worker's one
 * liveness sweep; it looks on a timer only while its job writes without pause
 * (every write is an event, and each event wakes this thread: 50,000 to 100,000
 * wake-ups for a 400 MiB Stream) and where the folder cannot be watched.
 */
async function followJob(a: FollowJobArgs): Promise<FollowJobResult> {
  if (a.sendData) streaming++;
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
  // Everything is to be looked at first; then only what the events name.
  const dirty: Dirty = { status: true, output: true };
  let checkLiveness = false;
  a.port.on('message', (m: { credit?: number; recycle?: ArrayBuffer }) => {
    if (typeof m.credit === 'number') credit += m.credit;
    if (m.recycle instanceof ArrayBuffer) recycleChunk(m.recycle);
    nudge();
  });
  a.port.on('close', () => {
    cancelled = true;
    nudge();
  });
  // A job that writes fast sends an event per write: output events within HOLD_MS
  // of the last look are taken together (larger reads, fewer wake-ups); a write
  // after a quiet spell, and the exit, are seen at once.
  const holdMs = a.sendData ? STREAM_HOLD_MS : WATCH_HOLD_MS;
  let lastLook = 0;
  let hold: NodeJS.Timeout | undefined;
  // Hot: the job writes without pause. The follower stops listening (the events
  // would wake this thread at every write) and looks every HOT_LOOK_MS until a
  // look finds nothing new; then it listens again, and looks once more (a write
  // between that look and the watch would otherwise go unseen). Its exit is then
  // seen at the next look, at most HOT_LOOK_MS late.
  let hot = false;
  /** A hot look is due (its timer fired), and whether the looks since the one before found output. */
  let hotLook = false;
  let found = false;
  /** When a look last found new output. */
  let foundAt = -Infinity;
  const sawOutput = () => {
    found = true;
    foundAt = performance.now();
  };
  const outputEvent = () => {
    if (hold) {
      // Another write within the hold, and output found just before: the job keeps
      // writing. (The supervisor creating the empty output files is no output.)
      if (performance.now() - foundAt < 2 * holdMs) heatUp();
      return;
    }
    const wait = lastLook + holdMs - performance.now();
    if (wait <= 0) nudge();
    else
      hold = setTimeout(() => {
        hold = undefined;
        nudge();
      }, wait);
  };
  const onEvent = (_event: string, name: string | null) => {
    if (name === 'stdout' || name === 'stderr') {
      dirty.output = true;
      outputEvent();
      return;
    }
    // The supervisor's other files (pid, child_end, job_end, runc's) change nothing
    // a follower reads; an event that names no file may be anything.
    if (name && name !== EXIT_STATUS) return;
    dirty.status = dirty.output = true;
    nudge();
  };
  const listen = (): FSWatcher | undefined => {
    try {
      const w = watch(a.dir, { persistent: false }, onEvent);
      w.on('error', () => {});
      return w;
    } catch {
      return undefined; // polling only
    }
  };
  let watcher = listen();
  const heatUp = () => {
    hot = true;
    watcher?.close();
    watcher = undefined;
    clearTimeout(hold);
    hold = undefined;
    // Look now, then on the hot timer (a follower asleep without one would wait for nothing).
    nudge();
  };
  const coolDown = () => {
    hot = false;
    watcher = listen();
    dirty.status = dirty.output = true;
  };
  const unsweep = sweep.add(() => {
    checkLiveness = true;
    dirty.status = dirty.output = true;
    nudge();
  });
  /** Until the next event, credit or look; forCredit: only credit can let a streaming follower go on. */
  const sleep = (forCredit = false) =>
    new Promise<void>((resolve) => {
      if (nudged) {
        nudged = false;
        resolve();
        return;
      }
      const every = watcher || (hot && forCredit) ? undefined : hot ? HOT_LOOK_MS : POLL_MS;
      const timer = every === undefined ? undefined : setTimeout(() => {
        dirty.status = dirty.output = true;
        hotLook = hot;
        nudge();
      }, every);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  let sent = 0;
  /** The job's pids, once its supervisor wrote them (they never change): a liveness check then reads /proc only. */
  let supervisor: JobPids | undefined;
  /** The recorded exit status, once read (it never changes). */
  let ended: number | undefined;
  const sink = !a.sendData && a.syslog ? new SyslogSink(a.syslog) : undefined;
  if (sink) {
    // Output a watcher before a restart already forwarded is not sent again.
    const offsets = await readSyslogOffsets(a.dir);
    files.forEach((f, i) => (f.offset = offsets[i] ?? 0));
    sent = files[0].offset + files[1].offset;
  }
  const readStatus = (): number | undefined => {
    if (ended === undefined && dirty.status) {
      dirty.status = false;
      // Blocking: one tiny file (a threadpool trip otherwise, on every hot look).
      ended = readExitStatusSync(a.dir);
    }
    return ended;
  };
  try {
    for (;;) {
      if (cancelled) return { outcome: 'cancelled' };
      lastLook = performance.now();
      let progressed = false;
      let status: number | undefined;
      if (a.sendData) {
        // Read when an event says there is more (or credit comes back after a stop
        // for credit), not on every credit: a follower that keeps up with its job
        // then reads what a burst wrote at once, not a few KiB per credit. The
        // status is read only once the files ran dry (then once more round:
        // output written before the exit is surely read then).
        status = ended;
        if (dirty.output && credit > 0) {
          dirty.output = false;
          let stoppedForCredit = false;
          for (const f of files) {
            while (sent < a.limit && !cancelled) {
              if (credit === 0) {
                stoppedForCredit = true;
                break;
              }
              const want = Math.min(CHUNK, a.limit - sent);
              const chunk = await f.read(want);
              if (!chunk) break;
              const got = chunk.length; // read before the transfer empties chunk
              sent += got;
              credit--;
              progressed = true;
              sawOutput();
              const reusable = chunk.buffer.byteLength === CHUNK;
              a.port.postMessage({ kind: 'data', name: f.name, data: chunk, reusable } satisfies FollowMessage, [
                chunk.buffer as ArrayBuffer,
              ]);
              if (got < want) break; // at the end of what the file holds now
            }
            if (stoppedForCredit) break;
          }
          if (stoppedForCredit) dirty.output = true;
        }
        if (credit === 0 && !cancelled) {
          await sleep(true);
          continue;
        }
        if (progressed) continue;
        if (status === undefined && readStatus() !== undefined) {
          dirty.output = true;
          continue;
        }
      } else {
        // Read the status before the data: output written before the exit is then surely read below.
        status = readStatus();
        if (sink) {
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
              sawOutput();
              await sink.write(f.name, chunk);
            }
          }
          // The next daemon's watcher goes on from here (each line once, across restarts).
          if (forwarded) await saveSyslogOffsets(a.dir, files);
          if (sent >= a.limit) sent += await pendingBytes(files);
        } else if (dirty.output && status === undefined) {
          // Sizes only while the job runs: after its exit no limit is enforced.
          dirty.output = false;
          const before = sent;
          sent = (await files[0].size()) + (await files[1].size());
          if (sent !== before) sawOutput();
        }
      }
      const overLimit = a.sendData ? sent >= a.limit && (await pendingBytes(files)) > 0 : sent > a.limit;
      if (status !== undefined && !progressed) {
        // Nothing new after the exit: everything there is was read.
        a.port.postMessage({ kind: 'exit', status, truncated: overLimit } satisfies FollowMessage);
        const output = a.sendData || sink ? undefined : readSmallOutput(a.dir);
        return output ? { outcome: 'exit', status, output } : { outcome: 'exit', status };
      }
      if (overLimit && status === undefined && !a.sendData) return { outcome: 'limit' };
      if (progressed) continue;
      if (checkLiveness) {
        checkLiveness = false;
        await stat(a.dir); // ENOENT when the container was destroyed under us
        supervisor ??= await readJobPids(a.dir);
        if (supervisor && !(await isSameProcess(supervisor.supervisorPid, supervisor.supervisorStartTime))) {
          const late = await readExitStatus(a.dir);
          if (late === undefined) {
            await writeFile(join(a.dir, EXIT_STATUS), `${LOST_JOB_STATUS}\n`).catch(() => {});
          }
          dirty.status = true;
          continue;
        }
      }
      if (hotLook) {
        // Nothing written since the last hot look: the job went quiet.
        hotLook = false;
        if (!found) {
          coolDown();
          continue;
        }
        found = false;
      }
      await sleep();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { outcome: 'gone' };
    throw err;
  } finally {
    if (a.sendData && --streaming === 0) dropSpareChunks();
    unsweep();
    clearTimeout(hold);
    watcher?.close();
    for (const f of files) await f.close();
    await sink?.close();
    a.port.close();
  }
}

const sweep = new LivenessSweep(LIVENESS_MS);
/** This worker's followers that send output (the spare chunk buffers are kept only while there are any). */
let streaming = 0;

/**
 * A finished job's stdout and stderr when together they hold at most
 * SMALL_OUTPUT_BYTES, else undefined. Synchronous: two small reads block this
 * worker for microseconds, where async ones would wait their turn on the
 * threadpool the main thread's reads share.
 */
function readSmallOutput(dir: string): { stdout: Uint8Array; stderr: Uint8Array } | undefined {
  const buf = Buffer.allocUnsafe(SMALL_OUTPUT_BYTES + 1);
  let used = 0;
  const parts: Uint8Array[] = [];
  for (const name of ['stdout', 'stderr']) {
    let fd: number;
    try {
      fd = openSync(join(dir, name), 'r');
    } catch {
      parts.push(new Uint8Array(0)); // discarded or never written
      continue;
    }
    try {
      const start = used;
      for (let n = 1; n > 0 && used < buf.length; used += n) n = readSync(fd, buf, used, buf.length - used, used - start);
      if (used > SMALL_OUTPUT_BYTES) return undefined;
      parts.push(new Uint8Array(buf.subarray(start, used))); // a copy of its own size, not a view of buf
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
    }
  }
  return { stdout: parts[0]!, stderr: parts[1]! };
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
