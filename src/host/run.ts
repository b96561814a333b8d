// The one way the daemon runs a host command: argument arrays only, bounded in
// time (a wedged tool delays one request, never hangs a worker), started by the
// thread's spawner process (never forked from the big daemon), and a failure
// becomes one HostCommandError that says what was being done, the command, and
// why: `net_in: iptables -t nat -A ... failed: <stderr>`.
// Layer: src/host/ is how workers touch the host (commands, /proc, untrusted
// unpacking); it knows nothing of containers, requests or the protocol.
import { WardenError } from '../model/errors.ts';
import { spawnHost, type SpawnRequest } from './spawner.ts';
import type { SpawnReport } from './spawner-wire.ts';

export { JOIN_CGROUP_FAILED } from './spawner-wire.js';

export interface HostRunOptions {
  /** What the caller was doing; the error message starts with it. */
  context: string;
  /** Text or bytes for the command's stdin; absent: /dev/null. */
  input?: string | Uint8Array;
  /** Kill the command (TERM, KILL 2 s later) after this long; default 60 s. */
  timeoutMs?: number;
  cwd?: string;
  /** Added to the daemon's environment (LC_ALL=C is always set). */
  env?: Record<string, string>;
  /** 'ignore' for commands that leave a daemon holding their output open (`runc run -d`). */
  output?: 'pipe' | 'ignore';
  /** Resolve with the result instead of throwing when the command exits non-zero. */
  allowFailure?: boolean;
  /** A cgroup.procs file the command must start from (SpawnOrder.joinCgroup); exit JOIN_CGROUP_FAILED when it cannot get there. */
  joinCgroup?: string;
}

export interface HostResult {
  stdout: string;
  stderr: string;
  /** null when a signal ended it. */
  exitCode: number | null;
  signal: string | null;
}

/** A host command failed, could not start, or timed out. */
export class HostCommandError extends WardenError {
  override name = 'HostCommandError';
  readonly command: string;
  readonly exitCode: number | null | undefined;
  readonly stderr: string;

  constructor(message: string, command: string, exitCode: number | null | undefined, stderr: string, cause?: unknown) {
    super(message, { code: 'host_command', cause });
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;
const KILL_GRACE_MS = 2_000;
/** Host tools answer in lines, not megabytes; more is cut rather than held. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** The daemon's environment with LC_ALL=C, read once: each read of process.env goes through libuv's environ lock, and a host command took 90 µs of its worker for it. */
let baseEnv: Record<string, string> | undefined;

function environment(extra: Record<string, string> | undefined): Record<string, string> {
  if (!baseEnv) {
    baseEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) baseEnv[k] = v;
    baseEnv.LC_ALL = 'C';
  }
  return extra ? { ...baseEnv, ...extra } : baseEnv;
}

function inputBase64(input: string | Uint8Array | undefined): string | undefined {
  if (input === undefined) return undefined;
  return (typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input.buffer, input.byteOffset, input.byteLength)).toString('base64');
}

/** Starts one command and reports what became of it (the thread's spawner process). */
export type HostSpawn = (req: SpawnRequest) => Promise<Omit<SpawnReport, 'id'>>;

let spawnCommand: HostSpawn = spawnHost;

/**
 * Test seam: from now on this thread's commands go to `fn` instead of the host
 * (undefined: the spawner again). Unit tests use it to check the Linux backend's
 * command sequences and its undo without root (test/support/fake-host-runner.ts);
 * everything else of runHost (errors, allowFailure, timeouts) stays as it is.
 * The daemon never calls it.
 */
export function setHostRunner(fn: HostSpawn | undefined): void {
  spawnCommand = fn ?? spawnHost;
}

/** Runs file with args to its end; throws HostCommandError unless it exits 0 (or allowFailure). */
export async function runHost(file: string, args: readonly string[], opts: HostRunOptions): Promise<HostResult> {
  const shown = [file, ...args].join(' ');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const r = await spawnCommand({
    file,
    args: [...args],
    cwd: opts.cwd,
    env: environment(opts.env),
    inputBase64: inputBase64(opts.input),
    stdout: opts.output ?? 'pipe',
    stderr: opts.output ?? 'pipe',
    timeoutMs,
    killGraceMs: KILL_GRACE_MS,
    maxOutputBytes: MAX_OUTPUT_BYTES,
    ...(opts.joinCgroup ? { joinCgroup: opts.joinCgroup } : {}),
  }).catch((err: Error) => {
    throw new HostCommandError(`${opts.context}: ${shown} failed: ${err.message}`, shown, null, '');
  });
  if (r.spawnError !== undefined) {
    throw new HostCommandError(`${opts.context}: ${shown} failed: ${r.spawnError}`, shown, null, '');
  }
  const result: HostResult = {
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '').trim(),
    exitCode: r.exitCode ?? null,
    signal: r.signal ?? null,
  };
  if (r.timedOut) {
    throw new HostCommandError(`${opts.context}: ${shown} failed: timed out after ${timeoutMs} ms`, shown, result.exitCode, result.stderr);
  }
  if (result.exitCode !== 0 && !opts.allowFailure) {
    const why = result.stderr || (result.signal ? `killed by ${result.signal}` : `exit status ${result.exitCode}`);
    throw new HostCommandError(`${opts.context}: ${shown} failed: ${why}`, shown, result.exitCode, result.stderr);
  }
  return result;
}

/** One command of a pipeline. */
export interface PipelineCommand {
  file: string;
  args: readonly string[];
  cwd?: string;
  /** Added to the daemon's environment (LC_ALL=C always), or the whole of it with cleanEnv. */
  env?: Record<string, string>;
  cleanEnv?: boolean;
}

export interface PipelineOptions {
  /** What the caller was doing (for the errors of a runner that could not be reached). */
  context: string;
  /** Kill both (TERM, KILL 2 s later) after this long; default 60 s. */
  timeoutMs?: number;
  /** Once the sink has ended, how long the source may go on (its output dropped) before it is killed; default 0. */
  sourceGraceMs?: number;
}

/** How one command of a pipeline ended; `failure` says why it counts as failed, if it does. */
export interface PipelineEnd extends HostResult {
  spawnError?: string;
  /** undefined: it exited 0. */
  failure?: string;
}

export interface PipelineResult {
  source: PipelineEnd;
  sink: PipelineEnd;
  timedOut: boolean;
  /** The source still ran sourceGraceMs after the sink had ended, and was killed. */
  stoppedAfterGrace: boolean;
}

function pipelineEnd(r: Omit<SpawnReport, 'id'> | undefined, timeoutMs: number, timedOut: boolean): PipelineEnd {
  const end: PipelineEnd = {
    stdout: r?.stdout ?? '',
    stderr: (r?.stderr ?? '').trim(),
    exitCode: r?.exitCode ?? null,
    signal: r?.signal ?? null,
    ...(r?.spawnError !== undefined ? { spawnError: r.spawnError } : {}),
  };
  if (!r) end.failure = 'no report from the spawner';
  else if (r.spawnError !== undefined) end.failure = r.spawnError;
  else if (timedOut && (end.exitCode !== 0 || end.signal)) end.failure = `timed out after ${timeoutMs} ms`;
  else if (end.exitCode !== 0) end.failure = end.stderr || (end.signal ? `killed by ${end.signal}` : `exit status ${end.exitCode}`);
  return end;
}

/**
 * source | sink, both started by the thread's spawner, the bytes between them never
 * passing through the daemon. Resolves with how each ended (copies judge that
 * themselves: a tar that skipped device nodes, a source that went on too long);
 * rejects only when the spawner cannot be reached.
 */
export async function runPipeline(source: PipelineCommand, sink: PipelineCommand, opts: PipelineOptions): Promise<PipelineResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const envOf = (c: PipelineCommand) => (c.cleanEnv ? { ...c.env } : environment(c.env));
  const r = await spawnCommand({
    file: source.file,
    args: [...source.args],
    cwd: source.cwd,
    env: envOf(source),
    stdout: 'pipe',
    stderr: 'pipe',
    timeoutMs,
    killGraceMs: KILL_GRACE_MS,
    maxOutputBytes: MAX_OUTPUT_BYTES,
    pipeTo: { file: sink.file, args: [...sink.args], cwd: sink.cwd, env: envOf(sink), stdout: 'pipe', stderr: 'pipe' },
    sourceGraceMs: opts.sourceGraceMs ?? 0,
  }).catch((err: Error) => {
    throw new HostCommandError(`${opts.context}: ${source.file} | ${sink.file} failed: ${err.message}`, `${source.file} | ${sink.file}`, null, '');
  });
  const timedOut = r.timedOut === true;
  return {
    source: pipelineEnd(r, timeoutMs, timedOut),
    sink: pipelineEnd(r.pipeTo, timeoutMs, timedOut),
    timedOut,
    stoppedAfterGrace: r.stoppedAfterGrace === true,
  };
}
