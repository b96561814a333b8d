// Bad input against the real daemon (insecure backend): every kind of malformed
// frame, envelope or request gets an ErrorResponse or a closed connection, never
// a crash, and the daemon answers Ping on a fresh connection afterwards.
import { readdirSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import { encodeBody, encodeRequest } from '../../src/protocol/codec.ts';
import { MessageType } from '../../src/protocol/types.ts';
import { TestDaemon } from '../support/daemon.ts';
import { assertHealthy, frameBytes, RawConn, rawFrame, rssBytes, sleep, type Outcome } from '../support/raw.ts';
import { destroyLeftoversEachTest } from '../support/leftovers.ts';
import { waitFor } from '../support/wait.ts';
import { heldJob } from '../support/held-job.ts';
import { FORGOTTEN_LIST_PREFIX } from '../../src/depot/folder-remover.ts';

const MAX_FRAME = 4096;

let d: TestDaemon;
let c: WardenClient;
const conns: RawConn[] = [];

beforeAll(async () => {
  d = await TestDaemon.start({ server: { max_frame_bytes: MAX_FRAME } });
  c = await d.client();
});

afterAll(async () => {
  for (const r of conns) r.destroy();
  await c?.close().catch(() => {});
  await d?.cleanup();
});

afterEach(async () => {
  for (const r of conns.splice(0)) r.destroy();
  await assertHealthy(d);
});

async function raw(): Promise<RawConn> {
  const r = await RawConn.connect(d.socket);
  conns.push(r);
  return r;
}

/** The connection ended with an ErrorResponse or a close, never silence or a normal reply. */
function expectErrorOrClose(o: Outcome): void {
  if (o.kind === 'reply') expect(o.reply.type).toBe('Error');
  else expect(o.kind).toBe('closed');
}

/** Send bytes on a fresh connection; the daemon must answer an error or close it. */
async function rejects(bytes: Uint8Array | string): Promise<Outcome> {
  const r = await raw();
  await r.write(bytes).catch(() => {}); // the daemon may close before it all went out
  const o = await r.next(5000);
  expectErrorOrClose(o);
  return o;
}

/** The connection still serves requests in order after what was sent on it. */
async function stillServes(r: RawConn): Promise<void> {
  const reply = await r.call('Echo', { message: 'still here' });
  expect(reply).toEqual({ type: 'Echo', body: { message: 'still here' } });
}

/** The envelope's length in a frame made by encodeRequest. */
function envelopeLength(frame: Buffer): number {
  return frame.length - frame.indexOf('\r\n') - 4;
}

/** An Echo request whose envelope is exactly `size` bytes, and its message length. */
function echoOfSize(size: number): { frame: Buffer; length: number } {
  for (let n = size - 16; n <= size; n++) {
    const frame = encodeRequest('Echo', { message: 'x'.repeat(n) });
    if (envelopeLength(frame) === size) return { frame, length: n };
  }
  throw new Error(`no Echo frame of ${size} bytes`);
}

// What a test made goes after it, also when it failed: later tests never see it.
destroyLeftoversEachTest(() => c);

describe('framing', () => {
  it('closes on a non-numeric length', async () => {
    expect((await rejects('abc\r\n\r\n')).kind).toBe('closed');
    await rejects('12a\r\n');
    await rejects('-5\r\nhello\r\n');
    await rejects(' 5\r\nhello\r\n');
    await rejects('\r\n');
    await rejects('0x10\r\n');
  });

  it('closes on a length with LF only or CR only after it', async () => {
    await rejects('5\nhello\r\n');
    await rejects('5\rhello\r\n');
  });

  it('takes a frame of exactly max_frame_bytes and refuses one byte more', async () => {
    const r = await raw();
    const atLimit = echoOfSize(MAX_FRAME);
    const under = echoOfSize(MAX_FRAME - 1);
    await r.write(Buffer.concat([under.frame, atLimit.frame]));
    for (const e of [under, atLimit]) {
      const reply = await r.reply();
      expect(reply.type).toBe('Echo');
      expect((reply.body.message as string).length).toBe(e.length);
    }
    await stillServes(r);

    expect((await rejects(echoOfSize(MAX_FRAME + 1).frame)).kind).toBe('closed');
    // Only the header: the daemon must not wait for (or buffer) the oversized body.
    expect((await rejects(`${MAX_FRAME + 1}\r\n`)).kind).toBe('closed');
    expect((await rejects('999999999\r\n')).kind).toBe('closed');
  });

  it('closes on a length with too many digits, without waiting for the CRLF', async () => {
    expect((await rejects('00000000000000000012\r\n')).kind).toBe('closed');
    expect((await rejects('1'.repeat(100))).kind).toBe('closed');
    expect((await rejects('9'.repeat(10_000))).kind).toBe('closed');
  });

  it('closes when a frame is not followed by CRLF', async () => {
    const ping = encodeRequest('Ping', {});
    await rejects(Buffer.concat([ping.subarray(0, ping.length - 2), Buffer.from('XX')]));
    await rejects(Buffer.concat([ping.subarray(0, ping.length - 2), Buffer.from('\n\r')]));
    // The next frame right where the CRLF belongs.
    await rejects(Buffer.concat([ping.subarray(0, ping.length - 2), ping]));
    // A frame answered before the broken one still got its reply, in order.
    const r = await raw();
    await r.write(Buffer.concat([encodeRequest('Echo', { message: 'first' }), ping.subarray(0, ping.length - 2), Buffer.from('!!')]));
    const first = await r.next();
    expect(first).toEqual({ kind: 'reply', reply: { type: 'Echo', body: { message: 'first' } } });
    expect((await r.next()).kind).toBe('closed');
  });

  it('answers the request in flight before closing on bad bytes that follow it', async () => {
    const { handle } = await c.create({});
    const job = heldJob();
    try {
      const r = await raw();
      // The Run provably in flight (its job running, held) when the bad bytes come.
      await r.send('Run', { handle, script: `${job.script.replace(/; exit 0$/, '')}; echo finished` });
      await job.ready();
      await r.write('not a frame\r\n');
      job.release();
      const reply = await r.reply();
      expect(reply.type).toBe('Run');
      expect(Buffer.from(reply.body.stdout as Uint8Array).toString()).toBe('finished\n');
      expect((await r.next()).kind).toBe('closed');
    } finally {
      await c.destroy({ handle });
      job.cleanup();
    }
  });

  it('answers or closes on an envelope that does not decode', async () => {
    await rejects(frameBytes(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])));
    await rejects(frameBytes(Buffer.from('this is not protobuf at all')));
    await rejects(frameBytes(Buffer.alloc(0))); // no type, no payload
    await rejects(frameBytes(Buffer.from([0x08, 91]))); // type Ping, payload missing
    await rejects(frameBytes(Buffer.from([0x12, 0x00]))); // payload, type missing
    await rejects(frameBytes(Buffer.from([0x08, 91, 0x12, 0x05, 0x00]))); // payload cut short
    await rejects(frameBytes(Buffer.from([0x08]))); // a tag and nothing
    // Requests before an undecodable envelope are answered, those after it are not.
    const r = await raw();
    await r.write(
      Buffer.concat([encodeRequest('Echo', { message: 'before' }), frameBytes(Buffer.from('junk')), encodeRequest('Echo', { message: 'after' })]),
    );
    expect(await r.next()).toEqual({ kind: 'reply', reply: { type: 'Echo', body: { message: 'before' } } });
    expect((await r.next()).kind).toBe('closed');
  });
});

describe('envelope and body', () => {
  it('answers an unknown message type with an error naming it, and carries on', async () => {
    const r = await raw();
    for (const type of [99, 0, 2, 15, 1000, 2 ** 31 - 1]) {
      await r.write(rawFrame(type, new Uint8Array()));
      const reply = await r.reply();
      expect(reply.type).toBe('Error');
      expect(reply.body.message).toBe(`Unknown request type: ${type}`);
    }
    await stillServes(r);
  });

  it('refuses a response type (Error) sent as a request, and carries on', async () => {
    const r = await raw();
    await r.write(rawFrame(MessageType.Error, encodeBody('ErrorResponse', { message: 'hi', data: 'x' })));
    const reply = await r.reply();
    expect(reply.type).toBe('Error');
    expect(reply.body.message).toBe('Unknown request: Error');
    await stillServes(r);
  });

  it('answers a response body sent under a request type like any request body', async () => {
    // An EchoResponse has the same shape as an EchoRequest: served as a request.
    const r = await raw();
    await r.write(rawFrame(MessageType.Echo, encodeBody('EchoResponse', { message: 'twin' })));
    expect(await r.reply()).toEqual({ type: 'Echo', body: { message: 'twin' } });
    // A CreateResponse (handle) is a valid CreateRequest too, but a
    // SpawnResponse (job_id, field 1 varint) is not a SpawnRequest.
    await r.write(rawFrame(MessageType.Spawn, encodeBody('SpawnResponse', { job_id: 7 })));
    expect((await r.reply()).type).toBe('Error');
    await stillServes(r);
  });

  it('names the missing required field', async () => {
    const before = (await c.list()).handles ?? [];
    const r = await raw();
    const cases: [number, Uint8Array, string][] = [
      [MessageType.Echo, new Uint8Array(), 'message'],
      [MessageType.Info, new Uint8Array(), 'handle'],
      [MessageType.Destroy, new Uint8Array(), 'handle'],
      [MessageType.Link, encodeBody('InfoRequest', { handle: 'h' }), 'job_id'],
      [MessageType.Spawn, encodeBody('InfoRequest', { handle: 'h' }), 'script'],
      [MessageType.CopyIn, encodeBody('InfoRequest', { handle: 'h' }), 'src_path'],
      [MessageType.LimitBandwidth, encodeBody('LimitMemoryRequest', { handle: 'h', limit_in_bytes: 5 }), 'burst'], // field 2 is rate
      // A nested message with a required field missing: bind_mounts[0] without dst_path/mode.
      [MessageType.Create, Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x2f]), 'dst_path'],
    ];
    for (const [type, body, field] of cases) {
      await r.write(rawFrame(type, body));
      const reply = await r.reply();
      expect(reply.type).toBe('Error');
      expect(reply.body.message).toMatch(new RegExp(`\\b${field}\\b`));
    }
    await stillServes(r);
    // Nothing was created by the broken Create.
    expect((await c.list()).handles ?? []).toEqual(before);
  });

  it('answers an error or closes on wrong wire types, and the daemon carries on', async () => {
    const bodies: [number, number[]][] = [
      [MessageType.Info, [0x08, 0x05]], // handle as a varint
      [MessageType.Echo, [0x0d, 1, 2, 3, 4]], // message as fixed32
      [MessageType.Echo, [0x09, 1, 2, 3, 4, 5, 6, 7, 8]], // message as fixed64
      [MessageType.Link, [0x0a, 0x01, 0x68, 0x12, 0x01, 0x07]], // job_id as bytes
      [MessageType.Stop, [0x0a, 0x01, 0x68, 0xa2, 0x01, 0x01, 0x01]], // kill as bytes
      [MessageType.Echo, [0x0b, 0x0c]], // a group where a string belongs
      [MessageType.Echo, [0x0f]], // wire type 7 does not exist
      [MessageType.Echo, [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]], // string length 4 GiB
      [MessageType.Echo, [0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]], // over-long varint
    ];
    for (const [type, body] of bodies) {
      const r = await raw();
      await r.write(rawFrame(type, Buffer.from(body)));
      const o = await r.next();
      // Some of these decode into something (protobufjs trusts the field
      // number); any reply is fine as long as the daemon answers and lives.
      expect(o.kind).not.toBe('timeout');
      if (o.kind === 'reply') await stillServes(r);
      await assertHealthy(d);
    }
    // The envelope's own fields with the wrong wire types.
    await rejects(frameBytes(Buffer.from([0x0a, 0x01, 91, 0x12, 0x00]))); // type as bytes
    await rejects(frameBytes(Buffer.from([0x08, 91, 0x10, 0x00]))); // payload as varint
  });

  it('refuses a NUL byte in a path with an error naming the field, not as a daemon bug', async () => {
    const { handle } = await c.create({});
    try {
      await expect(c.copyIn({ handle, src_path: '/tmp/x\0y', dst_path: '/a' })).rejects.toThrow(/src_path contains a NUL byte/);
      await expect(c.copyIn({ handle, src_path: '/tmp', dst_path: '/a/\0' })).rejects.toThrow(/dst_path contains a NUL byte/);
      await expect(c.copyOut({ handle, src_path: '/a', dst_path: '/tmp/\0' })).rejects.toThrow(/dst_path contains a NUL byte/);
      await expect(c.create({ bind_mounts: [{ src_path: '/tmp\0', dst_path: '/x', mode: 0 }] })).rejects.toThrow(/bind mount src_path contains a NUL byte/);
      await expect(c.create({ rootfs: '/tmp/\0' })).rejects.toThrow(/rootfs contains a NUL byte/);
      expect(d.log()).not.toMatch(/NUL byte.*"outcome":"internal"|"outcome":"internal".*null bytes/);
    } finally {
      await c.destroy({ handle });
    }
  });

  it('passes invalid UTF-8 in a string field through without crashing', async () => {
    const r = await raw();
    await r.write(rawFrame(MessageType.Echo, Buffer.from([0x0a, 0x04, 0xff, 0xfe, 0xc3, 0x28])));
    const reply = await r.reply();
    expect(reply.type).toBe('Echo');
    await stillServes(r);
  });
});

describe('splitting and merging', () => {
  it('answers frames split into single bytes across many writes, in order', async () => {
    const r = await raw();
    const bytes = Buffer.concat([
      encodeRequest('Echo', { message: 'one' }),
      encodeRequest('Ping', {}),
      encodeRequest('Echo', { message: 'three ✓' }),
    ]);
    for (let i = 0; i < bytes.length; i++) {
      await r.write(bytes.subarray(i, i + 1));
      if (i % 4 === 0) await sleep(1); // let the daemon read partial frames
    }
    expect(await r.reply()).toEqual({ type: 'Echo', body: { message: 'one' } });
    expect(await r.reply()).toEqual({ type: 'Ping', body: {} });
    expect(await r.reply()).toEqual({ type: 'Echo', body: { message: 'three ✓' } });
  });

  it('answers frames split at every boundary (header, CR, LF, body)', async () => {
    const frame = encodeRequest('Echo', { message: 'split' });
    const r = await raw();
    for (let cut = 1; cut < frame.length; cut++) {
      await r.write(frame.subarray(0, cut));
      await sleep(2);
      await r.write(frame.subarray(cut));
      expect(await r.reply()).toEqual({ type: 'Echo', body: { message: 'split' } });
    }
  });

  it('answers many frames merged into one write, all in order', async () => {
    const r = await raw();
    const n = 500;
    const frames = Array.from({ length: n }, (_, i) =>
      i % 5 === 4 ? encodeRequest('Ping', {}) : encodeRequest('Echo', { message: `m${i}` }),
    );
    await r.write(Buffer.concat(frames));
    for (let i = 0; i < n; i++) {
      const reply = await r.reply();
      if (i % 5 === 4) expect(reply).toEqual({ type: 'Ping', body: {} });
      else expect(reply).toEqual({ type: 'Echo', body: { message: `m${i}` } });
    }
  });

  it('answers errors in line with the replies around them', async () => {
    const r = await raw();
    await r.write(
      Buffer.concat([
        encodeRequest('Echo', { message: 'a' }),
        rawFrame(99, new Uint8Array()),
        encodeRequest('Info', { handle: 'no-such-container' }),
        rawFrame(MessageType.Info, new Uint8Array()),
        encodeRequest('Echo', { message: 'b' }),
      ]),
    );
    expect(await r.reply()).toEqual({ type: 'Echo', body: { message: 'a' } });
    expect((await r.reply()).body.message).toBe('Unknown request type: 99');
    expect(await r.reply()).toEqual({ type: 'Error', body: { message: 'unknown handle' } });
    expect((await r.reply()).body.message).toMatch(/handle/);
    expect(await r.reply()).toEqual({ type: 'Echo', body: { message: 'b' } });
  });
});

describe('a client that does not read its replies', () => {
  // Frames up to the default 16 MiB here.
  let big: TestDaemon | undefined;
  beforeAll(async () => {
    big = await TestDaemon.start({});
  });
  afterAll(async () => {
    await big?.cleanup();
  });

  it('keeps the daemon memory bounded and other connections served', async () => {
    if (!big) throw new Error('no daemon');
    const base = rssBytes(big.pid);
    const flood = await RawConn.connect(big.socket);
    try {
      flood.socket.pause(); // never read a reply
      const frameSize = 64 * 1024;
      const frames = (i: number) => encodeRequest('Echo', { message: `${i}:`.padEnd(frameSize, 'x') });
      // Offer up to 384 MiB of requests for up to 4 s. A daemon that buffers
      // its replies takes it all; one that honours backpressure stops reading.
      const budget = 6144;
      let sent = 0;
      let peak = base;
      const t0 = Date.now();
      while (sent < budget && Date.now() - t0 < 4000) {
        if (!flood.socket.write(frames(sent++))) {
          const drained = await Promise.race([
            new Promise<boolean>((res) => flood.socket.once('drain', () => res(true))),
            sleep(500).then(() => false),
          ]);
          if (!drained) break;
        }
        if (sent % 256 === 0) peak = Math.max(peak, rssBytes(big.pid));
      }
      // Another connection is served at once meanwhile.
      // (The flood stays unread all along: served meanwhile is the point, not how fast;
      // the timeout is only a failure bound.)
      const other = await RawConn.connect(big.socket);
      expect(await other.call('Ping', {}, 10_000)).toEqual({ type: 'Ping', body: {} });
      other.destroy();
      await sleep(500);
      peak = Math.max(peak, rssBytes(big.pid));
      expect(sent).toBeLessThan(budget); // the daemon pushed back
      expect(peak - base).toBeLessThan(120 * 1024 * 1024);

      // Reading again: every request sent gets its reply, in order.
      flood.socket.resume();
      for (let i = 0; i < sent; i++) {
        const reply = await flood.reply(10_000);
        expect(reply.type).toBe('Echo');
        expect((reply.body.message as string).startsWith(`${i}:`)).toBe(true);
      }
      await assertHealthy(big);
    } finally {
      flood.destroy();
    }
  });

  it('bounds what it reads ahead by bytes too, not only by frames', async () => {
    const base = rssBytes(big!.pid);
    const flood = await RawConn.connect(big!.socket);
    try {
      flood.socket.pause();
      const frame = encodeRequest('Echo', { message: 'w'.repeat(1024 * 1024) });
      let sent = 0;
      while (sent < 200) {
        sent++;
        if (!flood.socket.write(frame)) {
          const drained = await Promise.race([
            new Promise<boolean>((res) => flood.socket.once('drain', () => res(true))),
            sleep(500).then(() => false),
          ]);
          if (!drained) break;
        }
      }
      await sleep(300);
      // 64 frames of 1 MiB read ahead would be 64 MiB and more; a few MiB is the budget.
      expect(sent).toBeLessThan(32);
      expect(rssBytes(big!.pid) - base).toBeLessThan(60 * 1024 * 1024);
      flood.socket.resume();
      for (let i = 0; i < sent; i++) expect((await flood.reply(10_000)).type).toBe('Echo');
    } finally {
      flood.destroy();
    }
    await assertHealthy(big!);
  });

  it('holds back on error replies too (unknown types, Error as a request)', async () => {
    const base = rssBytes(big!.pid);
    const flood = await RawConn.connect(big!.socket);
    try {
      flood.socket.pause();
      // 10,000 tiny bad frames a write; each is answered with an ErrorResponse.
      const batch = Buffer.concat(
        Array.from({ length: 10_000 }, (_, i) => (i % 2 ? rawFrame(99, new Uint8Array()) : rawFrame(MessageType.Error, new Uint8Array()))),
      );
      const budget = 300; // three million frames
      let sent = 0;
      const t0 = Date.now();
      while (sent < budget && Date.now() - t0 < 4000) {
        sent++;
        if (!flood.socket.write(batch)) {
          const drained = await Promise.race([
            new Promise<boolean>((res) => flood.socket.once('drain', () => res(true))),
            sleep(500).then(() => false),
          ]);
          if (!drained) break;
        }
      }
      await sleep(300);
      expect(sent).toBeLessThan(50);
      expect(rssBytes(big!.pid) - base).toBeLessThan(60 * 1024 * 1024);
      // Reading again, the replies come, in order.
      flood.socket.resume();
      for (let i = 0; i < 20_000; i++) {
        const reply = await flood.reply(10_000);
        expect(reply.type).toBe('Error');
        expect(reply.body.message).toBe(i % 2 ? 'Unknown request type: 99' : 'Unknown request: Error');
      }
    } finally {
      flood.destroy();
    }
    await assertHealthy(big!);
  });

  it('delivers a big reply whole before closing on a bad frame that followed it', async () => {
    const r = await RawConn.connect(big!.socket);
    try {
      r.socket.pause();
      const message = 'z'.repeat(4 * 1024 * 1024);
      await r.write(Buffer.concat([encodeRequest('Echo', { message }), Buffer.from('garbage\r\n')]));
      await sleep(300);
      r.socket.resume();
      const reply = await r.reply(10_000);
      expect(reply.type).toBe('Echo');
      expect((reply.body.message as string).length).toBe(message.length);
      expect((await r.next()).kind).toBe('closed');
    } finally {
      r.destroy();
    }
  });

  it('closes a flooding connection cleanly when the client goes away unread', async () => {
    const flood = await RawConn.connect(big!.socket);
    flood.socket.pause();
    const frame = encodeRequest('Echo', { message: 'y'.repeat(64 * 1024) });
    for (let i = 0; i < 200; i++) if (!flood.socket.write(frame)) break;
    await sleep(200);
    flood.destroy();
    await sleep(200);
    await assertHealthy(big!);
  });
});

describe('disconnects', () => {
  it('survives a client that goes away mid-header and mid-frame', async () => {
    const frame = encodeRequest('Echo', { message: 'half' });
    for (const cut of [1, frame.indexOf('\r\n') + 1, frame.indexOf('\r\n') + 2, frame.length - 5, frame.length - 1]) {
      const r = await raw();
      await r.write(frame.subarray(0, cut));
      await sleep(10);
      r.destroy();
      await assertHealthy(d);
    }
  });

  it('survives a client that goes away during a Run, and the container stays usable', async () => {
    const { handle } = await c.create({});
    const job = heldJob();
    try {
      const r = await raw();
      await r.send('Run', { handle, script: job.script });
      await job.ready();
      r.destroy();
      // Served while the abandoned job still runs (it is held until released).
      await assertHealthy(d, 10_000);
      const run = await c.run({ handle, script: 'echo again' });
      expect(Buffer.from(run.stdout as Uint8Array).toString()).toBe('again\n');
      expect(job.alive()).toBe(true);
      // The abandoned job ends by itself, and the daemon notices.
      job.release();
      await waitFor('the abandoned job to end', async () => ((await c.info({ handle })).job_ids ?? []).length === 0);
    } finally {
      job.cleanup();
      await c.destroy({ handle });
    }
  });

  it('keeps a job for others when a Link or Stream client goes away', async () => {
    const { handle } = await c.create({});
    try {
      const job = heldJob('echo early; ');
      const { job_id } = await c.spawn({ handle, script: `${job.script.replace(/; exit 0$/, '')}; echo late` });
      const linker = await raw();
      await linker.send('Link', { handle, job_id });
      const streamer = await raw();
      await streamer.send('Stream', { handle, job_id });
      const first = await streamer.reply();
      expect(first.type).toBe('Stream');
      linker.destroy();
      streamer.destroy();
      await assertHealthy(d, 10_000);
      expect(job.alive()).toBe(true);
      job.release();
      // The job and all of its output are still there for the next reader.
      const r = await c.link({ handle, job_id });
      job.cleanup();
      expect(Buffer.from(r.stdout as Uint8Array).toString()).toBe('early\nlate\n');
      expect(r.exit_status).toBe(0);
    } finally {
      await c.destroy({ handle });
    }
  });

  it('survives a client that goes away during a Stop', async () => {
    const { handle } = await c.create({});
    const job = heldJob();
    await c.spawn({ handle, script: job.script });
    await job.ready();
    const r = await raw();
    await r.send('Stop', { handle });
    await job.waitTermed();
    r.destroy();
    // Served while that Stop still waits for the job (alive: it runs until released).
    await assertHealthy(d, 10_000);
    expect(job.alive()).toBe(true);
    job.release();
    job.cleanup();
    await c.destroy({ handle });
    expect((await c.list()).handles ?? []).not.toContain(handle);
  });
});

// A grace timer must not reap a container its Create is still making (it
// used to, leaking folders and releasing pool entries twice).
describe('a client leaving during its Create', () => {
  it('leaks nothing when a client goes away during its Create with grace_time 0', async () => {
    // The lists of forgotten jobs come and go with the Links of the tests before.
    const folders = () => readdirSync(d.depot).filter((n) => !n.startsWith(FORGOTTEN_LIST_PREFIX)).sort();
    const before = folders();
    const listed = (await c.list()).handles ?? [];
    for (let i = 0; i < 40; i++) {
      const r = await raw();
      await r.send('Create', { handle: `gone-${i}`, grace_time: 0 });
      await sleep(i % 10);
      r.destroy();
    }
    // Every Create finishes and its grace timer then reaps it: wait for that end state.
    const same = (a: string[], b: string[]) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
    await waitFor('every abandoned Create to be reaped', async () => same((await c.list()).handles ?? [], listed), 30_000, 100);
    await waitFor('the depot to be as before', () => same(folders(), before), 30_000, 100);
    expect(((await c.list()).handles ?? []).sort()).toEqual([...listed].sort());
    expect(folders()).toEqual(before);
  });
});

describe('error texts', () => {
  it('answers unknown handle for every request that names a container', async () => {
    const r = await raw();
    const requests = [
      encodeRequest('Info', { handle: 'nope' }),
      encodeRequest('Stop', { handle: 'nope' }),
      encodeRequest('Destroy', { handle: 'nope' }),
      encodeRequest('Spawn', { handle: 'nope', script: 'true' }),
      encodeRequest('Run', { handle: 'nope', script: 'true' }),
      encodeRequest('Link', { handle: 'nope', job_id: 1 }),
      encodeRequest('Stream', { handle: 'nope', job_id: 1 }),
      encodeRequest('NetIn', { handle: 'nope' }),
      encodeRequest('NetOut', { handle: 'nope', port: 80 }),
      encodeRequest('CopyIn', { handle: 'nope', src_path: '/tmp', dst_path: '/tmp' }),
      encodeRequest('CopyOut', { handle: 'nope', src_path: '/tmp', dst_path: '/tmp/x' }),
      encodeRequest('LimitMemory', { handle: 'nope' }),
      encodeRequest('LimitDisk', { handle: 'nope' }),
      encodeRequest('LimitBandwidth', { handle: 'nope', rate: 1, burst: 1 }),
      encodeRequest('LimitCpu', { handle: 'nope' }),
    ];
    await r.write(Buffer.concat(requests));
    for (let i = 0; i < requests.length; i++) {
      expect(await r.reply()).toEqual({ type: 'Error', body: { message: 'unknown handle' } });
    }
  });

  it('answers no such job', async () => {
    const { handle } = await c.create({});
    try {
      const r = await raw();
      expect(await r.call('Link', { handle, job_id: 987654 })).toEqual({ type: 'Error', body: { message: 'no such job' } });
      expect(await r.call('Stream', { handle, job_id: 987654 })).toEqual({ type: 'Error', body: { message: 'no such job' } });
      expect(await r.call('Link', { handle, job_id: 0 })).toEqual({ type: 'Error', body: { message: 'no such job' } });
    } finally {
      await c.destroy({ handle });
    }
  });

  it('answers the state error on a stopped container', async () => {
    const { handle } = await c.create({});
    try {
      await c.stop({ handle });
      const r = await raw();
      const message = "Container state must be one of 'active', current state is 'stopped'";
      for (const [type, body] of [
        ['Spawn', { handle, script: 'true' }],
        ['Run', { handle, script: 'true' }],
        ['NetIn', { handle }],
        ['NetOut', { handle, port: 80 }],
        ['CopyIn', { handle, src_path: '/tmp/x', dst_path: '/x' }],
      ] as const) {
        expect(await r.call(type, body as never)).toEqual({ type: 'Error', body: { message } });
      }
      // Allowed while stopped.
      expect((await r.call('Info', { handle })).body.state).toBe('stopped');
      expect((await r.call('Stop', { handle })).type).toBe('Stop');
    } finally {
      await c.destroy({ handle });
    }
  });
});
