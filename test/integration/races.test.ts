// Races seen once in a while, pinned by repeating the scenario many times against
// the real daemon (insecure backend).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a Run in flight while another connection destroys the container', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('always answers with the container Info (the obituary), never `unknown handle`', async () => {
    // Pairs of connections at once, so that job starts and destroys overlap.
    const PAIRS = 8;
    const ROUNDS = 6;
    await Promise.all(
      Array.from({ length: PAIRS }, async (_, p) => {
        const runner = await d.client();
        const destroyer = await d.client();
        for (let i = 0; i < ROUNDS; i++) {
          const { handle } = await destroyer.create({});
          const info = await destroyer.info({ handle });
          const running = runner.run({ handle, script: 'sleep 5' }).then(
            (r) => ({ r }),
            (err: Error) => ({ err: err.message }),
          );
          // The Run is being served once its job folder exists; destroy at once,
          // while the job is still being started (the window of the race).
          const jobs = join(info.container_path!, 'jobs');
          for (let t = 0; t < 2000 && !existsSync(jobs); t++) await sleep(1);
          await destroyer.destroy({ handle });
          const outcome = await running;
          expect(outcome, `pair ${p} round ${i}`).toHaveProperty('r');
          const { r } = outcome as { r: { info?: { container_path?: string } } };
          expect(r.info?.container_path, `pair ${p} round ${i}`).toBe(info.container_path);
        }
        await runner.close();
        await destroyer.close();
      }),
    );
  }, 120_000);
});

describe('a drain with no request in flight', () => {
  it('exits 0, promptly, also when it comes as soon as the socket answers (20 times)', async () => {
    const d = await TestDaemon.start();
    try {
      const c = await d.client();
      const { handle } = await c.create({});
      await c.spawn({ handle, script: 'sleep 600' });
      await c.close();
      for (let i = 0; i < 20; i++) {
        if (i > 0) await d.launch(); // returns as soon as a Ping is answered
        // An idle connection (every other round), as a client that keeps one open.
        const idle = i % 2 === 0 ? await d.client() : undefined;
        const t0 = performance.now();
        expect(await d.drain(), `round ${i}`).toBe(0);
        // Loose bound: a drain with nothing in flight is tens of ms.
        expect(performance.now() - t0, `round ${i}`).toBeLessThan(5_000);
        await idle?.close().catch(() => {});
      }
      await d.launch();
    } finally {
      await d.cleanup();
    }
  }, 180_000);
});
