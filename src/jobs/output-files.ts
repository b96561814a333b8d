// A job's output files as a worker-side follower (job-tasks.ts) reads them: in
// large reads at an offset, and how far syslog forwarding got across restarts.
// Reads are blocking calls: followers live in workers, the files are in the page
// cache (just written), and an async read is a threadpool round trip each.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Bytes per read of job output: large reads, few messages and frames (Stream frames of up to this size). */
export const CHUNK = 512 * 1024;

/**
 * Where this worker's reads land, shared by its followers (a read is synchronous,
 * so no two use it at once). A full read is sent as it is (transferred) and the
 * next read gets a new one; a short read is copied out at its own size. A fresh
 * 512 KiB buffer per read made each short read cost an mmap, page faults and
 * external memory that drove the worker's garbage collector (a quarter of a busy
 * worker's time at 32 concurrent stagings).
 */
let scratch: Buffer | undefined;

/**
 * Full-size buffers the main thread sent back once their bytes were written to
 * the client (see recycleChunk): a fast stream then reads into the same few
 * buffers again and again. Each fresh 512 KiB buffer cost the worker an mmap and
 * its page faults, and the main thread a garbage collection of the external
 * memory it had received: 0.5 ms a chunk of its time in a 400 MiB Stream.
 * At most a streaming follower's credit of them are kept, and none once no
 * follower streams.
 */
const spare: ArrayBuffer[] = [];
const MAX_SPARE = 4;

/** A buffer a data message carried comes back: kept for the next full read when it is one of ours. */
export function recycleChunk(buffer: ArrayBuffer): void {
  if (buffer.byteLength === CHUNK && spare.length < MAX_SPARE) spare.push(buffer);
}

function chunkBuffer(): Buffer {
  const b = spare.pop();
  return b ? Buffer.from(b) : Buffer.allocUnsafeSlow(CHUNK);
}

/** No follower streams any more: give the spare buffers back. */
export function dropSpareChunks(): void {
  spare.length = 0;
}

export class OutputFile {
  readonly path: string;
  readonly name: 'stdout' | 'stderr';
  fd: number | undefined;
  offset = 0;
  constructor(path: string, name: 'stdout' | 'stderr') {
    this.path = path;
    this.name = name;
  }

  async size(): Promise<number> {
    try {
      return statSync(this.path).size;
    } catch {
      return 0;
    }
  }

  /** The next chunk (at most max bytes), in an ArrayBuffer of its own so it can be transferred; undefined at the end. */
  async read(max: number): Promise<Buffer | undefined> {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.path, 'r');
      } catch {
        return undefined;
      }
    }
    // Never the shared pool: the buffer is transferred to the main thread.
    const buf = (scratch ??= chunkBuffer());
    const want = Math.min(CHUNK, max);
    const bytesRead = readSync(this.fd, buf, 0, want, this.offset);
    if (bytesRead === 0) return undefined;
    this.offset += bytesRead;
    if (bytesRead === CHUNK) {
      scratch = undefined;
      return buf;
    }
    const out = Buffer.allocUnsafeSlow(bytesRead);
    buf.copy(out, 0, 0, bytesRead);
    return out;
  }

  async close(): Promise<void> {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // already gone with its folder
      }
    }
    this.fd = undefined;
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
