// Encoding and decoding of Warden messages with protobufjs, from warden.proto
// (loaded from its JSON descriptor, warden.json).
// Layer: src/protocol/ is the wire format only (frames, messages, uint64s),
// used by the daemon and the client alike.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import {
  MessageType,
  type MessageTypeId,
  type MessageTypeName,
  type RequestMap,
  type RequestName,
  type ResponseMap,
} from './types.ts';
import { u64 } from './u64.ts';

// uint64 fields are read exactly (protobufjs uses the `long` package it ships
// with) and handed out as U64: a number while it is a safe integer, a bigint
// above (see types.ts). A cgroup's "unlimited" 9223372036854771712 must reach
// the client as that number, not as 9223372036854772000.
interface LongClass {
  fromString(text: string, unsigned: boolean): object;
  isLong(v: unknown): boolean;
}
const loaded = protobuf.util.Long as unknown as LongClass | undefined;
if (!loaded) throw new Error('protobufjs has no Long support: uint64 fields would lose precision');
const Long: LongClass = loaded;

// Read once at module load (startup), never on a request path: warden.proto as
// protobufjs's descriptor (scripts/lib/proto-json.ts writes it), which loads in a
// fifth of the time parsing the .proto took at every daemon start.
const root = protobuf.Root.fromJSON(JSON.parse(readFileSync(join(import.meta.dirname, 'warden.json'), 'utf8')) as protobuf.INamespace);
root.resolveAll();

const envelope = root.lookupType('warden.Message');
// The same envelope with `type` read as a plain int32 (an enum's wire format).
// protobufjs 8 treats proto2 enums as closed and drops a value it does not
// know, so decoding with `envelope` turned an unknown type number into
// "missing required 'type'" and the connection was closed, instead of the
// "Unknown request type: N" ErrorResponse after which the connection carries on.
const rawEnvelope = new protobuf.Type('RawMessage')
  .add(new protobuf.Field('type', 1, 'int32', 'required'))
  .add(new protobuf.Field('payload', 2, 'bytes', 'required'));
new protobuf.Root().define('warden').add(rawEnvelope);
rawEnvelope.root.resolveAll();
const typeNameById = new Map<number, MessageTypeName>(
  Object.entries(MessageType).map(([name, id]) => [id, name as MessageTypeName]),
);

/** Fields declared `bytes` on our side (job output) that callers may hand us as text. */
const BYTES_FIELDS: Record<string, readonly string[]> = {
  LinkResponse: ['stdout', 'stderr'],
  RunResponse: ['stdout', 'stderr'],
  StreamResponse: ['data'],
};

/** A frame or message that does not decode: the client's mistake (code `invalid`). */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
  readonly code = 'invalid';
}

export type MessageKind = 'Request' | 'Response';

const typeCache = new Map<string, protobuf.Type>();
export function messageType(name: string): protobuf.Type {
  let t = typeCache.get(name);
  if (!t) {
    t = root.lookupType(`warden.${name}`);
    typeCache.set(name, t);
  }
  return t;
}

export function typeName(id: number): MessageTypeName | undefined {
  return typeNameById.get(id);
}

/** The protobuf message name carried by a frame of this type and direction. */
export function bodyTypeName(type: MessageTypeName, kind: MessageKind): string {
  return type === 'Error' ? 'ErrorResponse' : `${type}${kind}`;
}

function normalizeBytes(name: string, body: Record<string, unknown>): Record<string, unknown> {
  let out = body;
  for (const f of BYTES_FIELDS[name] ?? []) {
    const v = body[f];
    if (typeof v === 'string') {
      if (out === body) out = { ...body };
      out[f] = Buffer.from(v, 'utf8');
    }
  }
  return out;
}

/** Plain objects and arrays are walked; bytes (Uint8Array) and Long values are leaves. */
function isContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  return typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !Long.isLong(v);
}

/** bigint values (uint64 above 2^53) become Long, the form protobufjs encodes exactly; copies only what changes. */
function bigintsToLongs(v: unknown): unknown {
  if (typeof v === 'bigint') return Long.fromString(v.toString(), true);
  if (!isContainer(v)) return v;
  let out: Record<string, unknown> | unknown[] | undefined;
  for (const [k, x] of Object.entries(v)) {
    const y = bigintsToLongs(x);
    if (y !== x) {
      out ??= Array.isArray(v) ? [...v] : { ...v };
      (out as Record<string, unknown>)[k] = y;
    }
  }
  return out ?? v;
}

/** Decoded uint64 values arrive as bigint; those a double holds exactly become numbers (in place). */
function safeBigintsToNumbers(v: unknown): unknown {
  if (typeof v === 'bigint') return u64(v);
  if (!isContainer(v)) return v;
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) o[k] = safeBigintsToNumbers(o[k]);
  return v;
}

/** Encode a message body; throws ProtocolError when a required field is missing or mistyped. */
export function encodeBody(name: string, body: object): Uint8Array {
  const t = messageType(name);
  const obj = bigintsToLongs(normalizeBytes(name, body as Record<string, unknown>)) as Record<string, unknown>;
  const problem = t.verify(obj);
  if (problem) throw new ProtocolError(`${name}: ${problem}`);
  return t.encode(obj).finish();
}

/**
 * Decode a message body into a plain object holding only the fields that were
 * set: protobufjs message instances answer unset fields with their defaults
 * from the prototype, which would make an unset rlimit look like a limit of 0.
 */
export function decodeBody<T = Record<string, unknown>>(name: string, payload: Uint8Array): T {
  try {
    const t = messageType(name);
    return safeBigintsToNumbers(t.toObject(t.decode(payload), { defaults: false, longs: BigInt, enums: Number })) as T;
  } catch (err) {
    throw new ProtocolError(`cannot decode ${name}: ${(err as Error).message}`);
  }
}

/** Wrap an encoded body in the Message envelope and the `<len>\r\n...\r\n` framing. */
export function frameEnvelope(type: MessageTypeId, payload: Uint8Array): Buffer {
  const inner = envelope.encode({ type, payload }).finish();
  const head = Buffer.from(`${inner.length}\r\n`, 'latin1');
  const out = Buffer.allocUnsafe(head.length + inner.length + 2);
  head.copy(out, 0);
  out.set(inner, head.length);
  out[out.length - 2] = 13;
  out[out.length - 1] = 10;
  return out;
}

export function encodeFrame(type: MessageTypeName, kind: MessageKind, body: object): Buffer {
  return frameEnvelope(MessageType[type], encodeBody(bodyTypeName(type, kind), body));
}

/** Frames of replies with an empty body (Ping, Stop, ...), encoded once per type. */
const emptyResponseFrames = new Map<MessageTypeName, Buffer>();

/**
 * encodeFrame for a reply the daemon writes: an empty body's frame is the same bytes
 * every time, so it is encoded once and shared (sockets only read it; callers that
 * may change a frame's bytes use encodeFrame). Ping probes come by the thousand.
 */
export function encodeResponseFrame(type: MessageTypeName, body: object): Buffer {
  for (const _ in body) return encodeFrame(type, 'Response', body);
  let frame = emptyResponseFrames.get(type);
  if (!frame) emptyResponseFrames.set(type, (frame = encodeFrame(type, 'Response', body)));
  return frame;
}

export function encodeRequest<K extends RequestName>(type: K, body: RequestMap[K]): Buffer {
  return encodeFrame(type, 'Request', body);
}

export function encodeResponse<K extends RequestName>(type: K, body: ResponseMap[K]): Buffer {
  return encodeFrame(type, 'Response', body);
}

export function encodeError(message: string, data?: string): Buffer {
  return encodeFrame('Error', 'Response', data === undefined ? { message } : { message, data });
}

export interface Envelope {
  type: MessageTypeName;
  payload: Uint8Array;
}

/** Decode the Message envelope of one frame's bytes. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  let msg: { type: number; payload: Uint8Array };
  try {
    msg = rawEnvelope.decode(bytes) as unknown as { type: number; payload: Uint8Array };
  } catch (err) {
    throw new ProtocolError(`cannot decode Message: ${(err as Error).message}`);
  }
  const type = typeNameById.get(msg.type);
  // The words of the original's protocol library (which then closed the connection).
  if (!type) throw new ProtocolError(`Unknown request type: ${msg.type}`);
  return { type, payload: msg.payload };
}
