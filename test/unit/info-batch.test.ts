// Infos asked for in one turn of the event loop go to a worker as one task: each
// caller still gets its own container's figures, or its own error.
import { describe, expect, it } from 'vitest';
import { InfoBatch, type InfoOutcome } from '../../src/backends/linux/info-batch.ts';
import { newContainerRecord } from '../../src/model/records.ts';
import type { ContainerRecord } from '../../src/model/records.ts';
import type { InfoResponse } from '../../src/protocol/types.ts';

function record(i: number): ContainerRecord {
  return newContainerRecord({ id: `c${i}`, handle: `h${i}`, state: 'active', path: `/depot/c${i}` });
}

function figures(c: ContainerRecord): InfoResponse {
  return { container_path: c.path };
}

describe('InfoBatch', () => {
  it('reads the Infos of one turn in one task, in order, and a lone Info on its own', async () => {
    const calls: string[][] = [];
    const batch = new InfoBatch(
      async (c) => (calls.push([c.id]), figures(c)),
      async (cs) => (calls.push(cs.map((c) => c.id)), cs.map((c): InfoOutcome => ({ info: figures(c) }))),
    );
    const answers = await Promise.all([1, 2, 3].map((i) => batch.read(record(i))));
    expect(answers.map((a) => a.container_path)).toEqual(['/depot/c1', '/depot/c2', '/depot/c3']);
    expect(calls).toEqual([['c1', 'c2', 'c3']]);
    // The next turn: a batch of its own, here of one.
    expect((await batch.read(record(4))).container_path).toBe('/depot/c4');
    expect(calls).toEqual([['c1', 'c2', 'c3'], ['c4']]);
  });

  it('splits a large turn into tasks of at most 64', async () => {
    const sizes: number[] = [];
    const batch = new InfoBatch(
      async (c) => (sizes.push(1), figures(c)),
      async (cs) => (sizes.push(cs.length), cs.map((c): InfoOutcome => ({ info: figures(c) }))),
    );
    const answers = await Promise.all(Array.from({ length: 129 }, (_, i) => batch.read(record(i))));
    expect(answers).toHaveLength(129);
    expect(answers[128]!.container_path).toBe('/depot/c128');
    expect(sizes).toEqual([64, 64, 1]);
  });

  it('fails only the caller whose container could not be read; a failed task fails its batch', async () => {
    const batch = new InfoBatch(
      async (c) => figures(c),
      async (cs) => cs.map((c): InfoOutcome => (c.id === 'c2' ? { error: 'cgroup gone' } : { info: figures(c) })),
    );
    const [a, b] = await Promise.allSettled([batch.read(record(1)), batch.read(record(2))]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { container_path: '/depot/c1' } });
    expect(b).toMatchObject({ status: 'rejected', reason: { message: 'cgroup gone' } });

    const broken = new InfoBatch(
      async () => {
        throw new Error('worker gone');
      },
      async () => {
        throw new Error('worker gone');
      },
    );
    const all = await Promise.allSettled([broken.read(record(1)), broken.read(record(2))]);
    expect(all.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
