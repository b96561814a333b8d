// Preloaded into the daemon (main thread and every worker, through NODE_OPTIONS
// --import) when the harness runs with --trace: records, as JSON lines in
// $WARDEN_BENCH_TRACE,
//   - every process the daemon starts (child_process.spawn): command, start, time
//     to exit, and the synchronous part of the spawn (fork + exec block the
//     calling thread's event loop for that long);
//   - every fs.promises call and FileHandle method (mkdir, writeFile, open, sync,
//     rename, rm, readFile...): time from the call to its settling, which includes
//     the wait for a libuv threadpool thread (4 by default, shared by the main
//     thread and every worker).
// Host commands are started by each thread's spawner process (src/host/spawner.ts),
// whose environment is only PATH: the trace adds itself to the spawner's start, so
// the commands are recorded where they are spawned (their synchronous part then
// blocks the spawner, not the daemon's thread; `by: "spawner"` says so).
// It changes no daemon code and costs a push per call; lines are appended in
// batches off the request path.
import { appendFile } from 'node:fs/promises';
import { appendFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { threadId } from 'node:worker_threads';

const file = process.env.WARDEN_BENCH_TRACE;
if (file) {
  const require = createRequire(import.meta.url);
  let buffer: string[] = [];
  const by = process.env.WARDEN_BENCH_TRACE_BY;
  const record = (cmd: string, args: string[], start: number, ms: number, extra: Record<string, unknown> = {}) => {
    buffer.push(`${JSON.stringify({ cmd, args, start, ms: Math.round(ms * 1000) / 1000, thread: threadId, ...(by ? { by } : {}), ...extra })}\n`);
  };
  // This very preload, for the spawner processes the daemon starts.
  const preload = (process.env.NODE_OPTIONS ?? '').split(/\s+/).filter((o) => o.startsWith('--import=') && o.endsWith('spawn-trace.ts'));
  // The trace's own writes must not be traced: keep the originals.
  const append = appendFile;
  const flush = () => {
    if (buffer.length === 0) return;
    const text = buffer.join('');
    buffer = [];
    append(file, text).catch(() => undefined);
  };
  setInterval(flush, 500).unref();
  process.on('exit', () => {
    if (buffer.length) appendFileSync(file, buffer.join(''));
    buffer = [];
  });

  // ---- processes
  const cp = require('node:child_process') as typeof import('node:child_process');
  const originalSpawn = cp.spawn;
  const wrappedSpawn = function (this: unknown, command: string, ...rest: unknown[]) {
    const args = Array.isArray(rest[0]) ? (rest[0] as string[]) : [];
    if (command === process.execPath && args.some((a) => /spawner-process\.[jt]s$/.test(String(a)))) {
      // A thread's spawner: trace the commands it starts; it lives as long as its thread (not a command).
      const o = (rest[1] ?? {}) as { env?: Record<string, string> };
      const env = { ...(o.env ?? {}), NODE_OPTIONS: preload.join(' '), WARDEN_BENCH_TRACE: file, WARDEN_BENCH_TRACE_BY: 'spawner' };
      return (originalSpawn as (...a: unknown[]) => import('node:child_process').ChildProcess).call(this, command, args, { ...o, env });
    }
    const start = Date.now();
    const t0 = performance.now();
    const child = (originalSpawn as (...a: unknown[]) => import('node:child_process').ChildProcess).call(this, command, ...rest);
    const syncMs = Math.round((performance.now() - t0) * 1000) / 1000;
    child.once('exit', (code) => {
      record(command, args.slice(0, 12).map((a) => String(a).slice(0, 80)), start, performance.now() - t0, { code, syncMs });
    });
    return child;
  };
  cp.spawn = wrappedSpawn as typeof cp.spawn;

  // ---- fs.promises and FileHandle
  const fsp = require('node:fs/promises') as Record<string, unknown>;
  const pathArg = (a: unknown) => (typeof a === 'string' ? a.slice(-80) : a instanceof URL ? a.pathname.slice(-80) : '');
  const NAMES = ['mkdir', 'writeFile', 'readFile', 'rm', 'rmdir', 'rename', 'open', 'readdir', 'stat', 'lstat', 'access', 'readlink', 'unlink', 'appendFile', 'chown', 'statfs', 'copyFile'];
  for (const name of NAMES) {
    const original = fsp[name];
    if (typeof original !== 'function') continue;
    fsp[name] = function (this: unknown, ...args: unknown[]) {
      const start = Date.now();
      const t0 = performance.now();
      const p = (original as (...a: unknown[]) => Promise<unknown>).apply(this, args);
      const done = () => record(`fs.${name}`, [pathArg(args[0])], start, performance.now() - t0);
      p.then(done, done);
      return p;
    };
  }
  // FileHandle methods, through the prototype of a handle (the class is not exported).
  void (async () => {
    const open = require('node:fs/promises').open as typeof import('node:fs/promises').open;
    const fh = await open('/dev/null', 'r');
    const proto = Object.getPrototypeOf(fh) as Record<string, unknown>;
    await fh.close();
    for (const name of ['sync', 'datasync', 'writeFile', 'readFile', 'read', 'write', 'close']) {
      const original = proto[name];
      if (typeof original !== 'function') continue;
      proto[name] = function (this: unknown, ...args: unknown[]) {
        const start = Date.now();
        const t0 = performance.now();
        const p = (original as (...a: unknown[]) => Promise<unknown>).apply(this, args);
        const done = () => record(`fs.handle.${name === 'sync' ? 'fsync' : name}`, [], start, performance.now() - t0);
        p.then(done, done);
        return p;
      };
    }
  })();
  syncBuiltinESMExports();
}
