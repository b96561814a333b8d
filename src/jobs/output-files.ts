// A job's output files as a worker-side follower (job-tasks.ts) reads them: in
// large reads at an offset, and how far syslog forwarding got across restarts.
import { open, readFile, rename, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** Bytes per read of job output: large reads, few messages and frames (Stream frames of up to this size). */
export const CHUNK = 512 * 1024;

export class OutputFile {
  readonly path: string;
  readonly name: 'stdout' | 'stderr';
  fh: FileHandle | undefined;
  offset = 0;
  /** Where reads land; a full one is sent as it is (transferred), a short one is copied out. */
  private scratch: Buffer | undefined;
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

  /** The next chunk (at most max bytes), in an ArrayBuffer of its own so it can be transferred; undefined at the end. */
  async read(max: number): Promise<Buffer | undefined> {
    if (!this.fh) {
      try {
        this.fh = await open(this.path, 'r');
      } catch {
        return undefined;
      }
    }
    // Never the shared pool: the buffer is transferred to the main thread.
    const buf = (this.scratch ??= Buffer.allocUnsafeSlow(CHUNK));
    const want = Math.min(CHUNK, max);
    const { bytesRead } = await this.fh.read(buf, 0, want, this.offset);
    // Kept only while reads come back full: a follower that waits for its job holds none.
    if (bytesRead < CHUNK) this.scratch = undefined;
    if (bytesRead === 0) return undefined;
    this.offset += bytesRead;
    if (bytesRead === CHUNK) {
      this.scratch = undefined;
      return buf;
    }
    const out = Buffer.allocUnsafeSlow(bytesRead);
    buf.copy(out, 0, 0, bytesRead);
    return out;
  }

  async close(): Promise<void> {
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
    this.scratch = undefined;
  }
}

/** Bytes of stdout and stderr forwarded to syslog so far: `<stdout> <stderr>`. */
const SYSLOG_OFFSETS = 'syslog_offsets';

export async function readSyslogOffsets(dir: string): Promise<number[]> {
  try {
    const nums = (await readFile(join(dir, SYSLOG_OFFSETS), 'utf8')).trim().split(' ').map(Number);
    return nums.length === 2 && nums.every((n) => Number.isSafeInteger(n) && n >= 0) ? nums : [0, 0];
  } catch {
    return [0, 0];
  }
}

export async function saveSyslogOffsets(dir: string, files: OutputFile[]): Promise<void> {
  // Write then rename: a reader never sees half a file. No fsync: the offsets only
  // need to outlive the daemon, not the host.
  const tmp = join(dir, `${SYSLOG_OFFSETS}.tmp`);
  await writeFile(tmp, `${files[0].offset} ${files[1].offset}\n`);
  await rename(tmp, join(dir, SYSLOG_OFFSETS));
}

export async function pendingBytes(files: OutputFile[]): Promise<number> {
  let n = 0;
  for (const f of files) n += Math.max(0, (await f.size()) - f.offset);
  return n;
}
