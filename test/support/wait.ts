// Waiting for conditions, for tests on a slow shared machine: poll until something is
// true instead of sleeping a fixed time and hoping it became true meanwhile. The
// timeouts are generous failure bounds, never what a test asserts.

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; throws with the last value (or error) after timeoutMs. */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await fn();
      if (last) return last as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last) ?? String(lastErr)})`);
    }
    await sleep(everyMs);
  }
}

/** Whether p settles within ms: for "this must not hang" checks, where ms is a generous bound. */
export async function settlesWithin<T>(p: Promise<T>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), hung]);
  } finally {
    clearTimeout(timer);
  }
}
