// Runs one CLI command against the daemon: parse, send, print the reply. `run`
// is Spawn + Stream, and `stream` follows an existing job, so a job's stdout and
// stderr reach ours as they are produced; both return the job's exit status.
// The connection is opened on first use and opened again after it was lost.
import { WardenClient, WardenError } from './client.ts';
import { helpText, parseCommand } from './commands.ts';
import { formatReply } from './reply-format.ts';
import { quoteWords } from './shell-words.ts';
import type { RequestMap, RequestName, SpawnRequest, StreamRequest } from '../protocol/types.ts';

export interface Output {
  write(chunk: string | Uint8Array): unknown;
}

export interface CommandRunnerOptions {
  socketPath: string;
  /** Echo each command as `+ run --handle h ...` to stderr before running it. Default false. */
  trace?: boolean;
  stdout: Output;
  stderr: Output;
}

export class CommandRunner {
  private readonly options: CommandRunnerOptions;
  private client: WardenClient | undefined;

  constructor(options: CommandRunnerOptions) {
    this.options = options;
  }

  /**
   * Run one command given as words (`['info', '--handle', 'h']`). Resolves with
   * the job's exit status for run and stream, undefined otherwise; rejects with
   * CommandError, WardenError or WardenConnectionError.
   */
  async execute(words: readonly string[]): Promise<number | undefined> {
    const { stdout, stderr, trace } = this.options;
    if (trace) stderr.write(`+ ${quoteWords(words)}\n`);
    const parsed = parseCommand(words);
    if (parsed.kind === 'help') {
      stdout.write(helpText(parsed.command));
      return undefined;
    }
    const { command, body } = parsed;
    const client = await this.connection();
    if (command.type === 'Run') {
      const spawn = body as unknown as SpawnRequest;
      const { job_id } = await client.spawn(spawn);
      return this.followJob(client, { handle: spawn.handle, job_id });
    }
    if (command.type === 'Stream') return this.followJob(client, body as unknown as StreamRequest);
    const reply = await client.call(command.type, body as unknown as RequestMap[RequestName]);
    stdout.write(formatReply(`${command.type}Response`, reply));
    return undefined;
  }

  /** Drop the connection, which ends the command in flight with an error. */
  interrupt(): void {
    void this.client?.close();
  }

  async close(): Promise<void> {
    await this.client?.close();
    this.client = undefined;
  }

  private async connection(): Promise<WardenClient> {
    if (!this.client || this.client.closed) this.client = await WardenClient.connect(this.options.socketPath);
    return this.client;
  }

  private async followJob(client: WardenClient, req: StreamRequest): Promise<number> {
    const { stdout, stderr } = this.options;
    let status = 0;
    for await (const frame of client.stream(req)) {
      if (frame.data !== undefined) {
        if (frame.name === 'stdout') stdout.write(frame.data);
        else if (frame.name === 'stderr') stderr.write(frame.data);
      }
      if (frame.exit_status !== undefined) status = frame.exit_status;
    }
    return status;
  }
}

/** One line (or two, with the error's data) for stderr. */
export function formatError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  let text = `error: ${message}\n`;
  if (err instanceof WardenError && err.data) text += `data: ${err.data}\n`;
  return text;
}
