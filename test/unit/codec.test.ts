import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  bodyTypeName,
  decodeBody,
  decodeEnvelope,
  encodeBody,
  encodeFrame,
  encodeResponseFrame,
  messageType,
} from '../../src/protocol/codec.ts';
import { FrameDecoder } from '../../src/protocol/framing.ts';
import { MessageType, type MessageTypeName } from '../../src/protocol/types.ts';

interface Vector {
  name: string;
  message: string;
  fields: Record<string, unknown>;
  payload_hex: string;
  frame_hex: string;
}

const vectors: Vector[] = JSON.parse(
  readFileSync(new URL('../fixtures/original-frames.json', import.meta.url), 'utf8'),
).cases;

/** Enums are given by name in the vectors; map them to numbers via the proto. */
function withEnumNumbers(message: string, fields: Record<string, unknown>): Record<string, unknown> {
  const t = messageType(message);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    const f = t.fields[k];
    if (!f) throw new Error(`${message} has no field ${k}`);
    f.resolve();
    if (f.resolvedType && 'values' in f.resolvedType && typeof v === 'string') {
      out[k] = (f.resolvedType as { values: Record<string, number> }).values[v];
    } else if (f.resolvedType && Array.isArray(v)) {
      out[k] = v.map((x) => withEnumNumbers(f.resolvedType!.name === f.type ? `${f.resolvedType!.fullName.slice(8)}` : f.type, x));
    } else if (f.resolvedType && typeof v === 'object' && v !== null) {
      out[k] = withEnumNumbers(f.resolvedType.fullName.slice(8), v as Record<string, unknown>);
    } else {
      out[k] = v;
    }
  }
  return out;
}

function typeOf(message: string): { type: MessageTypeName; kind: 'Request' | 'Response' } {
  if (message === 'ErrorResponse') return { type: 'Error', kind: 'Response' };
  const m = /^(.*)(Request|Response)$/.exec(message)!;
  return { type: m[1] as MessageTypeName, kind: m[2] as 'Request' | 'Response' };
}

function plain(v: unknown): unknown {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

describe('golden frames of the original protocol library', () => {
  it('has the vectors', () => expect(vectors.length).toBeGreaterThanOrEqual(20));

  for (const v of vectors) {
    it(`encodes ${v.name} byte for byte`, () => {
      const { type, kind } = typeOf(v.message);
      const fields = withEnumNumbers(v.message, v.fields);
      expect(Buffer.from(encodeBody(v.message, fields)).toString('hex')).toBe(v.payload_hex);
      expect(encodeFrame(type, kind, fields).toString('hex')).toBe(v.frame_hex);
    });

    it(`decodes ${v.name} to the same fields`, () => {
      const { type, kind } = typeOf(v.message);
      const frames = new FrameDecoder().push(Buffer.from(v.frame_hex, 'hex'));
      expect(frames).toHaveLength(1);
      const env = decodeEnvelope(frames[0]);
      expect(env.type).toBe(type);
      expect(MessageType[env.type]).toBe(MessageType[type]);
      const body = decodeBody(bodyTypeName(type, kind), env.payload);
      const asObject = messageType(v.message).toObject(body as never, { enums: String });
      expect(plain(asObject)).toEqual(plain(v.fields));
    });
  }
});

describe('FrameDecoder', () => {
  const frames = vectors.map((v) => Buffer.from(v.frame_hex, 'hex'));
  const all = Buffer.concat(frames);

  it('decodes frames split at every byte boundary', () => {
    const d = new FrameDecoder();
    const out: Buffer[] = [];
    for (let i = 0; i < all.length; i++) out.push(...d.push(all.subarray(i, i + 1)));
    expect(out.length).toBe(frames.length);
    expect(d.pendingBytes).toBe(0);
  });

  it('decodes many frames merged in one read', () => {
    expect(new FrameDecoder().push(all).length).toBe(frames.length);
  });

  it('rejects a non-numeric length', () => {
    expect(() => new FrameDecoder().push(Buffer.from('abc\r\n'))).toThrow(/not a decimal/);
  });

  it('rejects an oversized frame before reading its body', () => {
    expect(() => new FrameDecoder(1024).push(Buffer.from('1025\r\n'))).toThrow(/exceeds the limit/);
    expect(() => new FrameDecoder(1024).push(Buffer.from('999999'))).toThrow(/more than 4 digits/);
  });

  it('rejects a frame without its trailing CRLF', () => {
    expect(() => new FrameDecoder().push(Buffer.from('2\r\nabXY'))).toThrow(/not followed/);
  });

  it('rejects an empty length', () => {
    expect(() => new FrameDecoder().push(Buffer.from('\r\n'))).toThrow();
  });
});

describe('message decoding', () => {
  it('names a missing required field', () => {
    expect(() => decodeBody('EchoRequest', Buffer.alloc(0))).toThrow(/missing required 'message'/);
  });
  it('refuses to encode a response without its required field', () => {
    expect(() => encodeBody('CreateResponse', {})).toThrow(/handle/);
  });
  it('passes non-UTF-8 job output through unchanged', () => {
    const bytes = Buffer.from([0xff, 0xfe, 0xe2, 0x9c]);
    const enc = encodeBody('StreamResponse', { name: 'stdout', data: bytes });
    const dec = decodeBody<{ data: Buffer }>('StreamResponse', enc);
    expect(Buffer.from(dec.data).equals(bytes)).toBe(true);
  });
});

describe('reply frames', () => {
  it('encodes an empty reply once per type and reuses its bytes', () => {
    const first = encodeResponseFrame('Ping', {});
    expect(first.equals(encodeFrame('Ping', 'Response', {}))).toBe(true);
    expect(encodeResponseFrame('Ping', {})).toBe(first);
    expect(encodeResponseFrame('Stop', {}).equals(encodeFrame('Stop', 'Response', {}))).toBe(true);
    expect(encodeResponseFrame('Stop', {})).not.toBe(first);
  });

  it('encodes a reply with fields afresh every time', () => {
    const a = encodeResponseFrame('Echo', { message: 'a' });
    const b = encodeResponseFrame('Echo', { message: 'b' });
    expect(a.equals(encodeFrame('Echo', 'Response', { message: 'a' }))).toBe(true);
    expect(b.equals(encodeFrame('Echo', 'Response', { message: 'b' }))).toBe(true);
  });
});
