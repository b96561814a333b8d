// What the bench's chaos scenario found, each on the real daemon (insecure backend)
// killed with SIGKILL at the moment that exposed it.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TestDaemon } from '../support/daemon.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let d: TestDaemon;
beforeAll(async () => {
  d = await TestDaemon.start();
});
afterAll(async () => {
  await d?.cleanup();
});

it('a Destroy cut by a SIGKILL after it killed the jobs is finished by the next start, not left half done and listed', async () => {
  const c = await d.client();
  const { handle } = await c.create({});
  const path = (await c.info({ handle })).container_path!;
  // Many files: removing the folder takes a while, so the kill lands in the middle of the destroy.
  const fill = await c.run({ handle, script: 'mkdir -p many && cd many && for i in $(seq 1 30000); do : > f$i; done; echo filled' });
  expect(String(fill.stdout)).toBe('filled\n');
  const { job_id } = await c.spawn({ handle, script: 'sleep 60' });
  const exitFile = join(path, 'jobs', String(job_id), 'exit_status');
  const k = await d.client();
  const destroying = k.destroy({ handle }).catch((e: Error) => e);
  // The destroy has killed the job: it is under way. Kill the daemon now.
  for (;;) {
    if ((await readFile(exitFile, 'utf8').catch(() => '')).trim() !== '') break;
    await sleep(2);
  }
  await d.kill9();
  expect(await destroying).toBeInstanceOf(Error);
  await c.close().catch(() => undefined);
  await d.launch();
  const after = await d.client();
  // Whole or gone: gone, its folder too.
  expect((await after.list()).handles ?? []).not.toContain(handle);
  expect(await stat(path).catch(() => undefined)).toBeUndefined();
  await after.close();
}, 120_000);
