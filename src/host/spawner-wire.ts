// What a thread and its spawner process say to each other over the spawner's
// stdin and stdout: frames of a 4-byte big-endian length and a JSON body. Both
// sides are ours and trusted; the bytes a command reads or writes travel base64
// encoded only where they may not be text (input).

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
export function frame(message: SpawnOrder | SpawnReport): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** Splits a byte stream into the JSON messages of its frames. */
export class FrameReader<T> {
  private buffered: Buffer = Buffer.alloc(0);

  /** Feeds bytes; returns every message now complete. */
  push(chunk: Buffer): T[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const out: T[] = [];
    while (this.buffered.length >= 4) {
      const len = this.buffered.readUInt32BE(0);
      if (this.buffered.length < 4 + len) break;
      out.push(JSON.parse(this.buffered.toString('utf8', 4, 4 + len)) as T);
      this.buffered = this.buffered.subarray(4 + len);
    }
    if (this.buffered.length === 0) this.buffered = Buffer.alloc(0);
    return out;
  }
}
