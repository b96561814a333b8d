// A worker thread for test/unit/shared-spawner.test.ts: it uses the shared spawner
// it is given (as the daemon's workers do) and, for each message, runs `sh` and
// answers with the pid of the process that started it (the spawner).
import { parentPort, workerData } from 'node:worker_threads';
import { useSharedSpawner, type SharedSpawner } from '../../src/host/spawner.ts';
import { runHost } from '../../src/host/run.ts';

const shared = (workerData as { spawner?: SharedSpawner }).spawner;
if (shared) useSharedSpawner(shared);

parentPort!.on('message', () => {
  runHost('/bin/sh', ['-c', 'echo $PPID'], { context: 'test' }).then(
    (r) => parentPort!.postMessage({ ppid: Number(r.stdout.trim()) }),
    (err: Error) => parentPort!.postMessage({ error: err.message }),
  );
});
