// The file Piscina loads in each worker thread (the project keeps worker entry
// points in this top-level folder). What runs there is the task table in
// src/workers/task-table.ts; the main thread's side is src/workers/pool.ts.
export { default } from '../src/workers/task-table.ts';
