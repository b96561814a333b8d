// Smoke test of the load harness (bin/warden-bench --quick, insecure backend):
// every scenario runs end to end with token sizes, so the harness cannot rot.
// Timings never fail it: it checks that the run exits cleanly, that every
// result line carries its baseline and ratio, that the outputs are written, and
// that nothing is left behind (the harness's own check), also after a Ctrl-C.
// The three runs share the machine: their timeouts leave room for a busy host.
import type { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stopChildren, spawnChild } from '../support/children.ts';
import { ROOT } from '../support/daemon.ts';
import { hostEndBatch } from '../../src/backends/linux/network/veth.ts';
import { hostIface, ifbIface } from '../../src/backends/linux/network/names.ts';
import { JOB_WRAPPER, processSpec } from '../../src/backends/linux/jobs/launch.ts';
import type { ContainerRecord } from '../../src/model/records.ts';

const BENCH = join(ROOT, 'bin/warden-bench');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const dirs: string[] = [];
afterAll(async () => {
  // A bench still running (its test timed out or failed) is stopped first: it cleans
  // up on SIGTERM; its process group is killed if it does not exit in time. (The
  // tests run concurrently: an afterEach would stop the others' benches too.)
  await stopChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 120_000);

function bench(args: string[], onStderr?: (text: string, child: ReturnType<typeof spawn>) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(BENCH, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, child);
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Line {
  scenario: string;
  metric: string;
  unit: string;
  value: number;
  baseline?: { label: string; value: number };
  ratio?: number;
}

describe.concurrent('bin/warden-bench --quick (insecure)', () => {
  it('runs every scenario with its baselines, writes the outputs and leaves nothing behind', async () => {
    const out = mkdtempSync(join(tmpdir(), 'warden-bench-smoke-'));
    dirs.push(out);
    const run = await bench(['--quick', '--out', out]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);

    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      results: Line[];
      errors: unknown[];
      cleanup: { ok: boolean; listed: string[]; host: string[] };
      samples: Array<{ scenario: string; name: string; rows: number[][] }>;
      findings: Array<{ scenario: string; title: string; rows: string[][] }>;
    };
    expect(json.errors).toEqual([]);
    expect(json.cleanup).toMatchObject({ ok: true, listed: [], host: [] });
    for (const scenario of ['protocol', 'lifecycle', 'jobs', 'staging', 'density', 'restart']) {
      const lines = json.results.filter((l) => l.scenario === scenario);
      expect(lines.length, `result lines of ${scenario}`).toBeGreaterThan(0);
      // Every line but the insecure backend's NetIn step (it does nothing on the host) has a baseline and a ratio.
      for (const l of lines.filter((x) => !/net_in/.test(x.metric))) {
        expect(l.baseline, `baseline of ${scenario} ${l.metric}`).toBeDefined();
        // (A memory baseline of a few containers can read 0 on a busy host: no ratio then.)
        if (l.baseline!.value !== 0) expect(typeof l.ratio, `ratio of ${scenario} ${l.metric}`).toBe('number');
      }
      expect(json.samples.some((s) => s.scenario === scenario && s.rows.length > 0), `samples of ${scenario}`).toBe(true);
    }
    const metrics = json.results.map((l) => `${l.scenario} ${l.metric}`);
    for (const m of ['lifecycle create+destroy cycles', 'jobs Run `true`', 'jobs Stream throughput, one job', 'staging stagings', 'density daemon RSS', 'density Info', 'protocol Ping round trips',
      'restart drain (SIGUSR2 → old daemon exits)', 'restart next daemon (old exits → answers Ping)',
      'restart SIGUSR2 → serving again (target <= 500 ms)', 'restart SIGUSR2 → every job linkable again']) {
      expect(metrics, m).toContain(m);
    }
    // restart: one round with 3 containers; every job reached after it and Linked with its script's status; phases from the daemons' logs.
    expect(json.samples.find((s) => s.scenario === 'restart' && s.name === 'rounds')?.rows).toHaveLength(1);
    expect(json.findings.find((f) => f.scenario === 'restart' && /^every job after 1 restarts/.test(f.title))?.rows).toEqual([['3', '3', '0']]);
    const phases = json.findings.find((f) => f.scenario === 'restart' && /^where a restart's time goes/.test(f.title))!.rows.map((r) => `${r[0]}: ${r[1]}`);
    for (const p of ['old daemon: drain: snapshots', 'next daemon: recovery', 'next daemon:   recovery: scan', 'baseline: start: node_start']) {
      expect(phases, p).toContain(p);
    }

    // Terminal summary: rows with a ratio; the cleanup verdict.
    expect(run.stdout).toMatch(/lifecycle\s+create\+destroy cycles\s+c=1\s+.*\d+(\.\d+)?x/);
    expect(run.stdout).toContain('cleanup: nothing left behind');

    // The report is one self-contained file with its plots inline; the plots are also files.
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
    const plots = readdirSync(join(out, 'plots'));
    for (const p of ['density-create.svg', 'density-memory.svg', 'throughput-lifecycle.svg', 'throughput-protocol.svg', 'latency-jobs.svg']) {
      expect(plots).toContain(p);
    }
  }, 120_000);

  it('chaos --quick: SIGKILLs under load, then nothing lost and nothing left behind', async () => {
    const out = mkdtempSync(join(tmpdir(), 'warden-bench-chaos-'));
    dirs.push(out);
    const run = await bench(['chaos', '--quick', '--kills', '3', '--out', out]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      results: Line[];
      errors: unknown[];
      cleanup: { ok: boolean };
      findings: Array<{ scenario: string; title: string; rows: string[][] }>;
    };
    expect(json.errors).toEqual([]);
    expect(json.cleanup.ok).toBe(true);
    const f = json.findings.find((x) => x.scenario === 'chaos' && /SIGKILLs/.test(x.title))!;
    expect(f.title).toMatch(/^3 SIGKILLs, \d+ operations .* lost: 0$/);
    const all = f.rows.find((r) => r[0] === 'all')!;
    expect(Number(all[1])).toBeGreaterThan(0);
    expect(run.stderr).toMatch(/chaos: 3 kills survived/);
  }, 120_000);

  it('cleans up what it created when interrupted (Ctrl-C)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'warden-bench-smoke-'));
    dirs.push(out);
    let sent = false;
    const run = await bench(['lifecycle', '--quick', '--duration', '60', '--concurrency', '4', '--out', out], (stderr, child) => {
      // Interrupt in the middle of the cycles, with containers alive.
      if (!sent && stderr.includes('lifecycle c=4 daemon')) {
        sent = true;
        setTimeout(() => child.kill('SIGINT'), 700);
      }
    });
    expect(sent, run.stderr).toBe(true);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(130);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { interrupted: boolean; cleanup: { ok: boolean; checked: string[] }; meta: { daemon: { config: string } } };
    expect(json.interrupted).toBe(true);
    expect(json.cleanup.ok, JSON.stringify(json.cleanup)).toBe(true);
    expect(run.stdout).toContain('cleanup: nothing left behind');
    // The daemon's temporary folder (depot, socket, config) is gone.
    expect(existsSync(json.meta.daemon.config)).toBe(false);
  }, 60_000);
});

// The raw Linux baseline must make and remove what the daemon's create and destroy do,
// or it skips a step the daemon pays for (it had no ifb, and its destroy then deleted
// nothing: the veth is gone with the namespace). Checked against the daemon's own batch.
describe('bench raw Linux baseline', () => {
  const script = readFileSync(join(ROOT, 'bench/harness/baselines/raw-linux.sh'), 'utf8');

  it("makes the interfaces of the daemon's host-end batch, line for line", () => {
    const lines = hostEndBatch({ id: 'ID', hostIp: '10.1.2.1', containerIp: '10.1.2.2', mtu: 1234 }, 4242)
      .trim()
      .split('\n')
      .map((l) => l.replaceAll('ID', '$id').replaceAll('1234', '$MTU').replace('4242', '$pid').replace('10.1.2.1', '$hostip'));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(script, l).toContain(`\n${l}\n`);
  });

  it("deletes, at destroy, each interface the daemon's destroy deletes when it is there", () => {
    const destroy = script.slice(script.indexOf('\ndestroy() {'), script.indexOf('\ncycle() {'));
    for (const name of [ifbIface('$id'), hostIface('$id')]) expect(destroy).toContain(`"${name}"`);
    expect(destroy).toMatch(/ip -force -batch - .*<<< "\$batch"/);
  });

  it('runs, for a Run, the processes a job starts in the container: the wrapper and bash reading the script', () => {
    const rec = { uid: 10001, id: 'ID' } as unknown as ContainerRecord;
    const spec = processSpec(rec, { id: 1, privileged: false, rlimits: {}, env: {}, dir: '/j' });
    expect(spec.args).toEqual(['/bin/bash', '-c', JOB_WRAPPER, 'warden-job']);
    const job = script.slice(script.indexOf('\nexec_job() {'), script.indexOf('\nexec_out() {'));
    expect(job).toContain('"$id" /bin/bash -c "$JOB_WRAPPER" warden-job 3>/dev/null 2>&1 <<< true');
    expect(readFileSync(join(ROOT, 'bench/harness/baselines/raw-linux.ts'), 'utf8')).toMatch(/'exec-job'.*\{ JOB_WRAPPER \}/);
  });
});

describe('bench CPU accounting', () => {
  it("counts what a live child reaped from its own children (the daemon's spawners and their commands)", async () => {
    const { processSample } = await import('../../bench/harness/proc.ts');
    const before = (await processSample(process.pid))!;
    // A long-lived child (as a spawner is) runs a command that burns ~0.3 s of CPU and
    // waits for it; then it stays alive, so none of that is in our own cutime yet.
    const burn = "const t = Date.now(); while (Date.now() - t < 300) {}";
    const parent = `require('child_process').execFileSync(process.execPath, ['-e', ${JSON.stringify(burn)}]); console.log('done'); setTimeout(() => {}, 60000);`;
    const child = spawnChild(process.execPath, ['-e', parent], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    try {
      const after = (await processSample(process.pid))!;
      expect(after.childCpu - before.childCpu).toBeGreaterThan(0.1);
    } finally {
      await stopChildren();
    }
  });
});
