// A job script for the insecure backend (whose jobs are host processes) that tells the
// test where it is, so a test can order its steps by what the job has done instead of
// by sleeps: it writes its pid and `ready` once its TERM trap is set, marks `termed`
// on TERM (and runs on), and ends with exit 0 only once the test writes `release`. It
// writes no output of its own (bash's "Terminated" for its killed sleeps goes to
// /dev/null), so it fits under any job_output_limit.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { waitFor } from './wait.ts';

export interface HeldJob {
  script: string;
  /** Resolves once the job runs with its TERM trap set. */
  ready(): Promise<void>;
  termed(): boolean;
  /** Resolves once the job has seen a TERM. */
  waitTermed(): Promise<void>;
  /** Whether the job's shell is still a live process. */
  alive(): boolean;
  release(): void;
  cleanup(): void;
}

export function heldJob(before = ''): HeldJob {
  const dir = mkdtempSync(join(tmpdir(), 'warden-held-'));
  // Its folder goes with the test that made it, also when the test fails before its cleanup().
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const f = (name: string) => join(dir, name);
  const script =
    `${before}trap 'touch ${f('termed')}' TERM; echo $$ > ${f('pid')}; touch ${f('ready')}; ` +
    `{ while [ ! -e ${f('release')} ]; do sleep 0.05; done; } 2>/dev/null; exit 0`;
  return {
    script,
    ready: async () => void (await waitFor('the job to start', () => existsSync(f('ready')))),
    termed: () => existsSync(f('termed')),
    waitTermed: async () => void (await waitFor('the job to see TERM', () => existsSync(f('termed')))),
    alive: () => {
      const pid = Number(readFileSync(f('pid'), 'utf8'));
      const stat = (() => {
        try {
          return readFileSync(`/proc/${pid}/stat`, 'utf8');
        } catch {
          return '';
        }
      })();
      return stat !== '' && !/\) [ZX] /.test(stat);
    },
    release: () => writeFileSync(f('release'), ''),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
