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
}

/** What became of one order. */
export interface SpawnReport {
  id: number;
  pid?: number;
  exitCode?: number | null;
  signal?: string | null;
  stdout?: string;
  stderr?: string;
  /** The output passed maxOutputBytes and was cut. */
  truncated?: boolean;
  timedOut?: boolean;
  /** The command could not be started at all (ENOENT, EACCES, ...). */
  spawnError?: string;
}

/** Encodes one message as a frame. */
export function frame(message: SpawnOrder | SpawnReport): Buffer;

/** Splits a byte stream into the JSON messages of its frames. */
export class FrameReader<T> {
  /** Feeds bytes; returns every message now complete. */
  push(chunk: Buffer): T[];
}
