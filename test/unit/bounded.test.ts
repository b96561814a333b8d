// mapBounded: results in the items' order, never more than the limit at once.
import { describe, expect, it } from 'vitest';
import { mapBounded } from '../../src/backends/linux/bounded.ts';

describe('mapBounded', () => {
  it('keeps order and the limit', async () => {
    let running = 0;
    let most = 0;
    const items = Array.from({ length: 50 }, (_, i) => i);
    const out = await mapBounded(items, 7, async (n, i) => {
      running++;
      most = Math.max(most, running);
      // Later items finish first: order must come from the index, not completion.
      await new Promise((r) => setTimeout(r, (50 - n) % 5));
      running--;
      return `${n}:${i}`;
    });
    expect(out).toEqual(items.map((n) => `${n}:${n}`));
    expect(most).toBe(7);
  });

  it('handles no items and a failing item', async () => {
    expect(await mapBounded([], 4, async () => 1)).toEqual([]);
    await expect(mapBounded([1, 2, 3], 2, async (n) => {
      if (n === 2) throw new Error('two');
      return n;
    })).rejects.toThrow('two');
  });
});
