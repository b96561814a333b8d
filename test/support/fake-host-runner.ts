// A fake host: stands in for the spawner behind src/host/run.ts (setHostRunner),
// records every command the code under test runs (argv, stdin, options) and
// answers each from rules the test gives: exit status, stdout, stderr, or a
// side effect (a runc create writing its pid file). Commands no rule matches
// succeed with no output. runHost's own logic (HostCommandError, allowFailure)
// runs as in the daemon. Test-only: never imported by src/.
import { afterEach, beforeEach } from 'vitest';
import { setHostRunner, type HostSpawn } from '../../src/host/run.ts';
import type { SpawnRequest } from '../../src/host/spawner.ts';

export interface HostCall {
  file: string;
  args: string[];
  /** stdin as text (iptables-restore, ip -batch, tc -batch input); undefined: /dev/null. */
  input?: string;
  cwd?: string;
  stdout: 'pipe' | 'ignore';
  timeoutMs: number;
  /** The cgroup.procs file the command was to start from (SpawnOrder.joinCgroup). */
  joinCgroup?: string;
}

export interface FakeReply {
  stdout?: string;
  stderr?: string;
  /** Default 0. */
  exitCode?: number;
  /** The command could not start (ENOENT...). */
  spawnError?: string;
  timedOut?: boolean;
}

type Matcher = string | RegExp | ((c: HostCall) => boolean);
type Reply = FakeReply | ((c: HostCall) => FakeReply | Promise<FakeReply>);

interface Rule {
  match: (c: HostCall) => boolean;
  reply: Reply;
  times: number;
}

/** `file arg1 arg2 ...`, as the command's error messages show it. */
export function commandLine(c: HostCall): string {
  return [c.file, ...c.args].join(' ');
}

export class FakeHostRunner {
  readonly calls: HostCall[] = [];
  private rules: Rule[] = [];

  /**
   * Commands matching `match` (a prefix of the command line, a RegExp on it, or a
   * predicate) get `reply`; the latest rule given wins. `times` limits how often.
   */
  on(match: Matcher, reply: Reply, opts: { times?: number } = {}): this {
    const test =
      typeof match === 'string'
        ? (c: HostCall) => commandLine(c).startsWith(match)
        : match instanceof RegExp
          ? (c: HostCall) => match.test(commandLine(c))
          : match;
    this.rules.unshift({ match: test, reply, times: opts.times ?? Number.POSITIVE_INFINITY });
    return this;
  }

  /** Command lines run so far, in order. */
  lines(): string[] {
    return this.calls.map(commandLine);
  }

  /** Calls whose command line starts with prefix. */
  matching(prefix: string): HostCall[] {
    return this.calls.filter((c) => commandLine(c).startsWith(prefix));
  }

  /** Forgets every rule and call (a fresh fake for the next test). */
  reset(): void {
    this.calls.length = 0;
    this.rules = [];
  }

  /** Routes this thread's host commands here until the returned function is called. */
  install(): () => void {
    setHostRunner(this.spawn);
    return () => setHostRunner(undefined);
  }

  private readonly spawn: HostSpawn = async (req: SpawnRequest) => {
    const call: HostCall = {
      file: req.file,
      args: [...req.args],
      ...(req.inputBase64 !== undefined ? { input: Buffer.from(req.inputBase64, 'base64').toString('utf8') } : {}),
      ...(req.cwd !== undefined ? { cwd: req.cwd } : {}),
      stdout: req.stdout,
      timeoutMs: req.timeoutMs,
      ...(req.joinCgroup !== undefined ? { joinCgroup: req.joinCgroup } : {}),
    };
    this.calls.push(call);
    // Commands end on a later turn, as real ones do.
    await Promise.resolve();
    const rule = this.rules.find((r) => r.times > 0 && r.match(call));
    let reply: FakeReply = {};
    if (rule) {
      rule.times--;
      reply = typeof rule.reply === 'function' ? await rule.reply(call) : rule.reply;
    }
    if (reply.spawnError !== undefined) return { spawnError: reply.spawnError };
    return {
      pid: 4242,
      exitCode: reply.timedOut ? null : (reply.exitCode ?? 0),
      signal: reply.timedOut ? 'SIGKILL' : null,
      stdout: req.stdout === 'ignore' ? '' : (reply.stdout ?? ''),
      stderr: req.stderr === 'ignore' ? '' : (reply.stderr ?? ''),
      ...(reply.timedOut ? { timedOut: true } : {}),
    };
  };
}

/**
 * A fake host for every test of the enclosing describe (or file): fresh rules and
 * calls before each test, the real runner back after it.
 */
export function useFakeHostRunner(): FakeHostRunner {
  const host = new FakeHostRunner();
  let uninstall: (() => void) | undefined;
  beforeEach(() => {
    host.reset();
    uninstall = host.install();
  });
  afterEach(() => uninstall?.());
  return host;
}
