// Per-test cleanup for tests that share one daemon: whatever containers a test
// made (handles not there before it) are destroyed after it, also when it failed,
// so no test sees another's containers.
import { afterEach, beforeEach } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';

export function destroyLeftoversEachTest(client: () => WardenClient | undefined): void {
  let before = new Set<string>();
  beforeEach(async () => {
    const c = client();
    before = new Set(c ? ((await c.list()).handles ?? []) : []);
  });
  afterEach(async () => {
    const c = client();
    if (!c) return;
    for (const handle of (await c.list()).handles ?? []) {
      if (before.has(handle)) continue;
      // A grace time may have destroyed it meanwhile.
      await c.destroy({ handle }).catch((err: Error) => {
        if (err.message !== 'unknown handle') throw err;
      });
    }
  });
}
