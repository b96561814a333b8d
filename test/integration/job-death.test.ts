// How jobs die, as the original Warden reported it (insecure backend, real daemon):
// a job ended by a signal reports 255 (wshd sent no status, its client said 255),
// one that exits with 137 itself reports 137; a job killed for passing
// job_output_limit reports 255 and Info's events say `command exceeded maximum output`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import type { StreamResponse } from '../../src/protocol/types.ts';
import { TestDaemon } from '../support/daemon.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';
import { heldJob } from '../support/held-job.ts';

let d: TestDaemon;
let c: WardenClient;

beforeAll(async () => {
  d = await TestDaemon.start({ server: { job_output_limit: 10 } });
  c = await d.client();
});

afterAll(async () => {
  await c?.close();
  await d?.cleanup();
});

const text = (b: unknown) => Buffer.from((b as Uint8Array) ?? []).toString('utf8');

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => c);

describe('exit status of a job', () => {
  let handle: string;
  beforeAll(async () => {
    ({ handle } = await c.create({}));
  });
  afterAll(async () => {
    await c.destroy({ handle }).catch(() => undefined);
  });

  it('is its own when it exits, also above 128', async () => {
    expect((await c.run({ handle, script: 'exit 3' })).exit_status).toBe(3);
    expect((await c.run({ handle, script: 'exit 137' })).exit_status).toBe(137);
    expect((await c.run({ handle, script: 'exit 255' })).exit_status).toBe(255);
    // A child killed by a signal: bash itself exits normally with 128+N.
    expect((await c.run({ handle, script: '{ bash -c \'kill -9 $$\'; } 2>/dev/null; exit $?' })).exit_status).toBe(137);
  });

  it('is 255 when a signal ends it', async () => {
    expect((await c.run({ handle, script: 'kill -9 $$' })).exit_status).toBe(255);
    expect((await c.run({ handle, script: 'kill -TERM $$' })).exit_status).toBe(255);
  });

  it('is 255 after stop with kill, and the job\'s own status after a TERM it handles', async () => {
    const { handle: h } = await c.create({});
    const killed = await c.spawn({ handle: h, script: 'sleep 100' });
    // Stopped only once its trap is set (the marks say so), else TERM would find none.
    const ready = heldJob();
    const trapped = await c.spawn({ handle: h, script: `trap 'exit 37' TERM; ${ready.script.replace(/^trap '[^']*' TERM; /, '')}` });
    await ready.ready();
    await c.stop({ handle: h });
    ready.cleanup();
    expect((await c.link({ handle: h, job_id: trapped.job_id })).exit_status).toBe(37);
    // sleep ignores nothing: TERM ended the plain job (a signal death too).
    expect((await c.link({ handle: h, job_id: killed.job_id })).exit_status).toBe(255);
    await c.destroy({ handle: h });

    const { handle: k } = await c.create({});
    const held = heldJob();
    const stubborn = await c.spawn({ handle: k, script: held.script });
    await held.ready();
    await c.stop({ handle: k, kill: true });
    held.cleanup();
    expect((await c.link({ handle: k, job_id: stubborn.job_id })).exit_status).toBe(255);
    await c.destroy({ handle: k });
  });
});

describe('output limit', () => {
  it('kills the job: Run reports 255 and the event in the original\'s words', async () => {
    const { handle } = await c.create({});
    const r = await c.run({ handle, script: 'echo BLABLABLABLABLABLA; sleep 100' });
    expect(r.exit_status).toBe(255);
    expect(r.info?.events).toContain('command exceeded maximum output');
    expect((await c.info({ handle })).events).toContain('command exceeded maximum output');
    await c.destroy({ handle });
  });

  it('Stream ends with 255 too', async () => {
    const { handle } = await c.create({});
    const { job_id } = await c.spawn({ handle, script: 'echo BLABLABLABLABLABLA; sleep 100' });
    const frames: StreamResponse[] = [];
    for await (const f of c.stream({ handle, job_id })) frames.push(f);
    expect(frames.at(-1)?.exit_status).toBe(255);
    expect(frames.map((f) => text(f.data)).join('').length).toBeLessThanOrEqual(10);
    expect((await c.info({ handle })).events).toContain('command exceeded maximum output');
    await c.destroy({ handle });
  });

  it('does not apply to discarded output: no kill, no event', async () => {
    const { handle } = await c.create({});
    const r = await c.run({ handle, script: 'echo BLABLABLABLABLABLA', discard_output: true });
    expect(r.exit_status).toBe(0);
    expect(r.info?.events ?? []).toEqual([]);
    await c.destroy({ handle });
  });
});
