// The service's observer until the metrics load (src/metrics/deferred-observer.ts):
// nothing observed before is lost, and the order is kept.
import { describe, expect, it } from 'vitest';
import { DeferredObserver } from '../../src/metrics/deferred-observer.ts';
import type { ServiceObserver } from '../../src/orchestrator/core.ts';

function recorder(): { seen: string[]; observer: ServiceObserver } {
  const seen: string[] = [];
  return {
    seen,
    observer: {
      requestDone: (type, outcome, seconds) => seen.push(`${type} ${outcome} ${seconds}`),
      oom: (h) => seen.push(`oom ${h}`),
      destroyFailed: (h) => seen.push(`destroyFailed ${h}`),
      createRefused: (r) => seen.push(`refused ${r}`),
    },
  };
}

describe('DeferredObserver', () => {
  it('hands what it saw before the metrics came to them, in order, then forwards', () => {
    const d = new DeferredObserver();
    d.requestDone('Ping', 'ok', 0.001);
    d.oom('a');
    d.createRefused('max_containers');
    d.destroyFailed('b');
    const r = recorder();
    d.attach(r.observer);
    expect(r.seen).toEqual(['Ping ok 0.001', 'oom a', 'refused max_containers', 'destroyFailed b']);
    d.requestDone('Info', 'error', 0.5);
    expect(r.seen.at(-1)).toBe('Info error 0.5');
    expect(d.dropped).toBe(0);
  });

  it('keeps a bounded number of events while no metrics come, and counts the rest', () => {
    const d = new DeferredObserver();
    for (let i = 0; i < 50_010; i++) d.requestDone('Ping', 'ok', 0);
    expect(d.dropped).toBe(10);
    const r = recorder();
    d.attach(r.observer);
    expect(r.seen).toHaveLength(50_000);
  });
});
