// A benchmark a test started does not outlive the test when the test times out:
// a vitest run of a fixture whose test times out with bin/warden-bench running
// leaves no process behind, and the benchmark had cleaned up what it made.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/daemon.ts';

const out = mkdtempSync(join(tmpdir(), 'warden-children-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function processesNaming(s: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      if (/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) continue;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(s)) found.push(`${pid} ${cmd}`);
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

describe('children of a test that times out', () => {
  it('are stopped: the benchmark cleaned up and nothing of it runs on', async () => {
    const run = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(join(ROOT, 'node_modules/.bin/vitest'), ['run', '--config', 'test/fixtures/vitest.children.config.ts'], {
        cwd: ROOT,
        env: { ...process.env, CHILDREN_FIXTURE_OUT: out },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, output }));
    });
    // The fixture's test failed by its timeout.
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(/Test timed out in 8000ms/);
    // The benchmark stopped on SIGTERM and cleaned up what it had made.
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { interrupted: boolean; cleanup: { ok: boolean }; meta: { daemon: { config: string } } };
    expect(results.interrupted).toBe(true);
    expect(results.cleanup.ok, JSON.stringify(results.cleanup)).toBe(true);
    expect(existsSync(results.meta.daemon.config)).toBe(false);
    // Nothing of it runs on: neither the benchmark nor its daemon.
    expect(processesNaming(out)).toEqual([]);
    expect(processesNaming(results.meta.daemon.config)).toEqual([]);
  }, 180_000);
});
