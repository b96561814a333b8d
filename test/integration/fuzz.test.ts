// Property-based fuzzing of the real daemon (insecure backend) over its socket:
// random bytes, truncated and mutated real frames, and well-formed requests of
// every type with random field values. After every batch the daemon process is
// alive and answers Ping on a new connection; whatever the random requests
// created is destroyed again.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import { decodeEnvelope, encodeRequest, messageType } from '../../src/protocol/codec.ts';
import { FrameDecoder, FramingError } from '../../src/protocol/framing.ts';
import { MessageType, REQUEST_NAMES, type RequestName } from '../../src/protocol/types.ts';
import { TestDaemon } from '../support/daemon.ts';
import { assertHealthy, frameBytes, isRunning, RawConn, rawFrame, rssBytes, type Reply } from '../support/raw.ts';

const FIXTURE = 'fuzz-fixture';
const MAX_FRAME_BYTES = 64 * 1024;

let d: TestDaemon;
let c: WardenClient;
let scratch: string;
let baseRss = 0;
/** The host's / before the fuzzing: random requests must not have written there. */
let rootBefore: string[] = [];

beforeAll(async () => {
  rootBefore = readdirSync('/').sort();
  d = await TestDaemon.start({
    // Frames up to 64 KiB keep random oversized headers cheap to refuse.
    server: { max_frame_bytes: MAX_FRAME_BYTES, container_grace_time: null },
    // Room for the containers random Creates make, and no cooling-off after destroy.
    network: { pool_network: '10.254.0.0/20', release_delay: 0 },
  });
  c = await d.client();
  scratch = mkdtempSync(join(tmpdir(), 'warden-fuzz-'));
  // A small tree a random CopyIn may copy, and the only place CopyOut may write.
  mkdirSync(join(scratch, 'in', 'sub'), { recursive: true });
  writeFileSync(join(scratch, 'in', 'a.txt'), 'a');
  writeFileSync(join(scratch, 'in', 'sub', 'b.txt'), 'b');
  mkdirSync(join(scratch, 'out'));
  await resetContainers();
  baseRss = rssBytes(d.pid);
});

afterAll(async () => {
  // FUZZ_LOG=path keeps the daemon's log for a look at what the requests caused.
  if (process.env.FUZZ_LOG && d) writeFileSync(process.env.FUZZ_LOG, d.log());
  await c?.close().catch(() => {});
  await d?.cleanup();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Destroy every container, then create the fixture the random requests aim at. */
async function resetContainers(): Promise<void> {
  for (const handle of (await c.list()).handles ?? []) {
    // A random grace_time of 0 may have the daemon destroy it meanwhile.
    await c.destroy({ handle }).catch((err: Error) => expect(err.message).toBe('unknown handle'));
  }
  expect((await c.list()).handles ?? []).toEqual([]);
  await c.create({ handle: FIXTURE });
}

/** After a batch: the daemon lives, answers Ping on a new connection, and its memory is sane. */
async function checkDaemon(): Promise<void> {
  expect(isRunning(d)).toBe(true);
  await assertHealthy(d);
  expect(rssBytes(d.pid) - baseRss).toBeLessThan(300 * 1024 * 1024);
}

/**
 * Send bytes on a fresh connection, then end our side. The daemon must close
 * the connection (it answers EOF by closing) within the time, and every reply
 * it sent before must be a well-formed frame.
 */
async function sendAndEnd(bytes: Uint8Array): Promise<Reply[]> {
  const r = await RawConn.connect(d.socket);
  try {
    await r.write(bytes).catch(() => {}); // the daemon may close first
    r.socket.end();
    const replies: Reply[] = [];
    for (;;) {
      const o = await r.next(5000);
      if (o.kind === 'closed') break;
      if (o.kind === 'timeout') throw new Error('the daemon neither answered nor closed the connection');
      replies.push(o.reply);
    }
    if (r.protocolError) throw r.protocolError;
    return replies;
  } finally {
    r.destroy();
  }
}

/**
 * What the daemon may answer to bytes sent on one connection: one reply per whole
 * frame, in order, each either an ErrorResponse or the frame's own type (a Stream
 * may send several, the last with exit_status), up to the first frame whose
 * envelope does not decode or the first bad framing; nothing after that. Replies
 * not yet written when our end of the connection closes are dropped (as the
 * original's did), so what came is a prefix of that.
 */
function expectReplies(bytes: Uint8Array, replies: Reply[]): void {
  let frames: Buffer[];
  try {
    frames = new FrameDecoder(MAX_FRAME_BYTES).push(Buffer.from(bytes));
  } catch (err) {
    frames = err instanceof FramingError ? err.frames : [];
  }
  const answered: string[] = [];
  for (const f of frames) {
    let type: string;
    try {
      type = decodeEnvelope(f).type;
    } catch (err) {
      if (/^Unknown request type: /.test((err as Error).message)) {
        answered.push('Error');
        continue;
      }
      break; // undecodable: the connection closes, later frames are not served
    }
    answered.push(type);
  }
  const got = [...replies];
  const seen: string[] = [];
  for (const want of answered) {
    const r = got.shift();
    if (r === undefined) break;
    expect(['Error', want], `reply to ${want} after ${seen.join(' ')}`).toContain(r.type);
    seen.push(r.type);
    // A Stream answers with frames until one carries the exit status.
    if (r.type === 'Stream') {
      for (let last: Reply | undefined = r; last !== undefined && (last.body.exit_status ?? null) === null; ) {
        last = got[0]?.type === 'Stream' ? got.shift() : undefined;
      }
    }
  }
  expect(got).toEqual([]);
}

// ---- real frames to mutate -------------------------------------------------

const VALID_FRAMES: Buffer[] = [
  encodeRequest('Ping', {}),
  encodeRequest('List', {}),
  encodeRequest('Echo', { message: 'hello fuzz' }),
  encodeRequest('Info', { handle: FIXTURE }),
  encodeRequest('Info', { handle: 'nope' }),
  encodeRequest('Link', { handle: FIXTURE, job_id: 4242 }),
  encodeRequest('Stream', { handle: FIXTURE, job_id: 4242 }),
  encodeRequest('NetOut', { handle: FIXTURE, network: '10.0.0.0/8', port: 80, protocol: 1 }),
  encodeRequest('NetIn', { handle: 'nope', host_port: 1234, container_port: 80 }),
  encodeRequest('LimitMemory', { handle: FIXTURE, limit_in_bytes: 1 << 20 }),
  encodeRequest('LimitDisk', { handle: FIXTURE, byte_limit: 1, inode_hard: 2 }),
  encodeRequest('LimitBandwidth', { handle: 'nope', rate: 100, burst: 200 }),
  encodeRequest('LimitCpu', { handle: FIXTURE, limit_in_shares: 10 }),
  encodeRequest('CopyIn', { handle: 'nope', src_path: '/nonexistent/a', dst_path: '/b' }),
  encodeRequest('CopyOut', { handle: 'nope', src_path: '/a', dst_path: '/nonexistent/b', owner: 'x:y' }),
  encodeRequest('Spawn', { handle: 'nope', script: 'true', rlimits: { nofile: 100, as: 1 << 30 } }),
  encodeRequest('Run', { handle: 'nope', script: 'true', privileged: true, discard_output: true, log_tag: 't' }),
  encodeRequest('Stop', { handle: 'nope', kill: true, background: true }),
  encodeRequest('Destroy', { handle: 'nope' }),
  encodeRequest('Create', {
    handle: 'fuzz-created',
    grace_time: 0,
    network: '10.254.1.0',
    bind_mounts: [{ src_path: '/nonexistent/src', dst_path: '/dst', mode: 1 }],
  }),
];

const frameIndex = fc.integer({ min: 0, max: VALID_FRAMES.length - 1 });

/** A few real frames back to back. */
const validStream = fc.array(frameIndex, { minLength: 1, maxLength: 4 }).map((ix) => Buffer.concat(ix.map((i) => VALID_FRAMES[i])));

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'duplicate'; at: number; length: number };

const position = fc.nat({ max: 10_000 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('flip' as const), at: position, xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('set' as const), at: position, value: fc.constantFrom(0, 0x0a, 0x0d, 0x30, 0x39, 0x7f, 0x80, 0xff) }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: position, length: fc.integer({ min: 1, max: 32 }) }),
);

function mutate(input: Buffer, m: Mutation): Buffer {
  const at = input.length === 0 ? 0 : m.at % input.length;
  switch (m.kind) {
    case 'truncate':
      return input.subarray(0, at);
    case 'flip': {
      const out = Buffer.from(input);
      out[at] ^= m.xor;
      return out;
    }
    case 'set': {
      const out = Buffer.from(input);
      out[at] = m.value;
      return out;
    }
    case 'insert':
      return Buffer.concat([input.subarray(0, at), m.bytes, input.subarray(at)]);
    case 'delete':
      return Buffer.concat([input.subarray(0, at), input.subarray(at + m.length)]);
    case 'duplicate':
      return Buffer.concat([input.subarray(0, at + m.length), input.subarray(at)]);
  }
}

/** The envelope and payload of a frame made by encodeRequest. */
function unframe(frame: Buffer): { type: number; payload: Buffer } {
  const envelope = frame.subarray(frame.indexOf('\r\n') + 2, frame.length - 2);
  const msg = messageType('Message').decode(envelope) as unknown as { type: number; payload: Uint8Array };
  return { type: msg.type, payload: Buffer.from(msg.payload) };
}

// ---- random well-formed requests ------------------------------------------

/** Scripts the random Spawn and Run requests may run: they are real processes on this host. */
const SAFE_SCRIPTS = ['true', 'false', 'echo hi', 'echo err >&2; exit 3', 'sleep 0.05', 'exit 255', 'printf "\\xff\\x00"', ''];

const weirdString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 8 }),
  fc.constantFrom('', ' ', '..', '../..', '/', '\u0000', 'a'.repeat(300), FIXTURE, 'nope', '10.254.0.0', '10.254.0.4/30',
    '10.254.255.252', '999.1.1.1', '0.0.0.0/0', '1:2', '2:1', '0:65536', '-1', '\u{1F600}', 'root:root', 'nobody'),
);

/** A file name that stays inside a folder. */
const safeName = fc.stringMatching(/^[a-z0-9]{1,12}$/);

/**
 * Strings by field, for the request they are in. Host paths are the danger:
 * the daemon runs as root, CopyIn reads a host src_path, CopyOut writes a host
 * dst_path (and chowns it), Create checks bind mount sources and a rootfs.
 * Those stay inside the scratch folder; container paths may be anything.
 */
function stringArb(field: protobuf.Field, request: RequestName): fc.Arbitrary<string> {
  // Built at load, before beforeAll made the scratch folder: join in map(), when values are drawn.
  const inScratch = (sub: string) => safeName.map((n) => join(scratch, sub, n));
  switch (`${request}.${field.name}`) {
    case 'CopyIn.src_path':
      return fc.oneof(inScratch('missing'), fc.constantFrom('', '/').map((slash) => join(scratch, 'in') + slash));
    case 'CopyIn.dst_path':
    case 'CopyOut.src_path':
      // Inside the container; a way out would be a bug the copy tests look for.
      return fc.oneof(safeName.map((n) => `/${n}`), weirdString.map((w) => `/${w.replace(/\./g, '')}`), fc.constantFrom('/', '', '.'));
    case 'CopyOut.dst_path':
      return inScratch('out');
    case 'Create.src_path': // bind mounts
      return fc.oneof(inScratch('missing'), fc.constantFrom('', 'relative', '/nonexistent/src'));
    case 'Create.dst_path':
      return fc.oneof(safeName.map((n) => `/${n}`), weirdString);
    case 'Create.rootfs':
      return fc.oneof(fc.constant(''), inScratch('no-rootfs'));
  }
  switch (field.name) {
    case 'handle':
      return fc.oneof({ weight: 3, arbitrary: fc.constant(FIXTURE) }, { weight: 1, arbitrary: weirdString });
    case 'script':
      return fc.constantFrom(...SAFE_SCRIPTS);
    case 'src_path':
    case 'dst_path':
    case 'rootfs':
      throw new Error(`no safe arbitrary for ${request}.${field.name}`);
    default:
      return weirdString;
  }
}

const uint32 = fc.oneof(fc.constantFrom(0, 1, 22, 80, 65535, 65536, 2 ** 31, 2 ** 32 - 1), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
const uint64 = fc.oneof(fc.constantFrom(0, 1, 2 ** 32, 2 ** 53 - 1, 1 << 20), fc.maxSafeNat());
const int32 = fc.oneof(fc.constantFrom(-1, 0, 255, 256, -(2 ** 31), 2 ** 31 - 1), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));

function scalarArb(field: protobuf.Field, request: RequestName, depth: number): fc.Arbitrary<unknown> {
  field.resolve();
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Enum) {
    // Known values mostly, and now and then a number the enum does not have.
    const known = Object.values(rt.values);
    return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: 9 }) });
  }
  if (rt instanceof protobuf.Type) return messageArb(rt, request, depth + 1);
  switch (field.type) {
    case 'string':
      return stringArb(field, request);
    case 'bytes':
      return fc.uint8Array({ maxLength: 16 });
    case 'bool':
      return fc.boolean();
    case 'uint32':
      // Timeouts and ports: mostly small, so a random grace_time does not pin a container.
      return field.name === 'grace_time' ? fc.constantFrom(0, 1, 3600, 2 ** 32 - 1) : uint32;
    case 'uint64':
      return uint64;
    case 'int32':
      return int32;
    default:
      throw new Error(`no arbitrary for ${field.type} (${field.fullName})`);
  }
}

function messageArb(type: protobuf.Type, request: RequestName, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  const required: string[] = [];
  for (const field of type.fieldsArray) {
    const one = scalarArb(field, request, depth);
    model[field.name] = field.repeated ? fc.array(one, { maxLength: depth > 0 ? 1 : 3 }) : one;
    if (field.required) required.push(field.name);
  }
  return fc.record(model, { requiredKeys: required as never[] }) as fc.Arbitrary<Record<string, unknown>>;
}

interface RandomRequest {
  type: RequestName;
  body: Record<string, unknown>;
}

const requestArb: fc.Arbitrary<RandomRequest> = fc.oneof(
  ...REQUEST_NAMES.map((type) => messageArb(messageType(`${type}Request`), type).map((body) => ({ type, body }))),
);

/** Encode without protobufjs's verify, so enum values it does not know go out too. */
function encodeRandom(r: RandomRequest): Buffer {
  const t = messageType(`${r.type}Request`);
  return rawFrame(MessageType[r.type], t.encode(r.body).finish());
}

/** The text a string field carries after a UTF-8 round trip. */
const utf8 = (s: string) => Buffer.from(s, 'utf8').toString('utf8');

// FUZZ_RUNS scales every property's runs (default 2 keeps the file well under 30 s).
const RUNS = Number(process.env.FUZZ_RUNS ?? 2);

describe('fuzz', () => {
  it('random bytes: an error reply or a close, never a crash', async () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 512 }),
      // Something that looks like a header, then anything.
      fc.tuple(fc.nat({ max: 70_000 }), fc.constantFrom('\r\n', '\n', '\r', ''), fc.uint8Array({ maxLength: 256 })).map(
        ([n, sep, rest]) => Buffer.concat([Buffer.from(`${n}${sep}`), rest]),
      ),
      // A correct frame around random envelope bytes.
      fc.uint8Array({ maxLength: 256 }).map((b) => frameBytes(b)),
    );
    await fc.assert(
      fc.asyncProperty(bytes, async (b) => {
        expectReplies(b, await sendAndEnd(b));
      }),
      { numRuns: 150 * RUNS },
    );
    await checkDaemon();
  });

  it('truncated and mutated real frames', async () => {
    await fc.assert(
      fc.asyncProperty(validStream, fc.array(mutation, { minLength: 1, maxLength: 3 }), async (input, ms) => {
        const bytes = ms.reduce(mutate, input);
        expectReplies(bytes, await sendAndEnd(bytes));
      }),
      { numRuns: 200 * RUNS },
    );
    await checkDaemon();
    await resetContainers();
  });

  it('mutated request bodies in intact frames: one reply each, in order, and the connection lives', async () => {
    const bodyMutation = fc.tuple(frameIndex, fc.array(mutation, { minLength: 1, maxLength: 3 }));
    await fc.assert(
      fc.asyncProperty(fc.array(bodyMutation, { minLength: 1, maxLength: 5 }), async (items) => {
        const sent = items.map(([i, ms]) => {
          const { type, payload } = unframe(VALID_FRAMES[i]);
          return { type, frame: rawFrame(type, ms.reduce(mutate, payload)) };
        });
        const r = await RawConn.connect(d.socket);
        try {
          await r.write(Buffer.concat([...sent.map((s) => s.frame), encodeRequest('Echo', { message: 'end' })]));
          for (const s of sent) {
            let reply = await r.reply(10_000);
            // A mutated Stream on a live job may send output frames before its last one.
            while (reply.type === 'Stream' && reply.body.exit_status === undefined) reply = await r.reply(10_000);
            if (reply.type !== 'Error') expect(MessageType[reply.type]).toBe(s.type);
          }
          expect(await r.reply()).toEqual({ type: 'Echo', body: { message: 'end' } });
        } finally {
          r.destroy();
        }
        await resetContainers();
      }),
      { numRuns: 40 * RUNS },
    );
    await checkDaemon();
  });

  it('random well-formed requests of every type: one reply each, in order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(requestArb, { minLength: 1, maxLength: 6 }), async (requests) => {
        const r = await RawConn.connect(d.socket);
        try {
          await r.write(Buffer.concat([...requests.map(encodeRandom), encodeRequest('Ping', {})]));
          for (const req of requests) {
            let reply = await r.reply(15_000);
            while (req.type === 'Stream' && reply.type === 'Stream' && reply.body.exit_status === undefined) {
              reply = await r.reply(15_000);
            }
            if (reply.type === 'Error') {
              expect(typeof reply.body.message).toBe('string');
              continue;
            }
            expect(reply.type).toBe(req.type);
            if (req.type === 'Echo') expect(reply.body.message).toBe(utf8(req.body.message as string));
          }
          expect(await r.reply(15_000)).toEqual({ type: 'Ping', body: {} });
        } finally {
          r.destroy();
        }
        await resetContainers();
      }),
      { numRuns: 60 * RUNS },
    );
    await checkDaemon();
  });

  it('wrote nothing on the host outside the test folders', () => {
    expect(readdirSync('/').sort()).toEqual(rootBefore);
  });

  it('logged no internal error (a bug in the daemon rather than in the request)', () => {
    // Errors a request causes are answered and logged; a TypeError and its kin
    // is a daemon bug that a request only happened to reach.
    const internal = d
      .log()
      .split('\n')
      .filter((l) => /uncaught|unhandled|TypeError|RangeError|ReferenceError|SyntaxError|Cannot read prop|is not a function/i.test(l));
    expect(internal).toEqual([]);
  });
});
