// Errors keep their kind and say each cause once: across layers (wrapError,
// describeError) and across the worker boundary (a task's failure comes back
// to the main thread with its code, name and fields).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HostCommandError } from '../../src/host/run.ts';
import {
  StateError,
  UnknownHandleError,
  WardenError,
  codeOf,
  describeError,
  fromWireError,
  toWireError,
  wrapError,
} from '../../src/model/errors.ts';
import { PoolExhaustedError } from '../../src/pools/errors.ts';
import { ProtocolError } from '../../src/protocol/codec.ts';
import { WorkerPool } from '../../src/workers/pool.ts';

describe('error codes', () => {
  it('gives each kind of failure its code', () => {
    expect(codeOf(new UnknownHandleError())).toBe('not_found');
    expect(codeOf(new StateError(['active'], 'stopped'))).toBe('state');
    expect(codeOf(new PoolExhaustedError('no uid'))).toBe('exhausted');
    expect(codeOf(new HostCommandError('x failed', 'x', 1, ''))).toBe('host_command');
    expect(codeOf(new ProtocolError('bad'))).toBe('invalid');
    expect(codeOf(new WardenError('bad request'))).toBe('invalid');
    expect(codeOf(new TypeError('x is undefined'))).toBe('internal');
    expect(codeOf(Object.assign(new Error('gone'), { code: 'ENOENT' }))).toBe('internal');
    expect(codeOf('a string')).toBe('internal');
  });

  it('a wrapper takes its cause code unless told otherwise', () => {
    const cause = new HostCommandError('runc start abc failed: boom', 'runc start abc', 1, 'boom');
    expect(wrapError('create abc', cause).code).toBe('host_command');
    expect(wrapError('create abc', cause, 'internal').code).toBe('internal');
    expect(new WardenError('cannot create container', { cause }).code).toBe('host_command');
  });
});

describe('describeError', () => {
  it('joins a chain of wrappers, each text once', () => {
    const root = new HostCommandError('start abc: runc start abc failed: container not found', 'runc start abc', 1, 'container not found');
    const err = wrapError('cannot create container', wrapError('create abc', root));
    expect(describeError(err)).toBe('cannot create container: create abc: start abc: runc start abc failed: container not found');
  });

  it('does not repeat a cause whose text the message already holds', () => {
    const cause = new Error('EBUSY: resource busy');
    const old = new Error(`cannot remove cgroup /x: ${cause.message}`, { cause });
    expect(describeError(old)).toBe('cannot remove cgroup /x: EBUSY: resource busy');
  });

  it('describes values that are not errors', () => {
    expect(describeError('plain')).toBe('plain');
  });
});

describe('across the worker boundary', () => {
  it('round-trips code, name, fields and cause as plain data', () => {
    const root = new HostCommandError('net_in: iptables -A x failed: bad rule', 'iptables -A x', 2, 'bad rule');
    const wire = toWireError(wrapError('net_in abc', root));
    const copy = structuredClone(wire);
    const back = fromWireError(copy);
    expect(back).toBeInstanceOf(WardenError);
    expect(back.code).toBe('host_command');
    expect(back.name).toBe('WardenError');
    expect(describeError(back)).toBe('net_in abc: net_in: iptables -A x failed: bad rule');
    const cause = back.cause as WardenError & { command?: string; exitCode?: number; stderr?: string };
    expect(cause.name).toBe('HostCommandError');
    expect(cause.code).toBe('host_command');
    expect(cause.command).toBe('iptables -A x');
    expect(cause.exitCode).toBe(2);
    expect(cause.stderr).toBe('bad rule');
  });

  const dirs: string[] = [];
  const pool = new WorkerPool({ threads: 1 });
  afterAll(async () => {
    await pool.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('a task that fails in a worker rejects with a WardenError carrying its code', async () => {
    const root = await mkdtemp(join(tmpdir(), 'warden-errors-'));
    dirs.push(root);
    const err = await pool
      .run('insecure.copyIn', { root, src: join(root, 'not-there'), dst: '/x' })
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(WardenError);
    expect((err as WardenError).code).toBe('not_found');
    expect((err as Error).message).toMatch(/not-there does not exist$/);
  });

  it('a programming error in a worker comes back as internal', async () => {
    const err = await pool.run('state.readText', { path: undefined as unknown as string }).then(
      (v) => v,
      (e: unknown) => e,
    );
    // readText swallows read failures; an unknown task name is ours to get wrong.
    expect(err).toBeUndefined();
    const unknown = await pool.run('state.nope' as never, {} as never).then(() => undefined, (e: unknown) => e);
    expect(unknown).toBeInstanceOf(WardenError);
    expect((unknown as WardenError).code).toBe('internal');
    expect((unknown as Error).message).toBe('unknown worker task state.nope');
  });
});
