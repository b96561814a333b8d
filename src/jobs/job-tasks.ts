// Worker tasks (see workers/tasks.ts).
export const jobTasks = {};
