// Reading the kernel's small text files (cgroupfs, sysfs, procfs). They report a
// size of 0 or 4096 whatever they hold, so fs.readFile does an fstat and reads
// until a read returns nothing: five threadpool trips for one Info figure. A
// kernel file answers a read at offset 0 with all it has, so open, one read into
// a buffer big enough and close do (a read that fills the buffer goes on).
// Workers use both: the blocking one where a few reads in a row cost less than
// a threadpool trip each (Info, limits).
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

const FIRST_READ = 16 * 1024;

/** The file's whole text; throws as open or read would (ENOENT when a group is gone). */
export async function readKernelFile(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    let buf = Buffer.allocUnsafe(FIRST_READ);
    let got = (await fh.read(buf, 0, buf.length, 0)).bytesRead;
    while (got === buf.length) {
      const bigger = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(bigger, 0, 0, got);
      buf = bigger;
      const n = (await fh.read(buf, got, buf.length - got, got)).bytesRead;
      if (n === 0) break;
      got += n;
    }
    return buf.toString('utf8', 0, got);
  } finally {
    await fh.close();
  }
}

/** readKernelFile, blocking: for a worker, where a few reads in a row cost less than a threadpool trip each. */
export function readKernelFileSync(path: string): string {
  const fd = openSync(path, 'r');
  try {
    let buf = Buffer.allocUnsafe(FIRST_READ);
    let got = readSync(fd, buf, 0, buf.length, 0);
    while (got === buf.length) {
      const bigger = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(bigger, 0, 0, got);
      buf = bigger;
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.toString('utf8', 0, got);
  } finally {
    closeSync(fd);
  }
}
