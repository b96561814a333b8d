// Host commands for the network module, through the one runner (src/host/run.ts):
// argument arrays only, bounded in time (a wedged tool must delay one request,
// never hang a worker), and failures wrapped once with what was being done:
// `net_in: iptables -t nat -A ... failed: <stderr>`.
import { HostCommandError, runHost } from '../../../host/run.ts';

export { HostCommandError };

export interface RunOptions {
  /** What the caller was doing, put in front of the error message (e.g. "net_in"). */
  context: string;
  /** Text fed to the command's stdin (iptables-restore, ip -batch, tc -batch). */
  input?: string;
  /** Kill the command after this long; default 30 s. */
  timeoutMs?: number;
}

/** Runs file with args; resolves to its stdout, rejects with a HostCommandError. */
export async function run(file: string, args: readonly string[], opts: RunOptions): Promise<string> {
  return (await runHost(file, args, { timeoutMs: 30_000, ...opts })).stdout;
}
