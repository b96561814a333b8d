// Host commands of the Linux backend: argument arrays only, bounded in time, and
// failures wrapped once with what was being done ("create abc: runc create ... failed: <stderr>").
import { execa } from 'execa';

export interface RunOptions {
  /** What the caller was doing; the error message starts with it. */
  context: string;
  /** Text or bytes fed to the command's stdin. */
  input?: string | Uint8Array;
  /** Kill the command after this long; default 60 s. */
  timeoutMs?: number;
  cwd?: string;
}

export class HostCommandError extends Error {
  override name = 'HostCommandError';
  readonly command: string;
  readonly exitCode: number | undefined;
  readonly stderr: string;

  constructor(message: string, command: string, exitCode: number | undefined, stderr: string, cause?: unknown) {
    super(message, { cause });
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;

/** Runs file with args; resolves to its stdout (trimmed), rejects with a HostCommandError. */
export async function run(file: string, args: readonly string[], opts: RunOptions): Promise<string> {
  const shown = [file, ...args].join(' ');
  try {
    const result = await execa(file, args, {
      input: opts.input,
      stdin: opts.input === undefined ? 'ignore' : 'pipe',
      cwd: opts.cwd,
      timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      forceKillAfterDelay: 2_000,
      // A session of its own: a signal for the daemon's process group must not kill it.
      detached: true,
      env: { LC_ALL: 'C' },
      extendEnv: true,
    });
    return result.stdout;
  } catch (err) {
    throw wrapExecError(err, opts.context, shown, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }
}

export function wrapExecError(err: unknown, context: string, shown: string, timeoutMs: number): HostCommandError {
  const e = err as { stderr?: unknown; exitCode?: number; timedOut?: boolean; shortMessage?: string; message?: string };
  const stderr = typeof e.stderr === 'string' ? e.stderr.trim() : '';
  const why = e.timedOut ? `timed out after ${timeoutMs} ms` : stderr || e.shortMessage || e.message || String(err);
  return new HostCommandError(`${context}: ${shown} failed: ${why}`, shown, e.exitCode, stderr, err);
}

/** The message of an unknown thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs every step even when some fail; throws one Error naming each failure
 * (used by destroy and sweep, which must attempt everything).
 */
export async function attemptAll(context: string, steps: Array<[string, () => Promise<unknown>]>): Promise<void> {
  const failures: unknown[] = [];
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (err) {
      failures.push(new Error(`${name}: ${messageOf(err)}`, { cause: err }));
    }
  }
  if (failures.length > 0) {
    const msg = failures.map((f) => messageOf(f)).join('; ');
    throw new AggregateError(failures, `${context}: ${msg}`);
  }
}

/**
 * Runs steps in order, remembering an undo for each; when a step fails, runs the undos
 * of the steps done so far in reverse and rethrows the step's error (with undo failures attached).
 */
export class UndoStack {
  private readonly undos: Array<[string, () => Promise<unknown>]> = [];

  async step<T>(name: string, doIt: () => Promise<T>, undo?: (result: T) => Promise<unknown>): Promise<T> {
    const result = await doIt();
    if (undo) this.undos.push([name, () => undo(result)]);
    return result;
  }

  /** Registers an undo for something done outside step(). */
  push(name: string, undo: () => Promise<unknown>): void {
    this.undos.push([name, undo]);
  }

  async unwind(cause: unknown): Promise<never> {
    const errors: string[] = [];
    for (const [name, undo] of this.undos.reverse()) {
      try {
        await undo();
      } catch (err) {
        errors.push(`undo ${name}: ${messageOf(err)}`);
      }
    }
    if (errors.length === 0) throw cause;
    throw new Error(`${messageOf(cause)} (and while undoing: ${errors.join('; ')})`, { cause });
  }
}
