// Connection (src/server/connection.ts) over a real unix socket in a temp
// folder, in front of a WardenService on the fake backend (no root, no daemon
// process): unknown request types are answered and the connection carries on,
// bad bytes close it after the replies to what came before, errors go out as
// ErrorResponses with their text and are counted as the client's or as internal,
// and a closed connection releases its containers (grace time armed).
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { Listener } from '../../src/server/listener.ts';
import type { RequestOutcome } from '../../src/orchestrator/warden-service.ts';
import { encodeRequest } from '../../src/protocol/codec.ts';
import { MessageType } from '../../src/protocol/types.ts';
import { HostCommandError } from '../../src/host/run.ts';
import { frameBytes, rawFrame, RawConn } from '../support/raw.ts';
import { makeHarness, type Harness } from '../support/orchestrator-harness.ts';

let h: Harness;
let listener: Listener | undefined;
const conns: RawConn[] = [];

afterEach(async () => {
  for (const c of conns.splice(0)) c.destroy();
  await listener?.drain();
  listener = undefined;
  await h?.close();
});

async function serve(): Promise<{ connect(): Promise<RawConn>; outcomes: Array<[string, RequestOutcome]> }> {
  h = await makeHarness();
  const path = join(h.depot, '.warden.sock');
  await rm(path, { force: true });
  listener = new Listener(h.service, pino({ level: 'silent' }), { path, permissions: 0o600, maxFrameBytes: 1 << 20 });
  await listener.listen();
  const outcomes: Array<[string, RequestOutcome]> = [];
  h.service.observer = { requestDone: (type, outcome) => outcomes.push([type, outcome]) };
  return {
    outcomes,
    async connect() {
      const c = await RawConn.connect(path);
      conns.push(c);
      return c;
    },
  };
}

describe('connection', () => {
  it('answers an unknown request type with the original\'s words and carries on', async () => {
    const s = await serve();
    const c = await s.connect();
    await c.write(rawFrame(99, new Uint8Array()));
    expect(await c.reply()).toEqual({ type: 'Error', body: { message: 'Unknown request type: 99' } });
    expect((await c.call('Echo', { message: 'still here' })).body).toEqual({ message: 'still here' });
  });

  it('answers a message of type Error as the original server did', async () => {
    const s = await serve();
    const c = await s.connect();
    await c.write(rawFrame(MessageType.Error, new Uint8Array()));
    expect((await c.reply()).body).toEqual({ message: 'Unknown request: Error' });
  });

  it('bad framing closes the connection, after answering what came before it in the same write', async () => {
    const s = await serve();
    const c = await s.connect();
    await c.write(Buffer.concat([encodeRequest('Ping', {}), Buffer.from('not a length\r\n')]));
    expect((await c.reply()).type).toBe('Ping');
    expect((await c.next()).kind).toBe('closed');
    // Other connections are not affected.
    const d = await s.connect();
    expect((await d.call('Ping', {})).type).toBe('Ping');
  });

  it('an undecodable envelope closes the connection', async () => {
    const s = await serve();
    const c = await s.connect();
    await c.write(frameBytes(Buffer.from([0xff, 0xff, 0xff])));
    expect((await c.next()).kind).toBe('closed');
  });

  it('maps errors: the service\'s text goes out as it is; client errors and internal failures are told apart', async () => {
    const s = await serve();
    const c = await s.connect();
    expect((await c.call('Info', { handle: 'nope' })).body).toEqual({ message: 'unknown handle' });
    const created = await c.call('Create', { handle: 'x' });
    expect(created.body).toEqual({ handle: 'x' });
    await c.call('Stop', { handle: 'x' });
    expect((await c.call('Spawn', { handle: 'x', script: 'true' })).body).toEqual({
      message: "Container state must be one of 'active', current state is 'stopped'",
    });
    // A programming error in the backend: still one ErrorResponse, counted as internal.
    h.backend.fail('info', { error: new TypeError("Cannot read properties of undefined (reading 'pid')") });
    expect((await c.call('Info', { handle: 'x' })).body).toEqual({ message: "Cannot read properties of undefined (reading 'pid')" });
    // A host command that failed (code host_command): the client's answer, not an internal failure.
    await c.call('Create', { handle: 'y' });
    h.backend.fail('netIn', {
      error: new HostCommandError('net_in: iptables -w 10 -t nat -C x failed: Resource temporarily unavailable.', 'iptables', 4, 'Resource temporarily unavailable.'),
    });
    expect((await c.call('NetIn', { handle: 'y', container_port: 80 })).body).toEqual({
      message: 'net_in: iptables -w 10 -t nat -C x failed: Resource temporarily unavailable.',
    });
    // The service's own wrapping of a backend failure: the client's too.
    h.backend.fail('limitCpu', { error: new Error('write cpu.shares: Invalid argument') });
    expect((await c.call('LimitCpu', { handle: 'x', limit_in_shares: 5 })).body).toEqual({
      message: 'Failed setting cpu shares: write cpu.shares: Invalid argument',
    });
    expect(s.outcomes).toEqual([
      ['Info', 'error'],
      ['Create', 'ok'],
      ['Stop', 'ok'],
      ['Spawn', 'error'],
      ['Info', 'internal'],
      ['Create', 'ok'],
      ['NetIn', 'error'],
      ['LimitCpu', 'error'],
    ]);
  });

  it('a closed connection releases its containers: their grace time starts', async () => {
    const s = await serve();
    const c = await s.connect();
    await c.call('Create', { handle: 'g', grace_time: 3600 });
    const container = h.service.registry.get('g');
    expect(container.graceTimer).toBeUndefined();
    c.destroy();
    await vi.waitFor(() => expect(container.graceTimer).toBeDefined(), { timeout: 10_000, interval: 5 });
    // A new connection holds it off again.
    const d = await s.connect();
    await d.call('Ping', {});
    expect(container.graceTimer).toBeUndefined();
  });
});
