// The bundle (scripts/build → dist/): bin/warden-server starts from it only while
// it is newer than every source, and the bundled daemon finds the files it reads
// beside its sources (the job supervisor script, warden.json, package.json).
// Run on a copy of the tree, so that the checkout's own dist/ and the daemons of
// the other test files are left alone.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, TestDaemon } from '../support/daemon.ts';

const exec = promisify(execFile);
let tree: string;

beforeAll(async () => {
  tree = mkdtempSync(join(tmpdir(), 'warden-bundle-'));
  for (const p of ['bin', 'src', 'workers', 'scripts', 'package.json', 'package-lock.json']) cpSync(join(ROOT, p), join(tree, p), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
  await exec(join(tree, 'scripts/build'));
}, 60_000);

afterAll(() => {
  if (tree) rmSync(tree, { recursive: true, force: true });
});

/** Starts the copy's daemon once; returns its 'warden started' line and what a job printed. */
async function startOnce(bin = join(tree, 'bin/warden-server')): Promise<{ started: Record<string, unknown>; jobOutput: string; version: unknown }> {
  const d = await TestDaemon.start({ bin });
  try {
    const c = await d.client();
    const { handle } = await c.create({});
    // A job runs through the supervisor script read from src/jobs/ beside the sources.
    const run = await c.run({ handle, script: 'echo from-the-job' });
    await c.destroy({ handle });
    await c.close();
    const lines = readFileSync(d.logPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const started = lines.find((l) => l.msg === 'warden started')!;
    return { started, jobOutput: String(run.stdout), version: started.version };
  } finally {
    await d.cleanup();
  }
}

describe('the bundle', () => {
  it('is what bin/warden-server starts while it is fresh, and the daemon it makes works', async () => {
    const r = await startOnce();
    expect(r.started.entry).toBe(join(tree, 'dist/main.js'));
    expect(r.jobOutput).toBe('from-the-job\n');
    // package.json read from the tree's root, not from beside the bundle.
    expect(r.version).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    expect(readFileSync(join(tree, 'dist/BUILT'), 'utf8')).toMatch(/^\d+ modules bundled by esbuild/);
  }, 60_000);

  it('is found through a symlink to bin/warden-server (as one in /usr/local/bin), and by a relative path', async () => {
    const links = mkdtempSync(join(tmpdir(), 'warden-bin-'));
    try {
      symlinkSync(join(tree, 'bin/warden-server'), join(links, 'warden-server'));
      expect((await startOnce(join(links, 'warden-server'))).started.entry).toBe(join(tree, 'dist/main.js'));
      // Without a symlink the script finds its tree without a fork (no readlink).
      const rel = relative(process.cwd(), join(tree, 'bin/warden-server'));
      expect(rel.startsWith('/')).toBe(false);
      expect((await startOnce(rel)).started.entry).toBe(join(tree, 'dist/main.js'));
    } finally {
      rmSync(links, { recursive: true, force: true });
    }
  }, 60_000);

  it('is passed over for the sources once a source is newer, until it is built again', async () => {
    // As after an edit: the bundle older than a source (here the bundle's date is moved back).
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(join(tree, 'dist/main.js'), hourAgo, hourAgo);
    const stale = await startOnce();
    expect(stale.started.entry).toBe(join(tree, 'src/main.ts'));
    expect(stale.jobOutput).toBe('from-the-job\n');

    await exec(join(tree, 'scripts/build'));
    expect((await startOnce()).started.entry).toBe(join(tree, 'dist/main.js'));
  }, 60_000);

  it('is not needed: a tree never built (a fresh checkout) starts from its sources', async () => {
    rmSync(join(tree, 'dist'), { recursive: true, force: true });
    const r = await startOnce();
    expect(r.started.entry).toBe(join(tree, 'src/main.ts'));
    expect(r.jobOutput).toBe('from-the-job\n');
  }, 60_000);
});
