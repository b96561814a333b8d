// The warden command-line client. `warden [options]` opens a `warden> ` prompt;
// `warden [options] -- COMMAND ...` runs one command and exits with its status:
// 0, 1 on any error, or for run and stream the job's exit status.
import { readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { CommandRunner, formatError } from './command-runner.ts';
import { COMMANDS, CommandError, fieldFlags, findCommand } from './commands.ts';
import { splitWords } from './shell-words.ts';

export const DEFAULT_SOCKET_PATH = '/tmp/warden.sock';

const USAGE = `usage: warden [--socket PATH] [--trace] [--history FILE] [-- COMMAND [--field value ...]]

Without a command, opens a warden> prompt. With one, runs it and exits with its
status; for run and stream, the job's exit status. 'warden -- help' lists the
commands and their fields.

  --socket PATH    the daemon's unix socket (default ${DEFAULT_SOCKET_PATH})
  --trace          echo each command to stderr as '+ command ...' before running it
  --history FILE   the prompt's history (default ~/.warden-history)
`;

export interface CliOptions {
  socketPath: string;
  trace: boolean;
  historyPath: string;
  help: boolean;
  /** The one-shot command's words; undefined opens the prompt. */
  command: string[] | undefined;
}

export function parseCliArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = {
    socketPath: DEFAULT_SOCKET_PATH,
    trace: false,
    historyPath: join(homedir(), '.warden-history'),
    help: false,
    command: undefined,
  };
  const valueOf = (i: number, name: string): string => {
    const value = argv[i];
    if (value === undefined) throw new CommandError(`${name} needs a value`);
    return value;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      options.command = argv.slice(i + 1);
      break;
    } else if (arg === '--socket') {
      options.socketPath = valueOf(++i, arg);
    } else if (arg.startsWith('--socket=')) {
      options.socketPath = arg.slice('--socket='.length);
    } else if (arg === '--history') {
      options.historyPath = valueOf(++i, arg);
    } else if (arg === '--trace') {
      options.trace = true;
    } else if (arg === '--help' || arg === '-h') {
      options.help = true;
    } else if (!arg.startsWith('-')) {
      options.command = argv.slice(i); // `warden ping` works too
      break;
    } else {
      throw new CommandError(`unknown option '${arg}'`);
    }
  }
  return options;
}

async function runOnce(runner: CommandRunner, words: string[]): Promise<number> {
  try {
    const status = await runner.execute(words);
    // An exit status past 255 would wrap around, possibly to 0.
    return status === undefined ? 0 : Math.min(status, 255);
  } catch (err) {
    process.stderr.write(formatError(err));
    return 1;
  } finally {
    await runner.close();
  }
}

const PROMPT_WORDS = ['help', 'exit', 'quit'];

/** Tab completion: command names first, then the command's field flags. */
export function complete(line: string): [string[], string] {
  const words = line.trimStart().split(/\s+/);
  const current = words[words.length - 1];
  let candidates: string[] = [];
  if (words.length === 1) {
    candidates = [...COMMANDS.map((c) => c.name), ...PROMPT_WORDS];
  } else if (words.length === 2 && words[0] === 'help') {
    candidates = COMMANDS.map((c) => c.name);
  } else if (current.startsWith('-')) {
    const command = findCommand(words[0]);
    if (command) candidates = [...fieldFlags(command), '--help'];
  }
  const hits = candidates.filter((c) => c.startsWith(current));
  // One match: finish the word (a nested field's flag stays open after its dot).
  if (hits.length === 1 && !hits[0].endsWith('.')) return [[`${hits[0]} `], current];
  return [hits, current];
}

/** History on disk is oldest first, one entry a line (the original kept a JSON array). */
function loadHistory(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  let entries: string[] = text.split('\n').filter((l) => l.trim() !== '');
  if (text.trimStart().startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed)) entries = parsed.filter((e): e is string => typeof e === 'string');
    } catch {
      // not JSON after all: keep the lines
    }
  }
  return entries.reverse(); // readline wants newest first
}

function saveHistory(path: string, newestFirst: readonly string[]): void {
  try {
    writeFileSync(path, newestFirst.toReversed().map((l) => `${l}\n`).join(''), { mode: 0o600 });
  } catch (err) {
    process.stderr.write(`warning: cannot save history to ${path}: ${(err as Error).message}\n`);
  }
}

async function runPrompt(runner: CommandRunner, options: CliOptions): Promise<number> {
  const interactive = process.stdin.isTTY === true;
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: interactive,
    prompt: 'warden> ',
    completer: complete,
    history: interactive ? loadHistory(options.historyPath) : [],
    historySize: 1000,
    removeHistoryDuplicates: true,
  });
  if (interactive) rl.on('history', (history: string[]) => saveHistory(options.historyPath, history));

  let busy = false;
  let interrupted = false;
  // Ctrl-C ends the command in flight, or the prompt when there is none.
  rl.on('SIGINT', () => {
    if (!busy) {
      rl.close();
      return;
    }
    interrupted = true;
    runner.interrupt();
  });

  if (interactive) rl.prompt();
  for await (const line of rl) {
    let words: string[] = [];
    try {
      words = splitWords(line);
    } catch (err) {
      process.stderr.write(formatError(err));
    }
    if (words[0] === 'exit' || words[0] === 'quit') break;
    if (words.length > 0) {
      busy = true;
      try {
        await runner.execute(words);
      } catch (err) {
        process.stderr.write(interrupted ? 'interrupted\n' : formatError(err));
      } finally {
        busy = false;
        interrupted = false;
      }
    }
    if (interactive) rl.prompt();
  }
  rl.close();
  await runner.close();
  return 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCliArgs(argv);
  } catch (err) {
    process.stderr.write(`${formatError(err)}${USAGE}`);
    return 1;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const runner = new CommandRunner({
    socketPath: options.socketPath,
    trace: options.trace,
    stdout: process.stdout,
    stderr: process.stderr,
  });
  return options.command ? runOnce(runner, options.command) : runPrompt(runner, options);
}

if (import.meta.main) {
  // Set the status and let the process end by itself, so piped output is flushed.
  process.exitCode = await main(process.argv.slice(2));
}
