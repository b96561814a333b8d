// The small filesystem calls of code that runs on either kind of thread: blocking
// calls in a worker, the promise API on the main thread (which must never block).
// A worker's thread is there to block; each async call from it was a round trip
// through libuv's threadpool, a wake-up and a context switch each way. On this
// project's 2-core VMs a profile of create+destroy put half of the daemon's own
// CPU in that traffic (threadpool threads, futex wake-ups, switches), for calls
// that take microseconds (stat, mkdir, small reads and writes of etc, cgroup and
// /proc files).
// Not for calls that can take long: recursive removal, copies of file contents,
// writes that wait for the kernel's network lock (sysctl.ts keeps its own). Those
// stay on node:fs/promises.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { isMainThread } from 'node:worker_threads';

/** Runs the blocking call now; its throw becomes the promise's rejection, as with fs/promises. */
function now<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (err) {
    return Promise.reject(err);
  }
}

const blocking = !isMainThread;

export function access(path: fs.PathLike, mode?: number): Promise<void> {
  return blocking ? now(() => fs.accessSync(path, mode)) : fsp.access(path, mode);
}

export function chown(path: fs.PathLike, uid: number, gid: number): Promise<void> {
  return blocking ? now(() => fs.chownSync(path, uid, gid)) : fsp.chown(path, uid, gid);
}

export function lstat(path: fs.PathLike): Promise<fs.Stats> {
  return blocking ? now(() => fs.lstatSync(path)) : fsp.lstat(path);
}

export function stat(path: fs.PathLike): Promise<fs.Stats> {
  return blocking ? now(() => fs.statSync(path)) : fsp.stat(path);
}

export function statfs(path: fs.PathLike): Promise<fs.StatsFs> {
  return blocking ? now(() => fs.statfsSync(path)) : fsp.statfs(path);
}

export function mkdir(path: fs.PathLike, opts?: fs.MakeDirectoryOptions): Promise<string | undefined> {
  return blocking ? now(() => fs.mkdirSync(path, opts)) : fsp.mkdir(path, opts);
}

export function readdir(path: fs.PathLike): Promise<string[]> {
  return blocking ? now(() => fs.readdirSync(path)) : fsp.readdir(path);
}

export function readFile(path: fs.PathLike, encoding: BufferEncoding): Promise<string>;
export function readFile(path: fs.PathLike): Promise<Buffer>;
export function readFile(path: fs.PathLike, encoding?: BufferEncoding): Promise<string | Buffer> {
  if (encoding === undefined) return blocking ? now(() => fs.readFileSync(path)) : fsp.readFile(path);
  return blocking ? now(() => fs.readFileSync(path, encoding)) : fsp.readFile(path, encoding);
}

export function readlink(path: fs.PathLike): Promise<string> {
  return blocking ? now(() => fs.readlinkSync(path)) : fsp.readlink(path);
}

export function realpath(path: fs.PathLike): Promise<string> {
  return blocking ? now(() => fs.realpathSync(path)) : fsp.realpath(path);
}

export function rmdir(path: fs.PathLike): Promise<void> {
  return blocking ? now(() => fs.rmdirSync(path)) : fsp.rmdir(path);
}

export function symlink(target: fs.PathLike, path: fs.PathLike): Promise<void> {
  return blocking ? now(() => fs.symlinkSync(target, path)) : fsp.symlink(target, path);
}

export function unlink(path: fs.PathLike): Promise<void> {
  return blocking ? now(() => fs.unlinkSync(path)) : fsp.unlink(path);
}

export function writeFile(path: fs.PathLike, data: string | Uint8Array, opts?: fs.WriteFileOptions): Promise<void> {
  return blocking ? now(() => fs.writeFileSync(path, data, opts)) : fsp.writeFile(path, data, opts);
}

/** readdir with each entry's type. */
export function readdirTyped(path: fs.PathLike): Promise<fs.Dirent[]> {
  return blocking ? now(() => fs.readdirSync(path, { withFileTypes: true })) : fsp.readdir(path, { withFileTypes: true });
}
