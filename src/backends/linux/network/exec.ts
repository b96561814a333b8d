// Host commands for the network module: argument arrays only, bounded in time
// (a wedged tool must delay one request, never hang a worker), and failures
// wrapped once with what was being done: `net_in: iptables -t nat -A ... failed: <stderr>`.
import { execa } from 'execa';

export interface RunOptions {
  /** What the caller was doing, put in front of the error message (e.g. "net_in"). */
  context: string;
  /** Text fed to the command's stdin (iptables-restore, ip -batch, tc -batch). */
  input?: string;
  /** Kill the command after this long; default 30 s. */
  timeoutMs?: number;
}

export class HostCommandError extends Error {
  override name = 'HostCommandError';
  readonly command: string;
  readonly exitCode: number | undefined;
  readonly stderr: string;

  constructor(message: string, command: string, exitCode: number | undefined, stderr: string, cause: unknown) {
    super(message, { cause });
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** Runs file with args; resolves to its stdout, rejects with a HostCommandError. */
export async function run(file: string, args: readonly string[], opts: RunOptions): Promise<string> {
  const shown = [file, ...args].join(' ');
  try {
    const result = await execa(file, args, {
      input: opts.input,
      timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      forceKillAfterDelay: 2_000,
      stripFinalNewline: false,
      // A session of its own: a signal for the daemon's process group must not kill it.
      detached: true,
      env: { LC_ALL: 'C' },
      extendEnv: true,
    });
    return result.stdout;
  } catch (err) {
    const e = err as { stderr?: unknown; exitCode?: number; timedOut?: boolean; shortMessage?: string; message?: string };
    const stderr = typeof e.stderr === 'string' ? e.stderr.trim() : '';
    const why = e.timedOut
      ? `timed out after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`
      : stderr || e.shortMessage || e.message || String(err);
    throw new HostCommandError(`${opts.context}: ${shown} failed: ${why}`, shown, e.exitCode, stderr, err);
  }
}
