// Per-container host work at start-up (recovery) is many small file operations
// with no order between containers: run them a few dozen at a time rather than
// one after another (libuv's threads do them; the daemon is down meanwhile).

/** fn over every item, at most `limit` at once; results in the items' order. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}
