// Waiting for work that may not end soon: a drain, a destroy or a shutdown waits
// for in-flight work only so long.

/** Resolves when every promise has settled, or after ms, whichever comes first. */
export async function settledWithin(ps: Iterable<Promise<unknown>>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled(ps), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
