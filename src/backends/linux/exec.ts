// Host commands of the Linux backend, through the one runner (src/host/run.ts):
// argument arrays only, bounded in time, and failures wrapped once with what was
// being done ("create abc: runc run ... failed: <stderr>").
import { HostCommandError, runHost } from '../../host/run.ts';
import { WardenError, codeOf, describeError } from '../../model/errors.ts';

export { HostCommandError };

export interface RunOptions {
  /** What the caller was doing; the error message starts with it. */
  context: string;
  /** Text or bytes fed to the command's stdin. */
  input?: string | Uint8Array;
  /** Kill the command after this long; default 60 s. */
  timeoutMs?: number;
  cwd?: string;
}

/** Runs file with args; resolves to its stdout (without its final newline), rejects with a HostCommandError. */
export async function run(file: string, args: readonly string[], opts: RunOptions): Promise<string> {
  const r = await runHost(file, args, opts);
  return r.stdout.endsWith('\n') ? r.stdout.slice(0, -1) : r.stdout;
}

/**
 * Runs every step even when some fail; throws one WardenError naming each failure
 * (used by destroy and sweep, which must attempt everything).
 */
export async function attemptAll(context: string, steps: Array<[string, () => Promise<unknown>]>): Promise<void> {
  const failures: string[] = [];
  let code: ReturnType<typeof codeOf> | undefined;
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (err) {
      code ??= codeOf(err);
      failures.push(`${name}: ${describeError(err)}`);
    }
  }
  if (failures.length > 0) throw new WardenError(`${context}: ${failures.join('; ')}`, { code });
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
        errors.push(`undo ${name}: ${describeError(err)}`);
      }
    }
    if (errors.length === 0) throw cause;
    throw new WardenError(`${describeError(cause)} (and while undoing: ${errors.join('; ')})`, { code: codeOf(cause) });
  }
}
