// Gives memory back after connections dropped large unfinished frames. Their
// socket chunks and buffers are garbage, but an idle daemon allocates nothing, so
// no garbage collection runs and the process keeps that memory indefinitely. One
// full collection, a second after the last drop (so a burst of closes costs one),
// frees it; the allocator then returns the large blocks to the system.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const DELAY_MS = 1000;
/** Drops smaller than this are left to the ordinary collections. */
export const RELEASE_FROM_BYTES = 1024 * 1024;

let collect: (() => void) | undefined;
let timer: NodeJS.Timeout | undefined;

function collector(): () => void {
  if (collect === undefined) {
    // The way test runners (Jest's logHeapUsage) reach gc() without --expose-gc on the command line.
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  return collect;
}

/** Schedules one full collection (debounced) after `bytes` of unfinished frames were dropped. */
export function releaseDroppedFrames(bytes: number): void {
  if (bytes < RELEASE_FROM_BYTES) return;
  const gc = collector();
  if (timer) {
    timer.refresh();
    return;
  }
  timer = setTimeout(() => {
    timer = undefined;
    gc();
  }, DELAY_MS).unref();
}
