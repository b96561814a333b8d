// Rule batches queued back to back go to iptables-restore as one: the merged
// input, what a failure in it does to each batch (only the batch at fault gets
// the error; tables committed before the failing one are not applied twice), and
// that a plain iptables command between batches keeps the order. Against a fake
// host; test/linux/network.test.ts applies groups to the real kernel.
import { describe, expect, it } from 'vitest';
import {
  applyBatch,
  iptables,
  mergeBatches,
  newBatch,
  renderBatch,
  tablesBefore,
  type Batch,
} from '../../src/backends/linux/network/iptables.ts';
import { useFakeHostRunner, commandLine } from '../support/fake-host-runner.ts';

const host = useFakeHostRunner();

function batch(filter: string[], nat: string[] = []): Batch {
  return { ...newBatch(), filter, nat };
}

const a = batch(['-A warden-instances -i w-a-0 -g warden-i-a'], [':warden-i-a - [0:0]']);
const b = batch(['-A warden-instances -i w-b-0 -g warden-i-b'], ['-D warden-prerouting -p tcp -j warden-i-b']);
const c = batch([], [':warden-i-c - [0:0]', '-A warden-i-c -p tcp -m tcp --dport 61001 -j DNAT --to-destination 10.0.0.6:8080']);

const settle = (p: Promise<void>) => p.then(() => 'ok', (e: Error) => e.message);

describe('iptables-restore groups', () => {
  it('merges table by table, each batch in queue order', () => {
    expect(renderBatch(mergeBatches([a, b, c]))).toBe(
      '*filter\n' +
        '-A warden-instances -i w-a-0 -g warden-i-a\n' +
        '-A warden-instances -i w-b-0 -g warden-i-b\n' +
        'COMMIT\n' +
        '*nat\n' +
        ':warden-i-a - [0:0]\n' +
        '-D warden-prerouting -p tcp -j warden-i-b\n' +
        ':warden-i-c - [0:0]\n' +
        '-A warden-i-c -p tcp -m tcp --dport 61001 -j DNAT --to-destination 10.0.0.6:8080\n' +
        'COMMIT\n',
    );
  });

  it('knows which tables a failing line leaves applied', () => {
    const m = mergeBatches([a, b, c]);
    // lines 1-4 are the filter part (4 is its COMMIT), 5-10 the nat part
    expect([...tablesBefore(m, 3)]).toEqual([]);
    expect([...tablesBefore(m, 4)]).toEqual([]);
    expect([...tablesBefore(m, 5)]).toEqual(['filter']);
    expect([...tablesBefore(m, 7)]).toEqual(['filter']);
  });

  it('batches queued together run as one iptables-restore', async () => {
    const results = await Promise.all([a, b, c].map((x, i) => settle(applyBatch(x, `ctx${i}`))));
    expect(results).toEqual(['ok', 'ok', 'ok']);
    expect(host.lines()).toEqual(['iptables-restore -w 10 --noflush']);
    expect(host.calls[0]!.input).toBe(renderBatch(mergeBatches([a, b, c])));
  });

  it('a batch queued while a restore runs joins the next group', async () => {
    const first = applyBatch(a, 'one');
    await Promise.resolve();
    await Promise.resolve();
    const later = [applyBatch(b, 'two'), applyBatch(c, 'three')];
    await Promise.all([first, ...later]);
    expect(host.calls.map((x) => x.input)).toEqual([renderBatch(a), renderBatch(mergeBatches([b, c]))]);
  });

  it('when the merged restore fails, only the batch at fault gets the error, and committed tables are not redone', async () => {
    // The merged input fails on line 6, b's -D in the nat part: the filter part was committed.
    host.on(
      (x) => commandLine(x).startsWith('iptables-restore') && (x.input ?? '').includes('-D warden-prerouting'),
      { exitCode: 2, stderr: 'iptables-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?).' },
    );
    host.on('iptables-restore', { exitCode: 2, stderr: 'iptables-restore: line 6 failed: Bad rule (does a matching rule exist in that chain?).' }, { times: 1 });
    const results = await Promise.all([a, b, c].map((x, i) => settle(applyBatch(x, `ctx${i}`))));
    expect(results).toEqual([
      'ok',
      'ctx1: iptables-restore -w 10 --noflush failed: iptables-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?).' +
        ' (rule: -D warden-prerouting -p tcp -j warden-i-b)',
      'ok',
    ]);
    const natOnly = (x: Batch) => renderBatch({ ...x, filter: [] });
    expect(host.calls.map((x) => x.input)).toEqual([renderBatch(mergeBatches([a, b, c])), natOnly(a), natOnly(b), natOnly(c)]);
  });

  it('a failure that names no line fails every batch of the group, each under its own context', async () => {
    host.on('iptables-restore', { exitCode: 4, stderr: 'iptables-restore: unable to initialize table' }, { times: 1 });
    const results = await Promise.all([a, c].map((x, i) => settle(applyBatch(x, `ctx${i}`))));
    expect(results).toEqual([
      'ctx0: iptables-restore -w 10 --noflush failed: iptables-restore: unable to initialize table',
      'ctx1: iptables-restore -w 10 --noflush failed: iptables-restore: unable to initialize table',
    ]);
    expect(host.calls).toHaveLength(1);
  });

  it('a plain iptables command between two batches keeps them apart and in order', async () => {
    await Promise.all([applyBatch(a, 'one'), iptables(['-t', 'nat', '-S', 'warden-prerouting'], 'list'), applyBatch(c, 'two')]);
    expect(host.calls.map((x) => [commandLine(x), x.input])).toEqual([
      ['iptables-restore -w 10 --noflush', renderBatch(a)],
      ['iptables -w 10 -t nat -S warden-prerouting', undefined],
      ['iptables-restore -w 10 --noflush', renderBatch(c)],
    ]);
  });
});
