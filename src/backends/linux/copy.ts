// copy_in / copy_out: a tar stream between the host and the container, the
// container end run as vcap inside the container's namespaces (nsenter into the
// init, root dir included), so every path on that side is resolved in the
// container: a symlink there can never make a copy read or write a host path.
// `src/` copies the folder's contents, `src` the folder itself; permissions and
// symlinks are kept, hard links materialised (--hard-dereference).
import { mkdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { ContainerRecord } from '../../containers/model.ts';
import { liveFacts } from './container/facts.ts';
import { run } from './exec.ts';

const TIMEOUT_MS = 10 * 60_000;

/** tar arguments that archive src: its contents when it ends in '/', else the entry itself. */
export function tarSource(src: string): string[] {
  if (src.endsWith('/')) return ['-C', src, '.'];
  const trimmed = src.replace(/\/+$/, '') || '/';
  return ['-C', dirname(trimmed), basename(trimmed)];
}

function nsenterArgs(initPid: number, uid: number): string[] {
  return ['-t', String(initPid), '-m', '-u', '-i', '-n', '-p', '-r', '-w', '-S', String(uid), '-G', String(uid), '--'];
}

async function pipeline(context: string, from: ResultPromise, to: ResultPromise): Promise<string> {
  from.stdout!.pipe(to.stdin!);
  // A reader that dies must not leave the writer blocked.
  to.stdin!.on('error', () => undefined);
  const [a, b] = await Promise.allSettled([from, to]);
  const problems: string[] = [];
  for (const [name, r] of [['source', a], ['destination', b]] as const) {
    if (r.status === 'rejected') {
      const e = r.reason as { stderr?: string; shortMessage?: string; message?: string };
      problems.push(`${name}: ${(e.stderr || e.shortMessage || e.message || String(r.reason)).trim()}`);
    }
  }
  if (problems.length) throw new Error(`${context}: ${problems.join('; ')}`);
  return b.status === 'fulfilled' ? String(b.value.stdout ?? '') : '';
}

export async function copyIn(c: ContainerRecord, src: string, dst: string): Promise<void> {
  const f = liveFacts(c);
  const context = `copy_in ${src} -> ${c.id}:${dst}`;
  if (!(await stat(src.replace(/\/+$/, '') || '/').catch(() => undefined))) throw new Error(`${context}: ${src} does not exist`);
  const from = execa('tar', ['-c', '--hard-dereference', ...tarSource(src)], {
    stdin: 'ignore', stdout: 'pipe', buffer: { stdout: false }, timeout: TIMEOUT_MS, detached: true,
  });
  const to = execa(
    'nsenter',
    [
      ...nsenterArgs(f.initPid, c.uid),
      '/bin/sh', '-c', 'mkdir -p -- "$1" && exec tar -x -p --no-overwrite-dir -C "$1"', 'warden-copy-in', dst,
    ],
    { stdin: 'pipe', timeout: TIMEOUT_MS, detached: true },
  );
  await pipeline(context, from, to);
}

export async function copyOut(c: ContainerRecord, src: string, dst: string, owner?: string): Promise<void> {
  const f = liveFacts(c);
  const context = `copy_out ${c.id}:${src} -> ${dst}`;
  if (owner !== undefined && owner !== '' && !/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(owner)) {
    throw new Error(`${context}: invalid owner ${JSON.stringify(owner)}`);
  }
  const made = await mkdir(dst, { recursive: true });
  const from = execa('nsenter', [...nsenterArgs(f.initPid, c.uid), 'tar', '-c', '--hard-dereference', ...tarSource(src)], {
    stdin: 'ignore', stdout: 'pipe', buffer: { stdout: false }, timeout: TIMEOUT_MS, detached: true,
  });
  // As root on the host: --no-same-owner leaves files root's and drops setuid/setgid bits;
  // GNU tar refuses '..' members and defers symlinks that could redirect later members.
  const to = execa('tar', ['-x', '-v', '--no-same-owner', '--quoting-style=literal', '-C', dst], {
    stdin: 'pipe', timeout: TIMEOUT_MS, detached: true,
  });
  const listing = await pipeline(context, from, to);
  if (owner) {
    // Chown what was copied (never the rest of dst): the archive's top-level entries, recursively.
    const top = new Set<string>();
    for (const line of listing.split('\n')) {
      const first = line.replace(/^\.\//, '').split('/')[0];
      if (first && first !== '.') top.add(first);
    }
    const targets = [...top].map((t) => join(dst, t));
    if (made !== undefined) targets.push(dst);
    for (let i = 0; i < targets.length; i += 500) {
      await run('chown', ['-R', '-h', '--', owner, ...targets.slice(i, i + 500)], { context: `${context}: chown` });
    }
  }
}
