// The one host-command runner and its spawner process: output, input, failures
// that say what was being done, time limits, commands that cannot start, many at
// once, and a spawner that dies between two commands.
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostCommandError, JOIN_CGROUP_FAILED, runHost, runPipeline } from '../../src/host/run.ts';

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

  it('starts a command that must start from a cgroup itself when the spawner is in it, else behind a shell that moves there first', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'join-cgroup-'));
    try {
      await runHost('true', [], { context: 't' });
      const spawners = (await runHost('pgrep', ['-P', String(process.pid), '-f', 'spawner-process.js'], { context: 't' })).stdout;
      // Stand-ins for cgroup.procs files: one lists the spawner, one does not. The
      // shell that moves a command writes its pid into the file, as into cgroup.procs.
      const member = join(dir, 'member.procs');
      const other = join(dir, 'other.procs');
      await writeFile(member, `1\n${spawners}`);
      await writeFile(other, '1\n2\n');
      const pidOf = ['-c', 'echo $$', 'sh'];
      const direct = await runHost('/bin/sh', pidOf, { context: 't', joinCgroup: member });
      expect(await readFile(member, 'utf8')).toBe(`1\n${spawners}`);
      const moved = await runHost('/bin/sh', pidOf, { context: 't', joinCgroup: other });
      // The mover wrote its pid, then exec'd the command: the same process.
      expect(await readFile(other, 'utf8')).toBe(moved.stdout);
      expect(direct.stdout).toMatch(/^\d+\n$/);
      // Where it cannot move: the command does not run, and the exit status says why.
      const err = await runHost('/bin/sh', ['-c', 'echo ran'], { context: 't', joinCgroup: join(dir, 'missing', 'cgroup.procs') }).catch((e: HostCommandError) => e);
      expect(err).toBeInstanceOf(HostCommandError);
      expect((err as HostCommandError).exitCode).toBe(JOIN_CGROUP_FAILED);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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

describe('runPipeline', () => {
  it('carries every byte from source to sink, without them passing through this thread', async () => {
    const r = await runPipeline({ file: 'seq', args: ['1', '1000000'] }, { file: 'sha256sum', args: [] }, { context: 't' });
    expect(r.source.failure).toBeUndefined();
    expect(r.sink.failure).toBeUndefined();
    // 6.9 MB: what the sink read hashes to what seq writes.
    let text = '';
    for (let i = 1; i <= 1_000_000; i++) text += `${i}\n`;
    expect(r.sink.stdout).toBe(`${createHash('sha256').update(text).digest('hex')}  -\n`);
    expect(r.stoppedAfterGrace).toBe(false);
  });

  it('reports each side on its own: exit status, stderr, a command that cannot start', async () => {
    const r = await runPipeline(
      { file: '/bin/sh', args: ['-c', 'echo data; echo from-source >&2; exit 3'] },
      { file: '/bin/sh', args: ['-c', 'cat; echo from-sink >&2'] },
      { context: 't' },
    );
    expect(r.source).toMatchObject({ exitCode: 3, stderr: 'from-source', failure: 'from-source' });
    expect(r.sink).toMatchObject({ exitCode: 0, stdout: 'data\n', stderr: 'from-sink' });
    expect(r.sink.failure).toBeUndefined();

    // Its grace lets the source end on its own (with none it is killed as soon as the sink is known gone).
    const missing = await runPipeline({ file: 'echo', args: ['x'] }, { file: '/nonexistent/sink', args: [] }, { context: 't', sourceGraceMs: 5_000 });
    expect(missing.sink.failure).toMatch(/ENOENT/);
    expect(missing.source.failure).toBeUndefined();
    const noSource = await runPipeline({ file: '/nonexistent/source', args: [] }, { file: 'cat', args: [] }, { context: 't' });
    expect(noSource.source.failure).toMatch(/ENOENT/);
    expect(noSource.sink).toMatchObject({ exitCode: 0, stdout: '' });
  });

  it('drains a source the sink stopped reading, and kills it once its grace is over', async () => {
    const tag = `warden-pipeline-grace-${process.pid}`;
    const r = await runPipeline({ file: 'yes', args: [tag] }, { file: 'head', args: ['-c', '10'] }, { context: 't', sourceGraceMs: 300 });
    expect(r.sink).toMatchObject({ exitCode: 0, stdout: `${tag}\n`.repeat(2).slice(0, 10) });
    expect(r.stoppedAfterGrace).toBe(true);
    expect(r.source.signal).toBe('SIGKILL');
    // A source that ends within its grace is not stopped.
    const quick = await runPipeline({ file: '/bin/sh', args: ['-c', 'echo a; sleep 0.2; echo b'] }, { file: 'head', args: ['-n', '1'] }, { context: 't', sourceGraceMs: 5_000 });
    expect(quick.stoppedAfterGrace).toBe(false);
    expect(quick.source.failure).toBeUndefined();
  });

  it('kills both at the timeout', async () => {
    const r = await runPipeline({ file: 'sleep', args: ['30'] }, { file: 'cat', args: [] }, { context: 't', timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.source.failure).toBe('timed out after 300 ms');
    expect(r.sink.failure).toBe('timed out after 300 ms');
  });

  it('gives a sink the daemon environment, or only its own with cleanEnv', async () => {
    const r = await runPipeline({ file: 'true', args: [] }, { file: '/usr/bin/env', args: [], env: { ONLY: '1' }, cleanEnv: true }, { context: 't' });
    expect(r.sink.stdout).toBe('ONLY=1\n');
    const full = await runPipeline({ file: 'true', args: [] }, { file: '/usr/bin/env', args: [], env: { EXTRA: '2' } }, { context: 't' });
    expect(full.sink.stdout).toContain('EXTRA=2\n');
    expect(full.sink.stdout).toContain('LC_ALL=C\n');
  });
});

describe('the spawner finds commands on PATH once', () => {
  it('runs a bare name from its PATH, with argv[0] as asked, and finds it again after it moved', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-path-'));
    try {
      const [a, b] = [join(dir, 'a'), join(dir, 'b')];
      await mkdir(a);
      await mkdir(b);
      const tool = 'warden-test-tool';
      await writeFile(join(b, tool), '#!/bin/sh\necho "from b as $0"\n', { mode: 0o755 });
      const env = { PATH: `${a}:${b}:/usr/bin:/bin` };
      expect((await runHost(tool, [], { context: 't', env })).stdout).toBe(`from b as ${join(b, tool)}\n`);
      // Moved to a: the remembered place fails once with ENOENT at most, then it is found again.
      await writeFile(join(a, tool), '#!/bin/sh\necho "from a"\n', { mode: 0o755 });
      await rm(join(b, tool));
      const again = await runHost(tool, [], { context: 't', env }).catch(() => runHost(tool, [], { context: 't', env }));
      expect(again.stdout).toBe('from a\n');
      // argv[0] of a binary is the name as asked.
      const ps = await runHost('sh', ['-c', 'echo "$0"'], { context: 't' });
      expect(ps.stdout).toBe('sh\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
