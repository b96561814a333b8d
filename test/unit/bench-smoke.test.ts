// Runs both benchmarks end to end with token durations (BENCH_QUICK=1) so they
// cannot rot. Timings never fail this test: it checks only that each benchmark
// exits cleanly and prints every row with its baseline and ratios.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stopChildren, spawnChild } from '../support/children.ts';
import { ROOT } from '../support/daemon.ts';

const NODE = join(ROOT, 'node_modules/.bin/node');

// A benchmark still running when its test ends (timed out, failed) is stopped: it
// cleans up on SIGTERM; its process group is killed if it does not exit in time.
afterEach(() => stopChildren(), 120_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runBench(script: string, args: string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(NODE, [join(ROOT, script), ...args], {
      cwd: ROOT,
      env: { ...process.env, BENCH_QUICK: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The table rows (cells split on runs of 2+ spaces) whose first cells are `prefix`. */
function row(stdout: string, ...prefix: string[]): string[] | undefined {
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s{2,}/))
    .find((cells) => prefix.every((p, i) => cells[i] === p));
}

const RATIO = /^\d+(\.\d+)?x$/;
const NUMBER = /^[\d,]+$/;

describe('benchmarks (BENCH_QUICK)', () => {
  it('bench/micro prints every benchmark with its baseline and the ratios', async () => {
    const run = await runBench('bench/micro/index.ts');
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.split('\n').map((l) => l.trim());
    const expected: [string, string][] = [];
    for (const group of ['encode', 'decode']) {
      for (const name of ['Ping request', 'Echo request 1 KiB', 'Spawn request + rlimits', 'StreamResponse 64 KiB']) {
        expected.push([group, name]);
      }
    }
    expected.push(['snapshot', 'JSON.stringify record, 10 jobs'], ['snapshot', 'writeFileAtomicSync snapshot.json']);
    for (const pool of ['NetworkPool', 'UidPool', 'PortPool']) expected.push(['pool', `${pool} acquire+release`]);
    for (const [group, name] of expected) {
      const at = lines.findIndex((l) => l.startsWith(group) && l.split(/\s{2,}/)[1]?.startsWith(name));
      expect(at, `row ${group} ${name} in:\n${run.stdout}`).toBeGreaterThanOrEqual(0);
      const cells = lines[at].split(/\s{2,}/);
      expect(cells[2], `ops/s of ${name}`).toMatch(NUMBER);
      expect(cells.at(-2), `mean ratio of ${name}`).toMatch(RATIO);
      expect(cells.at(-1), `p50 ratio of ${name}`).toMatch(RATIO);
      // The baseline's figures are on the next row.
      const baseline = lines[at + 1].split(/\s{2,}/);
      expect(baseline[0], `baseline of ${name}`).toMatch(/^baseline: /);
      expect(baseline[1], `baseline ops/s of ${name}`).toMatch(NUMBER);
    }
    // Codec rows carry MB/s.
    expect(row(run.stdout, 'decode', 'StreamResponse 64 KiB')![6]).toMatch(/^\d+(\.\d+)?$/);
  });

  it('bench/protocol measures the daemon and the raw echo server and prints the ratios', async () => {
    const run = await runBench('bench/protocol.ts', ['--connections', '1,2']);
    expect(run.code, run.stderr).toBe(0);
    for (const request of ['Ping', 'Echo 1 KiB']) {
      for (const conns of ['1', '2']) {
        const cells = row(run.stdout, request, conns);
        expect(cells, `row ${request} ${conns} in:\n${run.stdout}`).toBeDefined();
        expect(cells).toHaveLength(11);
        expect(cells![2], 'daemon rt/s').toMatch(NUMBER);
        expect(cells![5], 'raw rt/s').toMatch(NUMBER);
        for (const ratio of cells!.slice(8)) expect(ratio).toMatch(RATIO);
      }
    }
  });
});
