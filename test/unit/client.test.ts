import { afterEach, describe, expect, it } from 'vitest';
import { WardenClient, WardenConnectionError, WardenError } from '../../src/client/client.ts';
import { ReplyChannel } from '../../src/client/reply-channel.ts';
import { FakeWardenServer, type FakeHandler } from '../support/fake-warden-server.ts';
import { ProtocolError } from '../../src/protocol/codec.ts';
import type { StreamResponse } from '../../src/protocol/types.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let server: FakeWardenServer | undefined;
let client: WardenClient | undefined;

afterEach(async () => {
  await client?.close();
  await server?.stop();
  client = undefined;
  server = undefined;
});

async function setup(handler: FakeHandler): Promise<{ server: FakeWardenServer; client: WardenClient }> {
  server = await FakeWardenServer.start(handler);
  client = await WardenClient.connect(server.socketPath);
  return { server, client };
}

/** Answers Echo, Ping, List, Create; Stream with two output frames and a status. */
const basic: FakeHandler = async (req, conn) => {
  switch (req.type) {
    case 'Echo':
      await sleep(Math.floor(Math.random() * 5));
      conn.reply('Echo', { message: req.body.message as string });
      return;
    case 'Ping':
      conn.reply('Ping', {});
      return;
    case 'List':
      conn.reply('List', { handles: ['a', 'b'] });
      return;
    case 'Create':
      conn.reply('Create', { handle: (req.body.handle as string | undefined) ?? 'generated' });
      return;
    case 'Stream':
      conn.reply('Stream', { name: 'stdout', data: 'out\n' });
      await sleep(5);
      conn.reply('Stream', { name: 'stderr', data: 'err\n' });
      conn.reply('Stream', { exit_status: 3, info: { state: 'active' } });
      return;
    default:
      conn.error(`unexpected ${req.type}`);
  }
};

describe('WardenClient', () => {
  it('answers requests in the order they were made, one in flight at a time', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const { server, client } = await setup(async (req, conn) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(Math.floor(Math.random() * 5));
      inFlight--;
      conn.reply('Echo', { message: req.body.message as string });
    });
    const messages = Array.from({ length: 20 }, (_, i) => `m${i}`);
    const replies = await Promise.all(messages.map((message) => client.echo({ message })));
    expect(replies.map((r) => r.message)).toEqual(messages);
    expect(server.requests.map((r) => r.body.message)).toEqual(messages);
    expect(maxInFlight).toBe(1);
  });

  it('has a typed method per request, and a generic call', async () => {
    const { client } = await setup(basic);
    expect(await client.ping()).toEqual({});
    expect(await client.list()).toEqual({ handles: ['a', 'b'] });
    expect(await client.create()).toEqual({ handle: 'generated' });
    expect(await client.create({ handle: 'mine' })).toEqual({ handle: 'mine' });
    expect(await client.call('Echo', { message: 'hi' })).toEqual({ message: 'hi' });
  });

  it('rejects an ErrorResponse with a WardenError and carries on', async () => {
    const { client } = await setup((req, conn) => {
      if (req.type === 'Info') conn.error('unknown handle', 'h1');
      else conn.reply('Ping', {});
    });
    const err = await client.info({ handle: 'h1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WardenError);
    expect((err as WardenError).message).toBe('unknown handle');
    expect((err as WardenError).data).toBe('h1');
    expect(await client.ping()).toEqual({});
  });

  it('rejects a request that cannot be encoded without sending it', async () => {
    const { server, client } = await setup(basic);
    // A missing required field, as an untyped caller could send.
    await expect(client.echo({} as { message: string })).rejects.toBeInstanceOf(ProtocolError);
    expect(await client.ping()).toEqual({});
    expect(server.requests.map((r) => r.type)).toEqual(['Ping']);
  });

  it('streams frames as they arrive and ends after the one with exit_status', async () => {
    const { client } = await setup(basic);
    const frames: StreamResponse[] = [];
    const stream = client.stream({ handle: 'h', job_id: 1 });
    const echo = client.echo({ message: 'after' }); // queued behind the stream
    for await (const frame of stream) frames.push(frame);
    expect(frames.map((f) => [f.name, f.data && Buffer.from(f.data).toString()])).toEqual([
      ['stdout', 'out\n'],
      ['stderr', 'err\n'],
      [undefined, undefined],
    ]);
    expect(Buffer.isBuffer(frames[0].data)).toBe(true);
    expect(frames[2]).toEqual({ exit_status: 3, info: { state: 'active' } });
    expect(await echo).toEqual({ message: 'after' });
  });

  it('skips the output of a Stream sent through call, resolving with the last frame', async () => {
    const { client } = await setup(basic);
    expect(await client.call('Stream', { handle: 'h', job_id: 1 })).toEqual({
      exit_status: 3,
      info: { state: 'active' },
    });
  });

  it('drains the rest of a stream its reader left early', async () => {
    const { client } = await setup(basic);
    for await (const frame of client.stream({ handle: 'h', job_id: 1 })) {
      expect(frame.name).toBe('stdout');
      break;
    }
    expect(await client.echo({ message: 'next' })).toEqual({ message: 'next' });
  });

  it('delivers a long stream to a slow reader in order', async () => {
    const count = 500;
    const { client } = await setup((_req, conn) => {
      for (let i = 0; i < count; i++) conn.reply('Stream', { name: 'stdout', data: `${i}\n` });
      conn.reply('Stream', { exit_status: 0 });
    });
    let text = '';
    for await (const frame of client.stream({ handle: 'h', job_id: 1 })) {
      if (frame.data) text += Buffer.from(frame.data).toString();
      if (text.length % 100 === 0) await sleep(1);
    }
    expect(text).toBe(Array.from({ length: count }, (_, i) => `${i}\n`).join(''));
  });

  it('throws a WardenError from stream iteration', async () => {
    const { client } = await setup((_req, conn) => conn.error('no such job'));
    const iterate = async () => {
      for await (const _ of client.stream({ handle: 'h', job_id: 9 })) {
        // nothing arrives
      }
    };
    await expect(iterate()).rejects.toThrow(WardenError);
    await expect(iterate()).rejects.toThrow('no such job');
  });

  it('rejects the request in flight and the queued ones when the connection is lost', async () => {
    const { client } = await setup((req, conn) => {
      if (req.type === 'Info') conn.destroy();
      else conn.reply('Ping', {});
    });
    expect(await client.ping()).toEqual({});
    const [info, echo] = await Promise.allSettled([client.info({ handle: 'h' }), client.echo({ message: 'queued' })]);
    expect(info.status === 'rejected' && info.reason).toBeInstanceOf(WardenConnectionError);
    expect(info.status === 'rejected' && String(info.reason)).toMatch(/closed while waiting for the Info reply/);
    expect(echo.status === 'rejected' && String(echo.reason)).toMatch(/before the Echo request was sent/);
    expect(client.closed).toBe(true);
    await expect(client.ping()).rejects.toThrow(WardenConnectionError);
  });

  it('gives a stream the frames that came before the connection was lost, then the error', async () => {
    const { client } = await setup((_req, conn) => {
      conn.reply('Stream', { name: 'stdout', data: 'partial' });
      setTimeout(() => conn.destroy(), 10);
    });
    const seen: string[] = [];
    const iterate = async () => {
      for await (const frame of client.stream({ handle: 'h', job_id: 1 })) seen.push(String(frame.data));
    };
    await expect(iterate()).rejects.toThrow(/while waiting for the Stream reply/);
    expect(seen).toEqual(['partial']);
  });

  it('gives up the connection on a reply of the wrong type', async () => {
    const { client } = await setup((_req, conn) => conn.reply('Ping', {}));
    await expect(client.echo({ message: 'x' })).rejects.toThrow(/expected a Echo reply, got Ping/);
    expect(client.closed).toBe(true);
  });

  it('gives up the connection on a malformed frame', async () => {
    const { client } = await setup((_req, conn) => conn.writeRaw('nonsense\r\n'));
    await expect(client.ping()).rejects.toThrow(/bad frame/);
  });

  it('rejects outstanding requests on close()', async () => {
    const { client } = await setup(() => {}); // never answers
    const ping = client.ping().catch((e: unknown) => e);
    await client.close();
    expect(await ping).toBeInstanceOf(WardenConnectionError);
    expect(String(await ping)).toMatch(/closed by the client/);
    await expect(client.ping()).rejects.toThrow(WardenConnectionError);
  });

  it('fails to connect with a WardenConnectionError naming the socket', async () => {
    const err = await WardenClient.connect('/nonexistent/warden.sock').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WardenConnectionError);
    expect((err as Error).message).toMatch(/cannot connect to warden at \/nonexistent\/warden.sock/);
  });
});

describe('ReplyChannel', () => {
  it('asks to pause at highWater unread replies and to resume at lowWater', async () => {
    const calls: boolean[] = [];
    const channel = new ReplyChannel<number>({ highWater: 3, lowWater: 1, onPressure: (p) => calls.push(p) });
    [1, 2, 3, 4].forEach((n) => channel.push(n));
    expect(calls).toEqual([true]);
    expect((await channel.next()).value).toBe(1);
    expect(calls).toEqual([true]);
    expect((await channel.next()).value).toBe(2);
    expect(calls).toEqual([true]);
    expect((await channel.next()).value).toBe(3); // one left: caught up
    expect(calls).toEqual([true, false]);
  });

  it('hands out buffered items before the end or the error', async () => {
    const channel = new ReplyChannel<number>();
    channel.push(1);
    channel.fail(new Error('lost'));
    expect(await channel.next()).toEqual({ value: 1, done: false });
    await expect(channel.next()).rejects.toThrow('lost');
    expect(await channel.next()).toEqual({ value: undefined, done: true });
  });

  it('wakes a waiting reader', async () => {
    const channel = new ReplyChannel<number>();
    const first = channel.next();
    channel.push(7);
    expect(await first).toEqual({ value: 7, done: false });
    const second = channel.next();
    channel.end();
    expect(await second).toEqual({ value: undefined, done: true });
  });

  it('drops what is left when the reader returns early', async () => {
    const channel = new ReplyChannel<number>({ highWater: 1, onPressure: () => {} });
    channel.push(1);
    await channel.return();
    channel.push(2);
    expect(await channel.next()).toEqual({ value: undefined, done: true });
  });
});
