// Snapshot cases: serializing a container record the way state.writeJson does,
// and the atomic write (temp file, rename).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../src/depot/depot-tasks.ts';
import type { Case } from './measure.ts';
import { containerRecord } from './fixtures.ts';

export interface SnapshotCases {
  cases: Case[];
  /** The folder the write cases write into. */
  dir: string;
  /** Removes that folder; safe to call more than once. */
  cleanup(): void;
}

/** Serialization exactly as the snapshot task does it (depot-tasks.ts, state.writeJson). */
function serialize(value: unknown): string {
  return `${JSON.stringify(value, null, 1)}\n`;
}

export function snapshotCases(options: { parentDir?: string } = {}): SnapshotCases {
  const record = containerRecord();
  const text = serialize(record);
  const bytes = Buffer.byteLength(text);
  const dir = mkdtempSync(join(options.parentDir ?? tmpdir(), 'warden-bench-'));
  const atomicPath = join(dir, 'snapshot.json');
  const plainPath = join(dir, 'plain.json');
  return {
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
    cases: [
      {
        group: 'snapshot',
        name: 'JSON.stringify record, 10 jobs',
        bytes,
        fn: () => serialize(record),
        baseline: { name: 'structuredClone of it', fn: () => structuredClone(record) },
      },
      {
        group: 'snapshot',
        name: 'writeFileAtomicSync snapshot.json',
        bytes,
        fn: () => writeFileAtomicSync(atomicPath, text),
        baseline: { name: 'fs.writeFileSync in place', fn: () => writeFileSync(plainPath, text) },
      },
    ],
  };
}
