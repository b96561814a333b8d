import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveInside } from '../../src/backends/insecure/safe-path.ts';
import { ContainerRegistry, validateHandle } from '../../src/model/registry.ts';
import { Container } from '../../src/model/container.ts';
import { StateError } from '../../src/model/errors.ts';
import { JOB_ID_BLOCK, JobIdAllocator } from '../../src/jobs/job-ids.ts';
import { effectiveRlimits, parseHardLimits, prlimitArgs } from '../../src/jobs/rlimits.ts';
import type { ContainerRecord } from '../../src/model/records.ts';

describe('JobIdAllocator', () => {
  it('persists a ceiling before handing out ids beyond it, and never repeats', async () => {
    const persisted: number[] = [];
    const a = new JobIdAllocator(1, async (c) => {
      persisted.push(c);
    });
    const ids = await Promise.all(Array.from({ length: JOB_ID_BLOCK + 5 }, () => a.allocate()));
    expect(new Set(ids).size).toBe(ids.length);
    expect(Math.max(...ids)).toBe(JOB_ID_BLOCK + 5);
    expect(persisted).toEqual([JOB_ID_BLOCK, 2 * JOB_ID_BLOCK]);
    // A restart continues above the persisted ceiling.
    const b = new JobIdAllocator(persisted.at(-1)! + 1, async () => {});
    expect(await b.allocate()).toBe(2 * JOB_ID_BLOCK + 1);
  });

  it('fails the allocation when the ceiling cannot be persisted', async () => {
    const a = new JobIdAllocator(1, async () => {
      throw new Error('disk full');
    });
    await expect(a.allocate()).rejects.toThrow('disk full');
  });
});

describe('rlimits', () => {
  const hard = parseHardLimits(
    'Limit                     Soft Limit           Hard Limit           Units\n' +
      'Max open files            1024                 20000                files\n' +
      'Max processes             96364                unlimited            processes\n',
  );
  it('reads hard limits', () => expect(hard).toEqual({ nofile: 20000, nproc: Infinity }));
  it('merges the request over the defaults', () => {
    expect(effectiveRlimits({ nofile: 100, nproc: 50 }, { nofile: 200 }, hard)).toEqual({ nofile: 200, nproc: 50 });
  });
  it('refuses what the daemon cannot grant, naming the limit', () => {
    expect(() => effectiveRlimits({}, { nofile: 30000 }, hard)).toThrow(/nofile=30000 .*hard limit of 20000/);
  });
  it('builds prlimit arguments', () => expect(prlimitArgs({ nofile: 5 })).toEqual(['--nofile=5:5']));
});

describe('registry', () => {
  it('generates unique 11-character base-32 ids', () => {
    const r = new ContainerRegistry();
    const ids = new Set(Array.from({ length: 20000 }, () => r.newId()));
    expect(ids.size).toBe(20000);
    for (const id of [...ids].slice(0, 50)) expect(id).toMatch(/^[0-9a-v]{11}$/);
  });
  it('validates client handles', () => {
    expect(() => validateHandle('')).toThrow(/empty/);
    expect(() => validateHandle('a\nb')).toThrow(/control/);
    expect(() => validateHandle('ok-handle_1')).not.toThrow();
  });
  it('names the allowed and current states', () => {
    const c = new Container({ state: 'stopped', jobs: [] } as unknown as ContainerRecord);
    expect(() => c.assertState('active')).toThrow(new StateError(['active'], 'stopped'));
    expect(() => c.assertState('active')).toThrow("Container state must be one of 'active', current state is 'stopped'");
  });
  it('lists several allowed states inside one pair of quotes, as the original did', () => {
    const c = new Container({ state: 'born', jobs: [] } as unknown as ContainerRecord);
    expect(() => c.assertState('active', 'stopped')).toThrow("Container state must be one of 'active, stopped', current state is 'born'");
  });
});

describe('resolveInside', () => {
  const root = mkdtempSync(join(tmpdir(), 'warden-root-'));
  mkdirSync(join(root, 'a/b'), { recursive: true });
  symlinkSync('/etc', join(root, 'abs'));
  symlinkSync('../../..', join(root, 'a/b/up'));
  symlinkSync('b', join(root, 'a/rel'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('clamps .. at the root', async () => {
    expect(await resolveInside(root, '/../../etc/passwd')).toBe(join(root, 'etc/passwd'));
  });
  it('restarts absolute symlinks at the root', async () => {
    expect(await resolveInside(root, '/abs/passwd')).toBe(join(root, 'etc/passwd'));
  });
  it('follows relative symlinks without leaving', async () => {
    expect(await resolveInside(root, '/a/b/up/x')).toBe(join(root, 'x'));
    expect(await resolveInside(root, '/a/rel/f')).toBe(join(root, 'a/b/f'));
  });
  it('keeps a final symlink unless asked to follow it', async () => {
    expect(await resolveInside(root, '/abs')).toBe(join(root, 'abs'));
    expect(await resolveInside(root, '/abs', true)).toBe(join(root, 'etc'));
  });
});
