// A thread's side of a spawner process (spawner-process.js), which starts the
// host commands of the thread.
// - The daemon starts one spawner first thing (startSharedSpawner, from main.ts),
//   before it loads its modules: a Node start is ~100 ms of CPU, and at a restart
//   the spawner would otherwise start only at the first host command, with the
//   daemon waiting on it. The worker threads connect to it (useSharedSpawner, at
//   worker boot) over a unix socket in a folder only the daemon's user can enter.
// - A thread without one (a test's main thread, the low-priority janitor, or a
//   worker whose shared spawner is gone) starts its own on its first command,
//   over its own pipes, and keeps it for its life.
// If a spawner dies, the orders in flight fail and the next command uses a
// private one.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmdirSync, unlinkSync } from 'node:fs';
import { lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameReader, frame, type SpawnOrder, type SpawnReport } from './spawner-wire.js';

const ENTRY = fileURLToPath(new URL('./spawner-process.js', import.meta.url));

export type SpawnRequest = Omit<SpawnOrder, 'id'>;

/** What a worker needs to reach the daemon's shared spawner (it crosses to the worker in workerData). */
export interface SharedSpawner {
  /** The spawner's unix socket. */
  socket: string;
  /** One Int32: 0 while the spawner starts, 1 once it listens, 2 if it could not start or is gone. */
  state: SharedArrayBuffer;
}

const STARTING = 0;
const READY = 1;
const FAILED = 2;
/** How long a worker waits for the shared spawner's start before it starts its own. */
const SHARED_START_TIMEOUT_MS = 10_000;
/** The shared spawner's folder in the temporary directory: warden-spawner-<daemon pid>-XXXXXX. */
const SHARED_DIR_PREFIX = 'warden-spawner-';
const SHARED_DIR = new RegExp(`^${SHARED_DIR_PREFIX}(\\d+)-[A-Za-z0-9]{6}$`);
/** sun_path holds 108 bytes with its NUL. */
const MAX_SOCKET_PATH = 100;

/** The byte streams to one spawner, and how its end shows. */
interface Link {
  write(b: Buffer): void;
  onData(fn: (chunk: Buffer) => void): void;
  onGone(fn: (why: string) => void): void;
  /** Whether the link keeps the thread's event loop alive. */
  hold(yes: boolean): void;
}

interface Pending {
  resolve(r: SpawnReport): void;
  reject(err: Error): void;
}

class Spawner {
  private readonly pending = new Map<number, Pending>();
  private readonly reader = new FrameReader<SpawnReport>();
  private nextId = 1;
  dead = false;
  private readonly link: Link;
  private readonly events: { hello?(): void; gone?(): void };

  constructor(link: Link, events: { hello?(): void; gone?(): void } = {}) {
    this.link = link;
    this.events = events;
    link.onData((chunk) => {
      for (const r of this.reader.push(chunk)) this.settle(r);
    });
    link.onGone((why) => this.fail(new Error(`the host-command spawner ${why}`)));
    // While nothing is in flight the spawner must not keep the thread alive.
    link.hold(false);
  }

  order(req: SpawnRequest): Promise<SpawnReport> {
    if (this.dead) return Promise.reject(new Error('the host-command spawner is gone'));
    const id = this.nextId++;
    return new Promise<SpawnReport>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) this.link.hold(true);
      this.link.write(frame({ ...req, id }));
    });
  }

  private settle(r: SpawnReport): void {
    if (r.id === 0) {
      this.events.hello?.();
      return;
    }
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (this.pending.size === 0) this.link.hold(false);
    p.resolve(r);
  }

  private fail(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (current === this) current = undefined;
    this.events.gone?.();
  }
}

/** A spawner process of this thread's own, over its stdin and stdout. */
function childLink(args: string[] = []): Link {
  // --single-threaded (V8: no background compile or GC threads): the spawner's heap is
  // tiny, and a process with fewer threads and mappings forks and execs cheaper
  // (bench/host-commands.ts: about 10% less CPU per command, spawner and command).
  // --max-semi-space-size=1: its garbage is short-lived orders and reports, and with
  // V8's default young generation its heap grew to 67-77 MiB within 20 s of
  // create+destroy at c=16 (27-30 MiB with this), CPU per cycle unchanged.
  const child = spawn(process.execPath, ['--max-old-space-size=64', '--max-semi-space-size=1', '--single-threaded', ENTRY, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    // Out of the daemon's process group: a group signal must not end it mid-order.
    detached: true,
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  child.stdin!.on('error', () => undefined);
  return {
    write: (b) => child.stdin!.write(b),
    onData: (fn) => child.stdout!.on('data', fn),
    onGone: (fn) => {
      child.once('error', (err) => fn(`could not start: ${err.message}`));
      child.once('exit', (code, signal) => fn(`exited (${signal ?? `status ${code}`})`));
    },
    hold: (yes) => {
      const stdout = child.stdout as unknown as { ref(): void; unref(): void };
      if (yes) {
        child.ref();
        stdout.ref();
      } else {
        child.unref();
        stdout.unref();
        (child.stdin as unknown as { unref?(): void }).unref?.();
      }
    },
  };
}

/** A connection to the daemon's shared spawner. */
function socketLink(sock: Socket): Link {
  return {
    write: (b) => sock.write(b),
    onData: (fn) => sock.on('data', fn),
    onGone: (fn) => {
      sock.on('error', () => undefined);
      sock.once('close', () => fn('closed its socket (the shared spawner is gone)'));
    },
    hold: (yes) => (yes ? sock.ref() : sock.unref()),
  };
}

let current: Spawner | undefined;
let connecting: Promise<Spawner> | undefined;
/** The daemon's shared spawner, while this (worker) thread may use it. */
let shared: { socket: string; state: Int32Array } | undefined;

/** Has this thread's spawner start one command and report what became of it. */
export function spawnHost(req: SpawnRequest): Promise<SpawnReport> {
  if (current && !current.dead) return current.order(req);
  if (!shared) {
    current = new Spawner(childLink());
    return current.order(req);
  }
  connecting ??= connectShared(shared).finally(() => (connecting = undefined));
  return connecting.then((s) => s.order(req));
}

/** A worker thread: use the daemon's shared spawner rather than starting one. */
export function useSharedSpawner(s: SharedSpawner): void {
  shared = { socket: s.socket, state: new Int32Array(s.state) };
}

/** Connects to the shared spawner once it listens; on any failure, this thread starts its own from then on. */
async function connectShared(s: { socket: string; state: Int32Array }): Promise<Spawner> {
  try {
    if (Atomics.load(s.state, 0) === STARTING) {
      const wait = Atomics.waitAsync(s.state, 0, STARTING, SHARED_START_TIMEOUT_MS);
      if (wait.async) await wait.value;
    }
    if (Atomics.load(s.state, 0) !== READY) throw new Error('the shared spawner did not start');
    const sock = connect(s.socket);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.removeAllListeners('error');
    current = new Spawner(socketLink(sock), {
      gone: () => {
        if (shared === s) shared = undefined;
      },
    });
  } catch {
    if (shared === s) shared = undefined;
    current = new Spawner(childLink());
  }
  return current;
}

/**
 * The daemon's main thread, first thing: starts the spawner its workers share
 * (WorkerPool passes the result on), which is also this thread's. Undefined when
 * no private folder for its socket could be made: each thread then starts its own.
 */
export function startSharedSpawner(): SharedSpawner | undefined {
  let dir: string;
  try {
    // mkdtemp makes the folder 0700: only the daemon's user reaches the socket.
    dir = mkdtempSync(join(tmpdir(), `${SHARED_DIR_PREFIX}${process.pid}-`));
  } catch {
    return undefined;
  }
  const socket = join(dir, 's');
  if (socket.length > MAX_SOCKET_PATH) {
    rmdirSync(dir);
    return undefined;
  }
  const state = new SharedArrayBuffer(4);
  const flag = new Int32Array(state);
  const settle = (to: number) => {
    Atomics.store(flag, 0, to);
    Atomics.notify(flag, 0);
  };
  current = new Spawner(childLink(['--listen', socket]), {
    hello: () => settle(READY),
    gone: () => {
      settle(FAILED);
      removeSharedDir(dir);
    },
  });
  return { socket, state };
}

/** A shared spawner's socket and folder (the spawner removes them itself when it ends normally). */
function removeSharedDir(dir: string): void {
  try {
    unlinkSync(join(dir, 's'));
  } catch {
    // not there
  }
  try {
    rmdirSync(dir);
  } catch {
    // gone, or not empty: not ours to empty
  }
}

async function removeSharedDirLater(dir: string): Promise<boolean> {
  await unlink(join(dir, 's')).catch(() => undefined);
  return rmdir(dir).then(
    () => true,
    () => false,
  );
}

/**
 * Folders of shared spawners whose daemon is gone (both killed at once, as a
 * cgroup kill does; a spawner that outlives its daemon removes its own).
 * Returns the folders removed.
 */
export async function removeStaleSharedSpawners(): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const pid = Number(SHARED_DIR.exec(name)?.[1]);
    if (!pid || pid === process.pid || processExists(pid)) continue;
    const dir = join(tmpdir(), name);
    // Only a real folder of our own user: anyone may create such a name in /tmp,
    // e.g. a symlink to a folder where we must not remove an entry named `s`.
    const st = await lstat(dir).catch(() => undefined);
    if (!st?.isDirectory() || st.uid !== process.getuid?.()) continue;
    if (await removeSharedDirLater(dir)) removed.push(dir);
  }
  return removed;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
