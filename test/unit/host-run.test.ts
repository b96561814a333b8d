// The one host-command runner and its spawner process: output, input, failures
// that say what was being done, time limits, commands that cannot start, many at
// once, and a spawner that dies between two commands.
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { HostCommandError, runHost } from '../../src/host/run.ts';

describe('runHost', () => {
  it('returns stdout, and stderr trimmed, of a command that succeeds', async () => {
    const r = await runHost('/bin/sh', ['-c', 'echo out; echo err >&2'], { context: 'testing' });
    expect(r).toEqual({ stdout: 'out\n', stderr: 'err', exitCode: 0, signal: null });
  });

  it('feeds text and bytes to stdin', async () => {
    expect((await runHost('cat', [], { context: 't', input: 'hello\n' })).stdout).toBe('hello\n');
    const bytes = new Uint8Array([0, 255, 10, 128]);
    const r = await runHost('od', ['-An', '-tu1'], { context: 't', input: bytes });
    expect(r.stdout.trim().split(/\s+/)).toEqual(['0', '255', '10', '128']);
  });

  it('passes arguments as they are, never through a shell', async () => {
    const r = await runHost('printf', ['%s|', '$(id)', 'a b', '--x'], { context: 't' });
    expect(r.stdout).toBe('$(id)|a b|--x|');
  });

  it('throws one HostCommandError naming the context, the command and its stderr', async () => {
    const err = await runHost('/bin/sh', ['-c', 'echo broken >&2; exit 3'], { context: 'net_in' }).catch((e) => e);
    expect(err).toBeInstanceOf(HostCommandError);
    expect(err.code).toBe('host_command');
    expect(err.message).toBe('net_in: /bin/sh -c echo broken >&2; exit 3 failed: broken');
    expect(err.exitCode).toBe(3);
    expect(err.stderr).toBe('broken');
  });

  it('returns a failure as a result when asked to', async () => {
    const r = await runHost('/bin/sh', ['-c', 'exit 4'], { context: 't', allowFailure: true });
    expect(r.exitCode).toBe(4);
  });

  it('says the exit status when a failing command printed nothing', async () => {
    await expect(runHost('false', [], { context: 'ctx' })).rejects.toThrow('ctx: false failed: exit status 1');
  });

  it('kills a command that outlives its time', async () => {
    const err = await runHost('sleep', ['30'], { context: 'ctx', timeoutMs: 200 }).catch((e) => e);
    expect(err).toBeInstanceOf(HostCommandError);
    expect(err.message).toBe('ctx: sleep 30 failed: timed out after 200 ms');
  });

  it('reports a command that cannot start', async () => {
    await expect(runHost('/nonexistent/tool', ['x'], { context: 'ctx' })).rejects.toThrow(/^ctx: \/nonexistent\/tool x failed: .*ENOENT/);
  });

  it('runs in a session of its own, in the given folder, with LC_ALL=C and extra variables', async () => {
    const r = await runHost('/bin/sh', ['-c', 'echo "$LC_ALL $EXTRA $(pwd) $$"; cat /proc/self/stat'], {
      context: 't',
      cwd: '/tmp',
      env: { EXTRA: 'yes' },
    });
    const [first, stat] = r.stdout.split('\n');
    const [lc, extra, cwd, shell] = first!.split(' ');
    expect([lc, extra, cwd]).toEqual(['C', 'yes', '/tmp']);
    // Fields after the command name: state ppid pgrp session; the shell leads the session.
    const fields = stat!.slice(stat!.lastIndexOf(')') + 2).split(' ');
    expect(Number(fields[3])).toBe(Number(shell));
    expect(Number(fields[3])).not.toBe(Number((await readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ')[3]));
  });

  it('runs many commands at once and matches each answer to its command', async () => {
    const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => runHost('echo', [String(i)], { context: 't' })));
    expect(rs.map((r) => r.stdout)).toEqual(Array.from({ length: 200 }, (_, i) => `${i}\n`));
  });

  it('starts a new spawner when the old one died', async () => {
    await runHost('true', [], { context: 't' });
    // The spawner is this process's child running spawner-process.js: kill it.
    const r = await runHost('pgrep', ['-P', String(process.pid), '-f', 'spawner-process.js'], { context: 't' });
    const pids = r.stdout.trim().split('\n').map(Number);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    // The next command may still find the dying one; the one after gets a new spawner.
    await runHost('true', [], { context: 't' }).catch(() => undefined);
    expect((await runHost('echo', ['again'], { context: 't' })).stdout).toBe('again\n');
  });
});
