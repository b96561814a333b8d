import { describe, expect, it } from 'vitest';
import { KeptOutputs, SMALL_OUTPUT_BYTES } from '../../src/jobs/kept-output.ts';
import { withinLimit } from '../../src/jobs/job-output.ts';

const out = (stdout: string, stderr = '') => ({ stdout: Buffer.from(stdout), stderr: Buffer.from(stderr) });

describe('KeptOutputs', () => {
  it('keeps small outputs until dropped, and never a large one', () => {
    const kept = new KeptOutputs();
    kept.keep('/d/1', out('done\n'));
    kept.keep('/d/2', out('x'.repeat(SMALL_OUTPUT_BYTES), 'y'));
    expect(kept.get('/d/1')?.stdout.toString()).toBe('done\n');
    expect(kept.get('/d/2')).toBeUndefined();
    kept.drop('/d/1');
    expect(kept.get('/d/1')).toBeUndefined();
    expect(kept.size).toEqual({ jobs: 0, bytes: 0 });
  });

  it('stays within its budget, jobs that printed nothing too: the oldest go first', () => {
    const kept = new KeptOutputs(4096);
    for (let i = 0; i < 1000; i++) kept.keep(`/d/${i}`, out(''));
    expect(kept.size.bytes).toBeLessThanOrEqual(4096);
    expect(kept.size.jobs).toBeGreaterThan(0);
    expect(kept.get('/d/999')).toBeDefined();
    expect(kept.get('/d/0')).toBeUndefined();
    for (let i = 0; i < 10; i++) kept.keep(`/e/${i}`, out('z'.repeat(1000)));
    expect(kept.size.bytes).toBeLessThanOrEqual(4096);
    expect(kept.get('/e/9')?.stdout.length).toBe(1000);
  });
});

describe('withinLimit', () => {
  it('gives stdout first and stderr what is left, as a follower would send', () => {
    expect(withinLimit(out('abcdef', 'ghij'), 8)).toEqual(out('abcdef', 'gh'));
    expect(withinLimit(out('abcdef', 'ghij'), 4)).toEqual(out('abcd', ''));
    expect(withinLimit(out('ab', 'cd'), 100)).toEqual(out('ab', 'cd'));
  });
});
