// Types of spawner-wire.js (plain JavaScript: the spawner process loads it
// without Node's type stripping).

/** One command for the spawner to start. */
export interface SpawnOrder {
  id: number;
  file: string;
  args: string[];
  cwd?: string;
  /** The whole environment of the command (nothing is inherited from the spawner). */
  env: Record<string, string>;
  /** Bytes for the command's stdin, base64; absent: stdin is /dev/null. */
  inputBase64?: string;
  /** 'pipe' collects the stream (up to maxOutputBytes); 'ignore' sends it to /dev/null. */
  stdout: 'pipe' | 'ignore';
  stderr: 'pipe' | 'ignore';
  /** Kill (TERM, then KILL after killGraceMs) after this long; 0: never. */
  timeoutMs: number;
  killGraceMs: number;
  /** Bytes of stdout and of stderr kept at most; the rest is dropped (and said so). */
  maxOutputBytes: number;
  /**
   * A second command fed this one's stdout: a pipeline whose bytes pass through the
   * spawner, never through the daemon. This order's `stdout` is then ignored.
   */
  pipeTo?: PipeOrder;
  /**
   * With pipeTo: once the second command has ended, how long this one may go on
   * writing (what it writes is read and dropped, so it never blocks) before it is
   * killed. Default 0: killed as soon as the second has ended and it has not.
   */
  sourceGraceMs?: number;
  /**
   * A fork server script (src/jobs/job-starter.sh) that may start this command
   * instead: the spawner keeps one running and hands it the order when the order is
   * one it can take (see spawner-process.js), else spawns the command as usual.
   * The report is then the server's: exit code 0 once the command is under way.
   */
  starter?: string;
  /**
   * A cgroup.procs file the command must start from (runc run resolves its
   * relative cgroupsPath against its own cgroup, see runtime/runc.ts). The spawner
   * starts the command itself when it is in that cgroup already, else through a
   * shell that writes its pid there first and then execs the command; the shell
   * exits JOIN_CGROUP_FAILED when it cannot.
   */
  joinCgroup?: string;
}

/** The second command of a pipeline (SpawnOrder.pipeTo); the timeout is the pipeline's. */
export interface PipeOrder {
  file: string;
  args: string[];
  cwd?: string;
  env: Record<string, string>;
  stdout: 'pipe' | 'ignore';
  stderr: 'pipe' | 'ignore';
}

/** What became of one command of an order. */
export interface CommandReport {
  pid?: number;
  exitCode?: number | null;
  signal?: string | null;
  stdout?: string;
  stderr?: string;
  /** The output passed maxOutputBytes and was cut. */
  truncated?: boolean;
  /** The command could not be started at all (ENOENT, EACCES, ...). */
  spawnError?: string;
}

/** What became of one order: its (first) command, and the second of a pipeline. */
export interface SpawnReport extends CommandReport {
  id: number;
  timedOut?: boolean;
  pipeTo?: CommandReport;
  /** With pipeTo: the first command still ran sourceGraceMs after the second ended, and was killed. */
  stoppedAfterGrace?: boolean;
}

/** Encodes one message as a frame. */
export function frame(message: SpawnOrder | SpawnReport): Buffer;

/** Exit status of the shell that moves a command into SpawnOrder.joinCgroup, when it cannot. */
export const JOIN_CGROUP_FAILED: number;

/** Splits a byte stream into the JSON messages of its frames. */
export class FrameReader<T> {
  /** Feeds bytes; returns every message now complete. */
  push(chunk: Buffer): T[];
}
