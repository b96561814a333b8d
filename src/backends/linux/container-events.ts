// How containers die, as the kernel reports it, for every container at once and
// without polling (one long-lived worker task per daemon):
// - OOM kills: one reader of /dev/kmsg (`cat`, which dies with the worker thread
//   that started it) whose `oom-kill:` lines name the memory cgroup
//   (instance-<id>) of the victim. /dev/kmsg replays its whole ring on open: lines
//   from before the reader started are dropped by their timestamp (OOMs that
//   happened while the daemon was down are found by the kill counter at recovery).
// - The end of a container's init: inotify on the `cgroup.events` file of the
//   container's cgroup v2 group, which says `populated 0` once the group is empty
//   (the init is alone in it; when it dies the kernel kills its whole PID
//   namespace). An idle container costs one inotify watch, no timer.
import { spawn, type ChildProcess } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { MessagePort } from 'node:worker_threads';
import { joinInitGroup, type CgroupPaths } from './cgroups/cgroups.ts';
import { isSameProcess } from '../../host/procfs.ts';

/** What following a container's init needs (from its LinuxFacts). */
export interface InitRef {
  id: string;
  cgroups: CgroupPaths;
  initPid: number;
  initStartTime: number;
}

/** Main thread → task. */
export type ContainerEventsRequest = { follow: InitRef } | { unfollow: string };

/** Task → main thread. */
export type ContainerEvent =
  | { kind: 'oom'; id: string }
  | { kind: 'init-exited'; id: string }
  | { kind: 'warning'; message: string };

/** Replayed kmsg lines up to this long before the reader started still count (clocks differ a little). */
const REPLAY_SLACK_US = 2_000_000;
/** Wait before starting a kmsg reader again after it ended. */
const RESTART_MS = 1_000;

const INSTANCE = /instance-([0-9a-z]{1,11})\b/g;

/** Container ids named by one /dev/kmsg record (`pri,seq,usec,flags;message`) if it reports an OOM kill. */
export function parseOomRecord(record: string, notBeforeUs: number, afterSeq: number): { seq: number; ids: string[] } | undefined {
  const semi = record.indexOf(';');
  if (semi < 0) return undefined;
  const [, seqText, usecText] = record.slice(0, semi).split(',');
  const seq = Number(seqText);
  const usec = Number(usecText);
  if (!Number.isFinite(seq) || seq <= afterSeq) return undefined;
  const message = record.slice(semi + 1);
  if (!message.startsWith('oom-kill:')) return { seq, ids: [] };
  if (!(usec >= notBeforeUs)) return { seq, ids: [] };
  return { seq, ids: [...new Set([...message.matchAll(INSTANCE)].map((m) => m[1]!))] };
}

/** Whether a cgroup v2 group has processes, from its cgroup.events; undefined when the group is gone. */
async function populated(eventsFile: string): Promise<boolean | undefined> {
  try {
    return /^populated 1$/m.test(await readFile(eventsFile, 'utf8'));
  } catch {
    return undefined;
  }
}

class KmsgReader {
  private child: ChildProcess | undefined;
  private restart: NodeJS.Timeout | undefined;
  private closed = false;
  private lastSeq = -1;
  private readonly notBeforeUs = Number(process.hrtime.bigint() / 1000n) - REPLAY_SLACK_US;
  private readonly emit: (e: ContainerEvent) => void;

  constructor(emit: (e: ContainerEvent) => void) {
    this.emit = emit;
    this.start();
  }

  private start(): void {
    // setpriv --pdeathsig: the reader ends with the worker thread that started it,
    // also when the daemon is killed.
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'cat', '/dev/kmsg'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let pending = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        // Continuation lines (" KEY=value") carry no record header.
        if (line.startsWith(' ')) continue;
        const r = parseOomRecord(line, this.notBeforeUs, this.lastSeq);
        if (!r) continue;
        this.lastSeq = r.seq;
        for (const id of r.ids) this.emit({ kind: 'oom', id });
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => (stderr = (stderr + s).slice(-500)));
    child.on('error', (err) => this.emit({ kind: 'warning', message: `cannot read /dev/kmsg: ${err.message}` }));
    child.on('close', (code, signal) => {
      if (this.closed) return;
      // cat ends with EPIPE when the ring overwrote lines it had not read: start
      // again; the sequence numbers skip what was already seen.
      this.emit({ kind: 'warning', message: `/dev/kmsg reader ended (${signal ?? `status ${code}`}${stderr ? `: ${stderr.trim()}` : ''}); restarting it` });
      this.restart = setTimeout(() => this.start(), RESTART_MS);
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.restart);
    this.child?.kill('SIGKILL');
  }
}

class InitWatches {
  private readonly watches = new Map<string, FSWatcher>();
  private readonly emit: (e: ContainerEvent) => void;

  constructor(emit: (e: ContainerEvent) => void) {
    this.emit = emit;
  }

  async follow(ref: InitRef): Promise<void> {
    const { id } = ref;
    this.unfollow(id);
    let eventsFile: string | undefined;
    try {
      if (!(await isSameProcess(ref.initPid, ref.initStartTime))) throw Object.assign(new Error('init gone'), { code: 'ESRCH' });
      eventsFile = await joinInitGroup(ref.cgroups, ref.initPid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') this.emit({ kind: 'init-exited', id });
      else this.emit({ kind: 'warning', message: `cannot follow the init of ${id}: ${(err as Error).message}` });
      return;
    }
    if (!eventsFile) return; // no cgroup v2 on this host
    let watcher: FSWatcher;
    try {
      watcher = watch(eventsFile, { persistent: false });
    } catch (err) {
      this.emit({ kind: 'warning', message: `cannot watch ${eventsFile}: ${(err as Error).message}` });
      return;
    }
    this.watches.set(id, watcher);
    let checking = false;
    let again = false;
    const file = eventsFile;
    const check = async (): Promise<void> => {
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      try {
        do {
          again = false;
          // Gone (removed by destroy) is no death to report: destroy unfollows first.
          if ((await populated(file)) === false && this.watches.get(id) === watcher) {
            this.unfollow(id);
            this.emit({ kind: 'init-exited', id });
            return;
          }
        } while (again);
      } finally {
        checking = false;
      }
    };
    watcher.on('change', () => void check());
    watcher.on('error', () => this.unfollow(id));
    // The init may have died before the watch was in place.
    await check();
  }

  unfollow(id: string): void {
    const w = this.watches.get(id);
    if (!w) return;
    this.watches.delete(id);
    w.close();
  }

  close(): void {
    for (const id of [...this.watches.keys()]) this.unfollow(id);
  }
}

/**
 * Long-lived: reports container deaths over `port` until the port closes (the
 * daemon drains or ends). Requests on the port add or remove init watches.
 */
export async function watchContainerEvents(a: { port: MessagePort }): Promise<void> {
  const emit = (e: ContainerEvent) => a.port.postMessage(e);
  const kmsg = new KmsgReader(emit);
  const inits = new InitWatches(emit);
  await new Promise<void>((resolve) => {
    a.port.on('message', (m: ContainerEventsRequest) => {
      if ('follow' in m) void inits.follow(m.follow);
      else inits.unfollow(m.unfollow);
    });
    a.port.on('close', resolve);
  });
  kmsg.close();
  inits.close();
}
