// Runs bin/warden (the command-line client) against a daemon's socket, the
// way a user would: arguments, optional stdin, exit status and both outputs.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CLIENT_BIN } from './daemon-process.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  socket: string;
  /** Folder for the prompt's history file (kept out of $HOME). */
  scratch: string;
  /** Fed to stdin, then closed; absent: empty stdin. */
  input?: string;
  /** Killed after this long (a hung client fails the test, not the run); default 20 s. */
  timeoutMs?: number;
}

/** bin/warden --socket S --history H ...args */
export function runCli(args: string[], o: CliOptions): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(CLIENT_BIN, ['--socket', o.socket, '--history', join(o.scratch, 'history'), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    p.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? 20_000);
    p.once('error', reject);
    p.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    p.stdin.on('error', () => undefined);
    p.stdin.end(o.input ?? '');
  });
}
