// Per-test cleanup for tests that share one daemon: whatever containers a test
// made (handles not there before it) are destroyed after it, also when it failed,
// so no test sees another's containers. A client whose connection is gone (a test
// restarted the daemon) cannot clean up: then nothing is done.
import { afterEach, beforeEach } from 'vitest';
import { WardenConnectionError, type WardenClient } from '../../src/client/client.ts';

async function handles(c: WardenClient): Promise<string[] | undefined> {
  try {
    return (await c.list()).handles ?? [];
  } catch (err) {
    if (err instanceof WardenConnectionError) return undefined;
    throw err;
  }
}

export function destroyLeftoversEachTest(client: () => WardenClient | undefined): void {
  let before: Set<string> | undefined;
  beforeEach(async () => {
    const c = client();
    const now = c ? await handles(c) : undefined;
    before = now ? new Set(now) : undefined;
  });
  afterEach(async () => {
    const c = client();
    if (!c || !before) return;
    for (const handle of (await handles(c)) ?? []) {
      if (before.has(handle)) continue;
      // A grace time may have destroyed it meanwhile.
      await c.destroy({ handle }).catch((err: Error) => {
        if (err.message !== 'unknown handle') throw err;
      });
    }
  });
}
