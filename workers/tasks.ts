// Piscina entry point: every task the daemon hands to a worker, by name.
// Task modules export plain async functions taking one structured-clonable
// argument; the main thread calls them through WorkerPool.run(name, args).
import { snapshotTasks } from '../src/containers/snapshot-tasks.ts';
import { jobTasks } from '../src/jobs/job-tasks.ts';
import { insecureTasks } from '../src/backends/insecure/tasks.ts';
import { linuxTasks } from '../src/backends/linux/tasks.ts';

const tasks = { ...snapshotTasks, ...jobTasks, ...insecureTasks, ...linuxTasks };

type Tasks = typeof tasks;
export type TaskName = keyof Tasks;
export type TaskArgs<K extends TaskName> = Parameters<Tasks[K]>[0];
export type TaskResult<K extends TaskName> = Awaited<ReturnType<Tasks[K]>>;

export default async function runTask({ name, args }: { name: TaskName; args: unknown }): Promise<unknown> {
  const task = tasks[name] as ((a: unknown) => Promise<unknown>) | undefined;
  if (!task) throw new Error(`unknown worker task ${String(name)}`);
  return task(args);
}
