// The OCI runtime (runc) commands the backend uses. Containers live under our own
// `--root`, so listing it lists only ours.
import { rm } from 'node:fs/promises';
import { readFile, readdir, stat, writeFile } from '../../../host/thread-fs.ts';
import { basename, join } from 'node:path';
import { JOIN_CGROUP_FAILED, runHost } from '../../../host/run.ts';
import { run, HostCommandError } from '../exec.ts';

export interface Runtime {
  binary: string;
  root: string;
}

function base(rt: Runtime): string[] {
  return ['--root', rt.root];
}

export interface RuntimeState {
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'stopped' | 'paused' | string;
  bundle: string;
}

/**
 * `runc run --detach`: the container's init is started and runc returns (one runc
 * call where `create` + `start` were two: the init is the daemon's own sleeper, so
 * nothing of the container's own runs before create has set the network up and
 * replied). The init inherits runc's stdio, so it gets /dev/null (a pipe would stay
 * open for the container's whole life and we would wait for its end); runc's own
 * messages go to its --log file.
 * Returns the init's host pid, also written to pidFile. runc itself is not asked to
 * write pidFile: its --pid-file is opened O_SYNC, a flush of the depot's disk per
 * create; the pid is read from runc's state file (on the runtime root's filesystem,
 * written before `run --detach` returns) and pidFile written without the flush. Other
 * runtimes write pidFile themselves.
 */
export async function runContainer(
  rt: Runtime, id: string, bundle: string, pidFile: string, logFile: string, cgroupProcs?: string,
): Promise<number> {
  const ownState = keepsRuncState(rt);
  const args = ['--log', logFile, ...base(rt), 'run', '--detach', '--bundle', bundle, ...(ownState ? [] : ['--pid-file', pidFile]), id];
  // runc resolves the relative cgroupsPath against its own cgroup: when the daemon sits
  // in its own cgroup (cgroups/daemon-cgroup.ts), runc must start from the one it left
  // (the shared spawner, started before the daemon moved, is there already).
  try {
    await runHost(rt.binary, args, { context: `create ${id}`, output: 'ignore', ...(cgroupProcs ? { joinCgroup: cgroupProcs } : {}) });
  } catch (err) {
    const text = (await readFile(logFile, 'utf8').catch(() => ''))
      .trim().split('\n').slice(-3).map((l) => /msg="((?:[^"\\]|\\.)*)"/.exec(l)?.[1] ?? l).join('; ')
      || ((err as { exitCode?: number }).exitCode === JOIN_CGROUP_FAILED ? `cannot move into the cgroup of ${cgroupProcs}` : '');
    throw new HostCommandError(
      `${rt.binary} run ${id} failed: ${text || (err as Error).message}`,
      [rt.binary, ...args].join(' '),
      (err as HostCommandError).exitCode,
      text,
    );
  }
  if (!ownState) return Number((await readFile(pidFile, 'utf8')).trim());
  const state = await readRuncState(rt, id);
  if (!state) throw new HostCommandError(`${rt.binary} run ${id} left no state file`, [rt.binary, ...args].join(' '), undefined, '');
  await writeFile(pidFile, `${state.pid}\n`);
  return state.pid;
}

/** The runtime's state of the container, or undefined when it does not know it. */
export async function containerState(rt: Runtime, id: string): Promise<RuntimeState | undefined> {
  const r = await runHost(rt.binary, [...base(rt), 'state', id], { context: `state of ${id}`, timeoutMs: 30_000, allowFailure: true });
  if (r.exitCode === 0) return JSON.parse(r.stdout) as RuntimeState;
  if (/does not exist|not exist/i.test(r.stderr)) return undefined;
  throw new HostCommandError(`state of ${id}: ${rt.binary} state ${id} failed: ${r.stderr || `exit status ${r.exitCode}`}`, `${rt.binary} state ${id}`, r.exitCode, r.stderr);
}

/** Kills every process and removes the runtime's record and cgroups; unknown ids are fine. */
export async function deleteContainer(rt: Runtime, id: string): Promise<void> {
  try {
    await run(rt.binary, [...base(rt), 'delete', '--force', id], { context: `delete ${id}`, timeoutMs: 30_000 });
  } catch (err) {
    if (err instanceof HostCommandError && /does not exist|not exist/i.test(err.stderr)) {
      await removeStateLeftover(rt, id);
      return;
    }
    throw err;
  }
}

/**
 * A `runc run` cut short (the daemon killed mid-create) leaves <root>/<id> without a
 * state.json: runc neither lists nor deletes it, and it would keep the root from going.
 */
async function removeStateLeftover(rt: Runtime, id: string): Promise<void> {
  if (!rt.root || !/^[0-9a-z]{1,32}$/.test(id)) return;
  const dir = join(rt.root, id);
  if (await stat(join(dir, 'state.json')).then(() => true, () => false)) return;
  await rm(dir, { recursive: true, force: true });
}

/** Ids under our runtime root, also those runc does not list (no state.json: a cut create). */
export async function runtimeRootIds(rt: Runtime): Promise<string[]> {
  if (!rt.root) return [];
  return (await readdir(rt.root).catch(() => [] as string[])).filter((n) => /^[0-9a-z]{1,32}$/.test(n));
}

/** Ids of every container under our runtime root. */
export async function listContainers(rt: Runtime): Promise<string[]> {
  const out = await run(rt.binary, [...base(rt), 'list', '--format', 'json'], { context: 'list containers' });
  const list = JSON.parse(out.trim() || 'null') as Array<{ id: string }> | null;
  return (list ?? []).map((c) => c.id);
}

/** Does this runtime keep runc's state files (readRuncState can stand in for `list`)? */
export function keepsRuncState(rt: Runtime): boolean {
  return basename(rt.binary) === 'runc';
}

/**
 * What `runc list` says of one container, read from runc's own state file
 * (<root>/<id>/state.json) without starting runc, which for 100 containers took
 * 100 ms of a restart: the init's pid, status 'running' (whether that init still
 * lives is the caller's /proc check, the same one runc makes). undefined when
 * runc holds no such container (a create cut short leaves no state.json).
 */
export async function readRuncState(rt: Runtime, id: string): Promise<RuntimeState | undefined> {
  if (!/^[0-9a-z]{1,32}$/.test(id)) return undefined;
  try {
    const st = JSON.parse(await readFile(join(rt.root, id, 'state.json'), 'utf8')) as { id?: unknown; init_process_pid?: unknown };
    if (st.id !== id || typeof st.init_process_pid !== 'number') return undefined;
    return { id, pid: st.init_process_pid, status: 'running', bundle: '' };
  } catch {
    return undefined;
  }
}

/** Every container under our runtime root with its init pid and status, from one `runc list`. */
export async function listContainerStates(rt: Runtime): Promise<Map<string, RuntimeState>> {
  const out = await run(rt.binary, [...base(rt), 'list', '--format', 'json'], { context: 'list containers' });
  const list = JSON.parse(out.trim() || 'null') as RuntimeState[] | null;
  return new Map((list ?? []).map((c) => [c.id, c]));
}
