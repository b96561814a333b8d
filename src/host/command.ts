// Host commands, run from worker threads only. Every command starts in a
// session of its own (detached): supervisors signal the daemon's whole process
// group, and such a signal must not kill a half-done host operation.
import { execa, type Options } from 'execa';

export class CommandError extends Error {
  override name = 'CommandError';
  readonly exitCode: number | undefined;
  readonly stderr: string;
  constructor(message: string, exitCode: number | undefined, stderr: string) {
    super(message);
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Run a command; throws CommandError naming the command and its stderr when it fails. */
export async function run(file: string, args: readonly string[], opts: Options = {}): Promise<CommandResult> {
  const r = await execa(file, args, { detached: true, reject: false, stdin: 'ignore', ...opts, encoding: 'utf8' });
  const stderr = String(r.stderr ?? '').trim();
  if (r.failed) {
    const what = [file, ...args].join(' ');
    const why = stderr || r.shortMessage || `exit status ${r.exitCode}`;
    throw new CommandError(`${what}: ${why}`, r.exitCode, stderr);
  }
  return { stdout: String(r.stdout ?? ''), stderr, exitCode: r.exitCode ?? 0 };
}
