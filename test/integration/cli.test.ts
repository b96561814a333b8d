// bin/warden, the command-line client, against the real daemon (insecure backend):
// one-shot commands with their output format and exit status, and a prompt
// session driven through a pipe.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/client/commands.ts';
import type { CliResult } from '../support/cli.ts';
import { cliDaemonPerFile } from '../support/cli-daemon.ts';

const file = cliDaemonPerFile('warden-cli-');

/** A container of the test's own (destroyed after the test). */
async function box(): Promise<string> {
  return (await file.client.create({})).handle;
}

/** Run bin/warden with these arguments (after --socket), optionally feeding stdin. */
function warden(args: string[], input?: string, socket?: string): Promise<CliResult> {
  return file.cli(args, input, socket);
}

/** `a : b` lines into [key, value] pairs, in order. */
function fields(stdout: string): [string, string][] {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^(\S+) : (.*)$/.exec(l);
      if (!m) throw new Error(`not a 'field : value' line: ${JSON.stringify(l)}`);
      return [m[1], m[2]];
    });
}

describe('one-shot commands', () => {
  it('creates a container with a given or a generated handle', async () => {
    const named = await warden(['--', 'create', '--handle', 'cli-a']);
    expect(named).toEqual({ code: 0, stdout: 'handle : cli-a\n', stderr: '' });
    const generated = await warden(['--', 'create']);
    expect(generated.code).toBe(0);
    expect(generated.stderr).toBe('');
    expect(generated.stdout).toMatch(/^handle : [0-9a-v]{11}\n$/);
    const handle = generated.stdout.trim().split(' : ')[1];
    expect((await file.client.list()).handles).toEqual(expect.arrayContaining(['cli-a', handle]));
    await file.client.destroy({ handle });
  });

  it('runs a script: stdout and stderr apart, the job exit status as its own', async () => {
    const handle = await box();
    const r = await warden(['--', 'run', '--handle', handle, '--script', 'echo hi; echo err >&2; exit 3']);
    expect(r).toEqual({ code: 3, stdout: 'hi\n', stderr: 'err\n' });
    const ok = await warden(['--', 'run', '--handle', handle, '--script', 'printf "no newline"']);
    expect(ok).toEqual({ code: 0, stdout: 'no newline', stderr: '' });
  });

  it('spawns, streams and links jobs', async () => {
    const handle = await box();
    const spawned = await warden(['--', 'spawn', '--handle', handle, '--script', 'echo s1; sleep 0.1; echo s2 >&2; exit 5']);
    expect(spawned.code).toBe(0);
    const [[key, id]] = fields(spawned.stdout);
    expect(key).toBe('job_id');
    const streamed = await warden(['--', 'stream', '--handle', handle, '--job_id', id]);
    expect(streamed).toEqual({ code: 5, stdout: 's1\n', stderr: 's2\n' });

    const linkedJob = (await file.client.spawn({ handle, script: 'echo out; echo err >&2; exit 4' })).job_id;
    const linked = await warden(['--', 'link', '--handle', handle, '--job_id', String(linkedJob)]);
    // Link prints its reply (it is not run/stream): the exit status is a field, the command succeeded.
    expect(linked.code).toBe(0);
    const f = new Map(fields(linked.stdout));
    expect(f.get('exit_status')).toBe('4');
    expect(f.get('stdout')).toBe('out');
    expect(f.get('stderr')).toBe('err');
    // The nested InfoResponse, flattened with dots.
    expect(f.get('info.state')).toBe('active');
    expect(f.get('info.container_path')).toBe((await file.client.info({ handle })).container_path);

    const gone = await warden(['--', 'link', '--handle', handle, '--job_id', String(linkedJob)]);
    expect(gone).toEqual({ code: 1, stdout: '', stderr: 'error: no such job\n' });
  });

  it('lists handles as handles[i] : handle', async () => {
    await file.client.create({ handle: 'cli-b' });
    const r = await warden(['--', 'list']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = fields(r.stdout);
    lines.forEach(([key], i) => expect(key).toBe(`handles[${i}]`));
    expect(lines.map(([, v]) => v).sort()).toEqual([...((await file.client.list()).handles ?? [])].sort());
    expect(lines.map(([, v]) => v)).toContain('cli-b');
  });

  it('prints info as flattened fields, repeated ones indexed', async () => {
    const handle = await box();
    const { job_id } = await file.client.spawn({ handle, script: 'sleep 5' });
    try {
      const r = await warden(['--', 'info', '--handle', handle]);
      expect(r.code).toBe(0);
      const info = await file.client.info({ handle });
      const f = fields(r.stdout);
      const byKey = new Map(f);
      expect(byKey.get('state')).toBe('active');
      expect(byKey.get('host_ip')).toBe(info.host_ip);
      expect(byKey.get('container_ip')).toBe(info.container_ip);
      expect(byKey.get('container_path')).toBe(info.container_path);
      expect(byKey.get('job_ids[0]')).toBe(String(job_id));
      // Declaration order: state (10) before host_ip (30) before job_ids (44).
      const keys = f.map(([k]) => k);
      expect(keys.indexOf('state')).toBeLessThan(keys.indexOf('host_ip'));
      expect(keys.indexOf('host_ip')).toBeLessThan(keys.indexOf('job_ids[0]'));
    } finally {
      await file.client.stop({ handle, kill: true });
      await file.client.link({ handle, job_id }).catch(() => {});
    }
  });

  it('traces each command to stderr with --trace', async () => {
    const r = await warden(['--trace', '--', 'echo', '--message', "it's a b"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("message : it's a b\n");
    expect(r.stderr).toBe(`+ echo --message 'it'\\''s a b'\n`);
  });

  it('takes nested and repeated fields', async () => {
    // A bind mount whose source is missing: the daemon refuses, the CLI says so on stderr.
    const before = (await file.client.list()).handles ?? [];
    const missing = await warden([
      '--', 'create',
      '--bind_mounts[0].src_path', '/nonexistent/cli-src',
      '--bind_mounts[0].dst_path', '/mnt/x',
      '--bind_mounts[0].mode', 'RO',
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toBe('error: Source path for bind mount does not exist: /nonexistent/cli-src\n');
    expect((await file.client.list()).handles ?? []).toEqual(before);

    // Two of them, enums by name in any case and by number, one existing source each.
    const ok = await warden([
      '--', 'create', '--handle', 'cli-bm',
      '--bind_mounts[0].src_path', file.scratch, '--bind_mounts[0].dst_path', '/a', '--bind_mounts[0].mode', 'rw',
      '--bind_mounts[1].src_path', '/tmp', '--bind_mounts[1].dst_path', '/b', '--bind_mounts[1].mode', '0',
    ]);
    expect(ok).toEqual({ code: 0, stdout: 'handle : cli-bm\n', stderr: '' });
    await file.client.destroy({ handle: 'cli-bm' });

    // A nested message field.
    const limited = await warden(['--', 'run', '--handle', await box(), '--rlimits.nofile', '77', '--script', 'ulimit -n']);
    expect(limited).toEqual({ code: 0, stdout: '77\n', stderr: '' });
  });

  it('refuses bad fields before sending anything', async () => {
    const cases: [string[], RegExp][] = [
      [['create', '--bind_mounts[1].src_path', '/tmp'], /skips index 0/],
      [['create', '--bind_mounts[0].src_path', '/tmp'], /missing required field --bind_mounts\[0\]\.dst_path/],
      [['create', '--bind_mounts.src_path', '/tmp'], /is repeated; give an index/],
      [['create', '--bind_mounts[0].mode', 'XX', '--bind_mounts[0].src_path', '/a', '--bind_mounts[0].dst_path', '/b'], /one of RO, RW/],
      [['create', '--grace_time', 'abc'], /--grace_time is a uint32/],
      [['create', '--grace_time', '-1'], /--grace_time is a uint32/],
      [['create', '--nope', 'x'], /unknown field 'nope'/],
      [['echo'], /missing required field --message/],
      [['run', '--handle', 'h', '--script'], /--script needs a value/],
      [['bogus'], /unknown command 'bogus'/],
    ];
    const before = ((await file.client.list()).handles ?? []).sort();
    // One at a time: ten CLI processes starting at once on a busy 2-core host took over 20 s.
    const results: CliResult[] = [];
    for (const [words] of cases) results.push(await warden(['--', ...words]));
    results.forEach((r, i) => {
      const [words, message] = cases[i];
      expect(r.code, words.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(message);
    });
    // Nothing reached the daemon: no container named by a bad create exists.
    expect(((await file.client.list()).handles ?? []).sort()).toEqual(before);
  });

  it('answers daemon errors on stderr with exit status 1', async () => {
    expect(await warden(['--', 'info', '--handle', 'nope'])).toEqual({ code: 1, stdout: '', stderr: 'error: unknown handle\n' });
    await file.client.create({ handle: 'cli-stopped' });
    await file.client.stop({ handle: 'cli-stopped' });
    expect(await warden(['--', 'run', '--handle', 'cli-stopped', '--script', 'true'])).toEqual({
      code: 1,
      stdout: '',
      stderr: "error: Container state must be one of 'active', current state is 'stopped'\n",
    });
    await file.client.destroy({ handle: 'cli-stopped' });
  });

  it('says so when it cannot reach the daemon', async () => {
    const r = await warden(['--', 'ping'], undefined, join(file.scratch, 'no.sock'));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/cannot connect to warden at .*no\.sock/);
  });
});

describe('help', () => {
  it('lists every command with help', async () => {
    const r = await warden(['--', 'help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    for (const command of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^${command.name}\\s`, 'm'));
    for (const name of ['net_in', 'net_out', 'copy_in', 'copy_out', 'limit_memory', 'limit_disk', 'limit_bandwidth', 'limit_cpu']) {
      expect(r.stdout).toMatch(new RegExp(`^${name}\\s`, 'm'));
    }
    expect(r.stdout).toContain('--bind_mounts[i].src_path');
  });

  it("shows one command's fields, and the usage", async () => {
    const one = await warden(['--', 'help', 'run']);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^run\s/);
    expect(one.stdout).toMatch(/--script <string>\s+required/);
    expect(one.stdout).toMatch(/--rlimits\.<name> <uint64>/);
    expect(one.stdout).not.toMatch(/^create\s/m);
    expect((await warden(['--', 'stop', '--help'])).stdout).toMatch(/--kill \[true\|false\]\s+optional, default false/);
    const usage = await warden(['--help']);
    expect(usage.code).toBe(0);
    expect(usage.stdout).toMatch(/^usage: warden /);
    const bad = await warden(['--bogus-option']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unknown option '--bogus-option'/);
  });
});

describe('the prompt, driven through a pipe', () => {
  it('runs each line as a command, keeps going after errors, and stops at exit', async () => {
    const session = [
      'ping',
      'create --handle repl',
      'echo --message "hello   world"',
      "run --handle repl --script 'echo from-repl; echo to-err >&2; exit 9'",
      'bogus',
      'info --handle nope',
      '',
      'list',
      'stop --handle repl --kill',
      'info --handle repl',
      'exit',
      'destroy --handle repl',
    ].join('\n');
    const r = await warden([], session + '\n');
    expect(r.code).toBe(0);
    // No prompt when stdin is not a terminal; just the replies, in order.
    expect(r.stdout).not.toContain('warden>');
    const out = r.stdout.split('\n');
    expect(out[0]).toBe('handle : repl');
    expect(out[1]).toBe('message : hello   world');
    expect(out[2]).toBe('from-repl');
    expect(out.filter((l) => /^handles\[\d+\] : repl$/.test(l))).toHaveLength(1);
    expect(r.stdout).toMatch(/^state : stopped$/m);
    expect(r.stderr).toBe("to-err\nerror: unknown command 'bogus'; 'help' lists the commands\nerror: unknown handle\n");
    // `destroy` came after `exit`: it did not run.
    expect((await file.client.info({ handle: 'repl' })).state).toBe('stopped');
    await file.client.destroy({ handle: 'repl' });
  });

  it('ends at the end of input, and quit works too', async () => {
    const eof = await warden([], 'echo --message one');
    expect(eof).toEqual({ code: 0, stdout: 'message : one\n', stderr: '' });
    const quit = await warden([], 'echo --message two\nquit\necho --message three\n');
    expect(quit).toEqual({ code: 0, stdout: 'message : two\n', stderr: '' });
  });

  it('reports an unfinished quote and goes on', async () => {
    const r = await warden([], "echo --message 'open\necho --message closed\n");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('message : closed\n');
    expect(r.stderr).toMatch(/^error: unmatched ' in line\n$/);
  });

  it('traces prompt commands with --trace', async () => {
    const r = await warden(['--trace'], 'echo --message x\nlist\n');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('+ echo --message x\n+ list\n');
  });
});
