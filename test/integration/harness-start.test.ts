// The test harness itself: a daemon whose start fails is killed, never left running,
// and the folder the harness made for it is removed.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DaemonStartError, TestDaemon } from '../support/daemon.ts';

/** Live processes whose command line mentions s (zombies excluded). */
function processesNaming(s: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/\) [ZX] /.test(stat)) continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(s)) out.push(Number(pid));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

async function failedStart(opts: Parameters<typeof TestDaemon.start>[0]): Promise<DaemonStartError> {
  const err = await TestDaemon.start(opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DaemonStartError);
  return err as DaemonStartError;
}

describe('a daemon that does not start', () => {
  it('is killed when it does not answer in time, and its folder goes', async () => {
    // It listens where the harness does not look: running, but never answering.
    const elsewhere = join(tmpdir(), `warden-elsewhere-${process.pid}.sock`);
    const err = await failedStart({ server: { unix_domain_path: elsewhere }, startTimeoutMs: 3_000 });
    expect(err.message).toMatch(/did not come up within 3000 ms \(killed\)/);
    expect(processesNaming(join(err.dir, 'warden.yml'))).toEqual([]);
    expect(existsSync(err.dir)).toBe(false);
    rmSync(elsewhere, { force: true });
  });

  it('that exits: its folder goes', async () => {
    const err = await failedStart({ server: { unix_domain_path: '/nonexistent/warden.sock' } });
    expect(err.message).toMatch(/exited with 1/);
    expect(processesNaming(join(err.dir, 'warden.yml'))).toEqual([]);
    expect(existsSync(err.dir)).toBe(false);
  });
});
