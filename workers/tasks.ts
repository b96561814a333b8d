// Piscina entry point: every task the daemon hands to a worker, by name.
// Task modules export plain async functions taking one structured-clonable
// argument; the main thread calls them through WorkerPool.run(name, args).
// Each family of tasks is loaded on its first use: a worker of the insecure
// backend never loads the Linux backend (and its host-command libraries), and
// a restarting daemon's first task waits for less.
type SnapshotTasks = typeof import('../src/containers/snapshot-tasks.ts').snapshotTasks;
type JobTasks = typeof import('../src/jobs/job-tasks.ts').jobTasks;
type InsecureTasks = typeof import('../src/backends/insecure/tasks.ts').insecureTasks;
type LinuxTasks = typeof import('../src/backends/linux/tasks.ts').linuxTasks;
type Tasks = SnapshotTasks & JobTasks & InsecureTasks & LinuxTasks;

export type TaskName = keyof Tasks;
export type TaskArgs<K extends TaskName> = Parameters<Tasks[K]>[0];
export type TaskResult<K extends TaskName> = Awaited<ReturnType<Tasks[K]>>;

type TaskTable = Record<string, (a: never) => Promise<unknown>>;

/** Task name prefix → the module that holds those tasks. */
const families: Record<string, () => Promise<TaskTable>> = {
  state: async () => (await import('../src/containers/snapshot-tasks.ts')).snapshotTasks,
  job: async () => (await import('../src/jobs/job-tasks.ts')).jobTasks,
  insecure: async () => (await import('../src/backends/insecure/tasks.ts')).insecureTasks,
  linux: async () => (await import('../src/backends/linux/tasks.ts')).linuxTasks,
};
const loaded = new Map<string, Promise<TaskTable>>();

export default async function runTask({ name, args }: { name: TaskName; args: unknown }): Promise<unknown> {
  const family = String(name).split('.')[0]!;
  const load = families[family];
  if (!load) throw new Error(`unknown worker task ${String(name)}`);
  let table = loaded.get(family);
  if (!table) {
    table = load();
    loaded.set(family, table);
  }
  const task = (await table)[name] as ((a: unknown) => Promise<unknown>) | undefined;
  if (!task) throw new Error(`unknown worker task ${String(name)}`);
  return task(args);
}
