// copy_in / copy_out: a tar stream between the host and the container, the
// container end run as vcap by `runc exec`, like a job: inside the container's
// namespaces and root (every path on that side is resolved in the container, so a
// symlink there can never make a copy read or write a host path), and inside its
// sandbox too — seccomp, no capabilities, no new privileges, its cgroups. The tar
// that runs there is the container's own (a privileged job may have replaced it),
// so it must get no more than a job would: through nsenter it ran with the daemon's
// full bounding set, without seccomp and outside the devices cgroup, and a setuid
// binary planted by a privileged job became root on the host.
// The host end of a copy out trusts nothing the container sends (untrusted-unpack.ts);
// the host end of a copy in reads src_path as root, so no component of it may be a
// symlink (one a container left in an earlier copy's destination would redirect it).
// `src/` copies the folder's contents, `src` the folder itself; permissions and
// symlinks are kept, hard links materialised (--hard-dereference).
import { basename, dirname } from 'node:path';
import { runPipeline, type PipelineCommand } from '../../host/run.ts';
import type { ContainerRecord } from '../../model/records.ts';
import { liveFacts } from './container/facts.ts';
import { PATH_ENV } from './bundle/spec.ts';
import { assertNoSymlinks } from '../../host/real-path.ts';
import { unpackUntrusted } from '../../host/untrusted-unpack.ts';
import { WardenError } from '../../model/errors.ts';

const TIMEOUT_MS = 10 * 60_000;

/**
 * tar arguments that archive src: its contents when it ends in '/', else the entry
 * itself. The name comes after `--`, so a name like `--index-file=x` stays a name.
 */
export function tarSource(src: string): string[] {
  if (src.endsWith('/')) return ['-C', src, '--', '.'];
  const trimmed = src.replace(/\/+$/, '') || '/';
  return ['-C', dirname(trimmed), '--', basename(trimmed)];
}
/**
 * The `runc exec` command that runs argv in the container as vcap. Without --process,
 * runc takes the init's process settings as the template: no capabilities,
 * noNewPrivileges; the container's seccomp profile and cgroups apply as to any job.
 */
function execArgs(c: ContainerRecord, argv: string[]): PipelineCommand {
  const rt = liveFacts(c).runtime;
  return {
    file: rt.binary,
    args: ['--root', rt.root, 'exec', '--user', `${c.uid}:${c.uid}`, '--cwd', '/', '--env', PATH_ENV, c.id, ...argv],
  };
}

/** How long the source may go on once the container's tar has ended (it reads and writes only the archive). */
const SOURCE_GRACE_MS = 10_000;

export async function copyIn(c: ContainerRecord, src: string, dst: string): Promise<void> {
  const context = `copy_in ${src} -> ${c.id}:${dst}`;
  await assertNoSymlinks(src.replace(/\/+$/, '') || '/', src.endsWith('/'), context);
  // One pipeline of the thread's spawner: the bytes never pass through the daemon.
  const r = await runPipeline(
    { file: 'tar', args: ['-c', '--hard-dereference', ...tarSource(src)] },
    execArgs(c, ['/bin/sh', '-c', 'mkdir -p -- "$1" && exec tar -x -p --no-overwrite-dir -C "$1"', 'warden-copy-in', dst]),
    { context, timeoutMs: TIMEOUT_MS, sourceGraceMs: SOURCE_GRACE_MS },
  );
  const problems: string[] = [];
  if (r.source.failure !== undefined) problems.push(`source: ${r.source.failure}`);
  if (r.sink.failure !== undefined) problems.push(`destination: ${r.sink.failure}`);
  if (problems.length) throw new WardenError(`${context}: ${problems.join('; ')}`, { code: 'invalid' });
}

export async function copyOut(c: ContainerRecord, src: string, dst: string, owner?: string): Promise<void> {
  const context = `copy_out ${c.id}:${src} -> ${dst}`;
  if (owner !== undefined && owner !== '' && !/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(owner)) {
    throw new WardenError(`${context}: invalid owner ${JSON.stringify(owner)}`, { code: 'invalid' });
  }
  // Unpacked as the container's own uid: no process of it can reach the host's files.
  await unpackUntrusted(execArgs(c, ['tar', '-c', '--hard-dereference', ...tarSource(src)]), {
    context, dst, uid: c.uid, owner: owner || undefined, timeoutMs: TIMEOUT_MS,
  });
}
