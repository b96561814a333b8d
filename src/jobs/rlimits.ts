// Job rlimits: the request's over the server's `container_rlimits`, checked
// against what the daemon itself may grant (it cannot raise a hard limit
// without CAP_SYS_RESOURCE), and turned into prlimit(1) arguments.
import { RLIMIT_NAMES, type ResourceLimits, type U64 } from '../protocol/types.ts';

/** prlimit's option for each Warden rlimit name. */
const PRLIMIT_OPTION: Record<string, string> = {
  as: 'as', core: 'core', cpu: 'cpu', data: 'data', fsize: 'fsize', locks: 'locks',
  memlock: 'memlock', msgqueue: 'msgqueue', nice: 'nice', nofile: 'nofile', nproc: 'nproc',
  rss: 'rss', rtprio: 'rtprio', sigpending: 'sigpending', stack: 'stack',
};

/** /proc/self/limits names of each rlimit (for the daemon's own hard limits). */
export const PROC_LIMIT_NAME: Record<string, string> = {
  as: 'Max address space', core: 'Max core file size', cpu: 'Max cpu time', data: 'Max data size',
  fsize: 'Max file size', locks: 'Max file locks', memlock: 'Max locked memory',
  msgqueue: 'Max msgqueue size', nice: 'Max nice priority', nofile: 'Max open files',
  nproc: 'Max processes', rss: 'Max resident set', rtprio: 'Max realtime priority',
  sigpending: 'Max pending signals', stack: 'Max stack size',
};

export class RlimitError extends Error {
  override name = 'RlimitError';
  /** The request asks for what cannot be (see ErrorCode in src/model/errors.ts). */
  readonly code = 'invalid';
}

/** Parse /proc/self/limits into hard limits by Warden rlimit name (Infinity for unlimited). */
export function parseHardLimits(procLimits: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, label] of Object.entries(PROC_LIMIT_NAME)) {
    const line = procLimits.split('\n').find((l) => l.startsWith(label));
    if (!line) continue;
    const cols = line.slice(label.length).trim().split(/\s+/);
    out[name] = cols[1] === 'unlimited' ? Infinity : Number(cols[1]);
  }
  return out;
}

/** Merge request rlimits over the defaults and refuse what the daemon could not grant. */
export function effectiveRlimits(
  defaults: Record<string, U64>,
  requested: ResourceLimits | undefined,
  hardLimits: Record<string, number>,
): Record<string, U64> {
  const out: Record<string, U64> = {};
  for (const name of RLIMIT_NAMES) {
    const v = requested?.[name] ?? defaults[name];
    if (v === undefined || v === null) continue;
    const hard = hardLimits[name];
    if (hard !== undefined && v > hard) {
      throw new RlimitError(
        `rlimit ${name}=${v} is above the daemon's own hard limit of ${hard}; ask for at most ${hard}`,
      );
    }
    out[name] = v;
  }
  return out;
}

export function prlimitArgs(limits: Record<string, U64>): string[] {
  return Object.entries(limits).map(([name, v]) => `--${PRLIMIT_OPTION[name]}=${v}:${v}`);
}
