// The task table: every task the daemon hands to a worker thread, by name.
// Task modules export plain async functions taking one structured-clonable
// argument; the main thread calls them through WorkerPool.run(name, args).
// This module runs inside the workers (workers/tasks.ts is the file Piscina
// loads); the main thread imports only its types. A task's failure goes back
// as a WireError (src/model/errors.ts), so its code and cause survive.
// Each family of tasks is loaded on its first use: a worker of the insecure
// backend never loads the Linux backend (and its host-command libraries), and
// a restarting daemon's first task waits for less.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { Piscina } from 'piscina';
import { toWireError } from '../model/errors.ts';
import { useSharedSpawner, type SharedSpawner } from '../host/spawner.ts';

type SnapshotTasks = typeof import('../depot/depot-tasks.ts').depotTasks;
type JobTasks = typeof import('../jobs/job-tasks.ts').jobTasks;
type InsecureTasks = typeof import('../backends/insecure/tasks.ts').insecureTasks;
type LinuxTasks = typeof import('../backends/linux/tasks.ts').linuxTasks;
type Tasks = SnapshotTasks & JobTasks & InsecureTasks & LinuxTasks;

export type TaskName = keyof Tasks;
export type TaskArgs<K extends TaskName> = Parameters<Tasks[K]>[0];
export type TaskResult<K extends TaskName> = Awaited<ReturnType<Tasks[K]>>;

type TaskTable = Record<string, (a: never) => Promise<unknown>>;

/** Task name prefix → the module that holds those tasks. */
const families: Record<string, () => Promise<TaskTable>> = {
  state: async () => (await import('../depot/depot-tasks.ts')).depotTasks,
  job: async () => (await import('../jobs/job-tasks.ts')).jobTasks,
  insecure: async () => (await import('../backends/insecure/tasks.ts')).insecureTasks,
  linux: async () => (await import('../backends/linux/tasks.ts')).linuxTasks,
};
const loaded = new Map<string, Promise<TaskTable>>();

function family(name: string): Promise<TaskTable> {
  let table = loaded.get(name);
  if (!table) {
    const load = families[name];
    if (!load) return Promise.reject(new Error(`unknown worker task family ${name}`));
    table = load();
    loaded.set(name, table);
  }
  return table;
}

const boot = (Piscina.workerData ?? {}) as { preload?: string[]; nice?: number; spawner?: SharedSpawner };

// The daemon's spawner, started before the workers: this worker's host commands go there.
if (boot.spawner) useSharedSpawner(boot.spawner);

// Families the daemon will need at once (its backend's) start loading as the
// worker boots, while the main thread loads its own modules.
for (const name of boot.preload ?? []) {
  family(name).catch(() => {}); // a failure shows on the first task of the family
}

// A background thread (WorkerPool's janitor) yields the CPU to the daemon's other
// threads: on Linux a nice value is a thread's own, and /proc/thread-self names it.
if (boot.nice) {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (tid > 0) setPriority(tid, boot.nice);
  } catch {
    // Not Linux, or no permission to lower it: the work is the same, only sooner.
  }
}

export default async function runTask({ name, args }: { name: TaskName; args: unknown }): Promise<unknown> {
  try {
    const prefix = String(name).split('.')[0]!;
    if (!families[prefix]) throw new Error(`unknown worker task ${String(name)}`);
    const task = (await family(prefix))[name] as ((a: unknown) => Promise<unknown>) | undefined;
    if (!task) throw new Error(`unknown worker task ${String(name)}`);
    return await task(args);
  } catch (err) {
    throw toWireError(err);
  }
}
