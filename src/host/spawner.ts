// The thread's side of its spawner process (spawner-process.js): started on the
// first command a thread runs, while the process is still small, and kept for the
// thread's life. Every thread (each worker, or a test's main thread) has its own,
// over its own pipes: nothing else can reach it. If it dies, the orders in flight
// fail and the next command starts a new one.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FrameReader, frame, type SpawnOrder, type SpawnReport } from './spawner-wire.js';

const ENTRY = fileURLToPath(new URL('./spawner-process.js', import.meta.url));

export type SpawnRequest = Omit<SpawnOrder, 'id'>;

interface Pending {
  resolve(r: SpawnReport): void;
  reject(err: Error): void;
}

class Spawner {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private readonly reader = new FrameReader<SpawnReport>();
  private nextId = 1;
  dead = false;

  constructor() {
    // --single-threaded (V8: no background compile or GC threads): the spawner's heap is
    // tiny, and a process with fewer threads and mappings forks and execs cheaper
    // (bench/host-commands.ts: about 10% less CPU per command, spawner and command).
    this.child = spawn(process.execPath, ['--max-old-space-size=64', '--single-threaded', ENTRY], {
      stdio: ['pipe', 'pipe', 'inherit'],
      // Out of the daemon's process group: a group signal must not end it mid-order.
      detached: true,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      for (const r of this.reader.push(chunk)) this.settle(r);
    });
    this.child.stdin!.on('error', () => undefined);
    const gone = (why: string) => this.fail(new Error(`the host-command spawner ${why}`));
    this.child.once('error', (err) => gone(`could not start: ${err.message}`));
    this.child.once('exit', (code, signal) => gone(`exited (${signal ?? `status ${code}`})`));
    this.idle();
  }

  order(req: SpawnRequest): Promise<SpawnReport> {
    if (this.dead) return Promise.reject(new Error('the host-command spawner is gone'));
    const id = this.nextId++;
    return new Promise<SpawnReport>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) this.busy();
      this.child.stdin!.write(frame({ ...req, id }));
    });
  }

  private settle(r: SpawnReport): void {
    const p = this.pending.get(r.id);
    if (!p) return; // id 0: the spawner's hello
    this.pending.delete(r.id);
    if (this.pending.size === 0) this.idle();
    p.resolve(r);
  }

  private fail(err: Error): void {
    this.dead = true;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (current === this) current = undefined;
  }

  // While nothing is in flight the spawner must not keep the thread alive.
  private busy(): void {
    this.child.ref();
    (this.child.stdout as unknown as { ref(): void }).ref();
  }

  private idle(): void {
    this.child.unref();
    (this.child.stdout as unknown as { unref(): void }).unref();
    (this.child.stdin as unknown as { unref?(): void }).unref?.();
  }
}

let current: Spawner | undefined;

/** Has this thread's spawner start one command and report what became of it. */
export function spawnHost(req: SpawnRequest): Promise<SpawnReport> {
  if (!current || current.dead) current = new Spawner();
  return current.order(req);
}
