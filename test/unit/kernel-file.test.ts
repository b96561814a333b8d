// readKernelFile: the whole text of kernel files (size 0 in stat) and of files
// bigger than its first read; the error of a missing file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readKernelFile, readKernelFileSync } from '../../src/host/kernel-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'kernel-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each([
  ['readKernelFile', readKernelFile],
  ['readKernelFileSync', async (p: string) => readKernelFileSync(p)],
])('%s', (_name, readKernelFile) => {
  it('reads a procfs file whose stat size is 0', async () => {
    const text = await readKernelFile('/proc/self/status');
    expect(text).toMatch(/^Name:/);
    expect(text).toContain('\nPid:');
  });

  it('reads all of a file longer than one read', async () => {
    const p = join(dir, 'big');
    const body = 'x'.repeat(50_000) + '\nend\n';
    writeFileSync(p, body);
    expect(await readKernelFile(p)).toBe(readFileSync(p, 'utf8'));
  });

  it('fails as open does for a missing file', async () => {
    await expect(readKernelFile(join(dir, 'none'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
