import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { complete, parseCliArgs } from '../../src/client/cli.ts';
import { CommandRunner, formatError } from '../../src/client/command-runner.ts';
import { COMMANDS, CommandError, helpText, parseCommand } from '../../src/client/commands.ts';
import { FakeWardenServer, type FakeHandler } from '../support/fake-warden-server.ts';
import { formatReply } from '../../src/client/reply-format.ts';
import { quoteWords, splitWords } from '../../src/client/shell-words.ts';
import { WardenError } from '../../src/client/client.ts';

const WARDEN_BIN = join(import.meta.dirname, '../../bin/warden');

function body(words: string[]): Record<string, unknown> {
  const parsed = parseCommand(words);
  if (parsed.kind !== 'request') throw new Error(`expected a request, got ${parsed.kind}`);
  return parsed.body;
}

function parseError(words: string[]): string {
  try {
    parseCommand(words);
  } catch (err) {
    expect(err).toBeInstanceOf(CommandError);
    return (err as Error).message;
  }
  throw new Error('expected a CommandError');
}

describe('parseCommand', () => {
  it('maps snake_case commands to requests and fields to the body', () => {
    const parsed = parseCommand(['run', '--handle', 'h', '--script', 'echo hi']);
    expect(parsed).toMatchObject({ kind: 'request', command: { name: 'run', type: 'Run' } });
    expect(body(['run', '--handle', 'h', '--script', 'echo hi'])).toEqual({ handle: 'h', script: 'echo hi' });
    expect(parseCommand(['net_in', '--handle', 'h'])).toMatchObject({ command: { type: 'NetIn' } });
    expect(parseCommand(['limit_bandwidth', '--handle', 'h', '--rate', '1', '--burst', '2'])).toMatchObject({
      command: { type: 'LimitBandwidth' },
      body: { handle: 'h', rate: 1, burst: 2 },
    });
    expect(body(['ping'])).toEqual({});
  });

  it('has a command for every request', () => {
    expect(COMMANDS.map((c) => c.name)).toEqual([
      'create', 'stop', 'destroy', 'info', 'spawn', 'link', 'run', 'stream', 'net_in', 'net_out',
      'copy_in', 'copy_out', 'limit_memory', 'limit_disk', 'limit_bandwidth', 'limit_cpu', 'ping', 'list', 'echo',
    ]);
  });

  it('sets nested and repeated fields, and enums by name', () => {
    expect(
      body([
        'create',
        '--bind_mounts[0].src_path', '/a', '--bind_mounts[0].dst_path', '/b', '--bind_mounts[0].mode', 'RW',
        '--bind_mounts[1].src_path', '/c', '--bind_mounts[1].dst_path', '/d', '--bind_mounts[1].mode', 'ro',
        '--grace_time', '30',
      ]),
    ).toEqual({
      bind_mounts: [
        { src_path: '/a', dst_path: '/b', mode: 1 },
        { src_path: '/c', dst_path: '/d', mode: 0 },
      ],
      grace_time: 30,
    });
    expect(body(['spawn', '--handle', 'h', '--script', 's', '--rlimits.nofile', '1024', '--rlimits.as', '4294967296']))
      .toEqual({ handle: 'h', script: 's', rlimits: { nofile: 1024, as: 4294967296 } });
    expect(body(['net_out', '--handle', 'h', '--protocol', 'UDP', '--icmp_type', '-1'])).toEqual({
      handle: 'h',
      protocol: 1,
      icmp_type: -1,
    });
  });

  it('takes bools bare or with true/false, and --field=value', () => {
    expect(body(['stop', '--handle', 'h', '--kill'])).toEqual({ handle: 'h', kill: true });
    expect(body(['stop', '--kill', '--handle', 'h'])).toEqual({ handle: 'h', kill: true });
    expect(body(['stop', '--handle', 'h', '--kill', 'false', '--background', 'true'])).toEqual({
      handle: 'h',
      kill: false,
      background: true,
    });
    expect(body(['stop', '--handle=h', '--kill=false'])).toEqual({ handle: 'h', kill: false });
  });

  it('names the bad field in its errors', () => {
    expect(parseError(['run', '--handle', 'h', '--scrpit', 'x'])).toBe("run: unknown field 'scrpit' in --scrpit");
    expect(parseError(['spawn', '--handle', 'h', '--script', 's', '--rlimits.files', '1'])).toBe(
      "spawn: unknown field 'files' of rlimits in --rlimits.files",
    );
    expect(parseError(['run', '--handle'])).toBe('run: --handle needs a value');
    expect(parseError(['run', '--handle', 'h'])).toBe('run: missing required field --script');
    expect(parseError(['net_out', '--handle', 'h', '--protocol', 'SCTP'])).toBe(
      "net_out: --protocol is one of TCP, UDP, ICMP, ALL; got 'SCTP'",
    );
    expect(parseError(['link', '--handle', 'h', '--job_id', 'x'])).toMatch(/^link: --job_id is a uint32 .*got 'x'$/);
    expect(parseError(['link', '--handle', 'h', '--job_id', '-1'])).toMatch(/--job_id is a uint32/);
    expect(parseError(['stop', '--handle', 'h', '--kill', 'yes'])).toMatch(/expected a --field, got 'yes'/);
    expect(parseError(['create', '--bind_mounts.src_path', '/a'])).toMatch(/'bind_mounts' is repeated/);
    expect(parseError(['create', '--bind_mounts[1].src_path', '/a'])).toMatch(/index 1 of 'bind_mounts'.*skips index 0/);
    expect(parseError(['create', '--handle[0]', 'x'])).toMatch(/'handle' in --handle\[0\] is not repeated/);
    expect(parseError(['spawn', '--rlimits', '3'])).toMatch(/'rlimits' is a message; set its fields, as in --rlimits.as/);
    expect(parseError(['run', '--handle.x', '3'])).toMatch(/'handle' in --handle.x is a string and has no fields/);
    expect(parseError(['create', '--bind_mounts[0].src_path', '/a'])).toBe(
      'create: missing required field --bind_mounts[0].dst_path',
    );
    expect(parseError(['frobnicate'])).toBe("unknown command 'frobnicate'; 'help' lists the commands");
    expect(parseError(['run', 'handle', 'h'])).toMatch(/expected a --field, got 'handle'/);
  });

  it('recognises help in its forms', () => {
    expect(parseCommand(['help'])).toEqual({ kind: 'help', command: undefined });
    expect(parseCommand(['help', 'run'])).toMatchObject({ kind: 'help', command: { name: 'run' } });
    expect(parseCommand(['run', '--help'])).toMatchObject({ kind: 'help', command: { name: 'run' } });
  });
});

describe('helpText', () => {
  it('lists every command with its fields', () => {
    const text = helpText();
    for (const c of COMMANDS) expect(text).toMatch(new RegExp(`^${c.name} +${c.description.slice(0, 10)}`, 'm'));
    expect(text).toMatch(/--bind_mounts\[i\]\.mode RO\|RW +required/);
    expect(text).toMatch(/--kill \[true\|false\] +optional, default false/);
    expect(text).toMatch(/--rlimits\.<name> <uint64> +optional; name: as, core,/);
    expect(text).toMatch(/--protocol TCP\|UDP\|ICMP\|ALL +optional/);
  });

  it('describes one command', () => {
    const text = helpText(COMMANDS.find((c) => c.name === 'copy_out'));
    expect(text).toMatch(/^copy_out /);
    expect(text).toMatch(/--owner <string> +optional/);
    expect(text).not.toMatch(/^create/m);
  });
});

describe('formatReply', () => {
  it('prints one `field : value` line per set field, nested flattened, repeated indexed', () => {
    expect(
      formatReply('InfoResponse', {
        state: 'active',
        events: ['out of memory'],
        memory_stat: { rss: 123, cache: 4 },
        job_ids: [1, 2],
      }),
    ).toBe(
      'state : active\nevents[0] : out of memory\nmemory_stat.cache : 4\nmemory_stat.rss : 123\njob_ids[0] : 1\njob_ids[1] : 2\n',
    );
    expect(formatReply('ListResponse', { handles: ['abc', 'def'] })).toBe('handles[0] : abc\nhandles[1] : def\n');
    expect(formatReply('PingResponse', {})).toBe('');
  });

  it('prints bytes as text, enums by name, and messages in repeated fields', () => {
    expect(formatReply('LinkResponse', { exit_status: 0, stdout: Buffer.from('hi'), info: { state: 'stopped' } })).toBe(
      'exit_status : 0\nstdout : hi\ninfo.state : stopped\n',
    );
    expect(
      formatReply('CreateRequest', { bind_mounts: [{ src_path: '/a', dst_path: '/b', mode: 1 }], handle: 'h' }),
    ).toBe('bind_mounts[0].src_path : /a\nbind_mounts[0].dst_path : /b\nbind_mounts[0].mode : RW\nhandle : h\n');
    expect(formatReply('StopRequest', { handle: 'h', kill: false })).toBe('handle : h\nkill : false\n');
  });
});

describe('shell words', () => {
  it('splits like a shell', () => {
    expect(splitWords(`run --handle h --script 'echo "hi there"'`)).toEqual([
      'run', '--handle', 'h', '--script', 'echo "hi there"',
    ]);
    expect(splitWords(`a "b \\"c\\" \\n" d\\ e '' x`)).toEqual(['a', 'b "c" \\n', 'd e', '', 'x']);
    expect(splitWords('   ')).toEqual([]);
    expect(() => splitWords(`echo 'open`)).toThrow(/unmatched '/);
  });

  it('quotes words so they split back the same', () => {
    const words = ['run', '--script', "echo 'hi' $HOME", '', '--bind_mounts[0].src_path', '/x'];
    expect(quoteWords(words)).toBe(`run --script 'echo '\\''hi'\\'' $HOME' '' --bind_mounts[0].src_path /x`);
    expect(splitWords(quoteWords(words))).toEqual(words);
  });
});

describe('parseCliArgs', () => {
  it('reads options and the one-shot command', () => {
    expect(parseCliArgs([])).toMatchObject({ socketPath: '/tmp/warden.sock', trace: false, command: undefined });
    expect(parseCliArgs(['--socket', '/s', '--trace', '--', 'run', '--handle', 'h'])).toMatchObject({
      socketPath: '/s',
      trace: true,
      command: ['run', '--handle', 'h'],
    });
    expect(parseCliArgs(['--socket=/s', 'ping'])).toMatchObject({ socketPath: '/s', command: ['ping'] });
    expect(() => parseCliArgs(['--socket'])).toThrow('--socket needs a value');
    expect(() => parseCliArgs(['--bogus'])).toThrow("unknown option '--bogus'");
  });
});

describe('complete', () => {
  it('completes command names, then field flags', () => {
    expect(complete('li')).toEqual([['link', 'limit_memory', 'limit_disk', 'limit_bandwidth', 'limit_cpu', 'list'], 'li']);
    expect(complete('pi')).toEqual([['ping '], 'pi']);
    expect(complete('run --h')).toEqual([['--handle', '--help'], '--h']);
    expect(complete('run --handle h --sc')).toEqual([['--script '], '--sc']);
    expect(complete('spawn --rl')).toEqual([['--rlimits.'], '--rl']);
    expect(complete('create --bind')).toEqual([['--bind_mounts[0].'], '--bind']);
    expect(complete('help net_')).toEqual([['net_in', 'net_out'], 'net_']);
  });
});

describe('formatError', () => {
  it('gives the message, and the data of a WardenError', () => {
    expect(formatError(new CommandError('run: bad'))).toBe('error: run: bad\n');
    expect(formatError(new WardenError({ message: 'no such job', data: '7' }))).toBe('error: no such job\ndata: 7\n');
  });
});

// ---- against a fake server --------------------------------------------------

let server: FakeWardenServer | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/** Spawn answers job 7; streaming it writes to stdout and stderr and exits 3. */
const jobs: FakeHandler = (req, conn) => {
  switch (req.type) {
    case 'Spawn':
      conn.reply('Spawn', { job_id: 7 });
      return;
    case 'Stream':
      if (req.body.job_id !== 7) {
        conn.error('no such job');
        return;
      }
      conn.reply('Stream', { name: 'stdout', data: 'hi\n' });
      conn.reply('Stream', { name: 'stderr', data: 'oops\n' });
      conn.reply('Stream', { name: 'stdout', data: 'bye\n' });
      conn.reply('Stream', { exit_status: 3, info: { state: 'active' } });
      return;
    case 'Info':
      conn.reply('Info', { state: 'active', memory_stat: { rss: 123 }, job_ids: [7] });
      return;
    case 'Link':
      conn.reply('Link', { exit_status: 0, stdout: 'out\n', stderr: '', info: { state: 'active' } });
      return;
    case 'Echo':
      conn.reply('Echo', { message: req.body.message as string });
      return;
    default:
      conn.error(`unknown handle`, 'h');
  }
};

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runWarden(args: string[], stdin = ''): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(WARDEN_BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('bin/warden', () => {
  it('runs a job as Spawn + Stream, separating its output and exiting with its status', async () => {
    server = await FakeWardenServer.start(jobs);
    const r = await runWarden(['--socket', server.socketPath, '--', 'run', '--handle', 'h', '--script', 'echo hi']);
    expect(r).toEqual({ status: 3, stdout: 'hi\nbye\n', stderr: 'oops\n' });
    expect(server.requests).toEqual([
      { type: 'Spawn', body: { handle: 'h', script: 'echo hi' } },
      { type: 'Stream', body: { handle: 'h', job_id: 7 } },
    ]);
  });

  it('streams an existing job', async () => {
    server = await FakeWardenServer.start(jobs);
    const r = await runWarden(['--socket', server.socketPath, '--', 'stream', '--handle', 'h', '--job_id', '7']);
    expect(r).toEqual({ status: 3, stdout: 'hi\nbye\n', stderr: 'oops\n' });
  });

  it('echoes the command to stderr with --trace', async () => {
    server = await FakeWardenServer.start(jobs);
    const r = await runWarden(['--socket', server.socketPath, '--trace', '--', 'run', '--handle', 'h', '--script', 'echo hi']);
    expect(r.stderr).toBe("+ run --handle h --script 'echo hi'\noops\n");
  });

  it('prints replies as field : value lines', async () => {
    server = await FakeWardenServer.start(jobs);
    const info = await runWarden(['--socket', server.socketPath, '--', 'info', '--handle', 'h']);
    expect(info).toEqual({ status: 0, stdout: 'state : active\nmemory_stat.rss : 123\njob_ids[0] : 7\n', stderr: '' });
    const link = await runWarden(['--socket', server.socketPath, '--', 'link', '--handle', 'h', '--job_id', '7']);
    expect(link.stdout).toBe('exit_status : 0\nstdout : out\n\nstderr : \ninfo.state : active\n');
  });

  it('reports errors on stderr with exit status 1', async () => {
    server = await FakeWardenServer.start(jobs);
    const denied = await runWarden(['--socket', server.socketPath, '--', 'destroy', '--handle', 'h']);
    expect(denied).toEqual({ status: 1, stdout: '', stderr: 'error: unknown handle\ndata: h\n' });
    const noJob = await runWarden(['--socket', server.socketPath, '--', 'stream', '--handle', 'h', '--job_id', '8']);
    expect(noJob).toEqual({ status: 1, stdout: '', stderr: 'error: no such job\n' });
    const badField = await runWarden(['--socket', server.socketPath, '--', 'run', '--handle', 'h', '--scrpit', 'x']);
    expect(badField).toEqual({ status: 1, stdout: '', stderr: "error: run: unknown field 'scrpit' in --scrpit\n" });
    const noServer = await runWarden(['--socket', join(server.socketPath, 'nope'), '--', 'ping']);
    expect(noServer.status).toBe(1);
    expect(noServer.stderr).toMatch(/^error: cannot connect to warden at .*nope/);
  });

  it('reads commands at the prompt from piped input, carrying on after errors', async () => {
    server = await FakeWardenServer.start(jobs);
    const r = await runWarden(
      ['--socket', server.socketPath],
      `echo --message 'hello there'\nbogus\n\nrun --handle h --script x\necho --message last\nexit\necho --message never\n`,
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('message : hello there\nhi\nbye\nmessage : last\n');
    expect(r.stderr).toBe("error: unknown command 'bogus'; 'help' lists the commands\noops\n");
  });

  it('prints help without a server', async () => {
    const r = await runWarden(['--socket', '/nonexistent.sock', '--', 'help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Commands:/);
    expect(r.stdout).toMatch(/^limit_bandwidth /m);
  });
});

describe('CommandRunner', () => {
  it('reconnects after the connection was lost', async () => {
    let drop = true;
    server = await FakeWardenServer.start((req, conn) => {
      if (drop) {
        drop = false;
        conn.destroy();
      } else {
        conn.reply('Echo', { message: req.body.message as string });
      }
    });
    let out = '';
    const runner = new CommandRunner({
      socketPath: server.socketPath,
      stdout: { write: (c) => (out += String(c)) },
      stderr: { write: () => true },
    });
    await expect(runner.execute(['echo', '--message', 'a'])).rejects.toThrow(/closed while waiting for the Echo reply/);
    await runner.execute(['echo', '--message', 'b']);
    await runner.close();
    expect(out).toBe('message : b\n');
  });
});
