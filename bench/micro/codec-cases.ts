// Codec cases: whole frames encoded and decoded the way the daemon and the
// client do it, for the messages that dominate traffic.
import { bodyTypeName, decodeBody, decodeEnvelope, encodeRequest, encodeResponse, type MessageKind } from '../../src/protocol/codec.ts';
import { FrameDecoder } from '../../src/protocol/framing.ts';
import type { Case, Operation } from './measure.ts';
import { ECHO_MESSAGE, SPAWN_REQUEST, STREAM_RESPONSE } from './fixtures.ts';

interface Message {
  label: string;
  kind: MessageKind;
  encode: () => Buffer;
}

const MESSAGES: Message[] = [
  { label: 'Ping request', kind: 'Request', encode: () => encodeRequest('Ping', {}) },
  { label: 'Echo request 1 KiB', kind: 'Request', encode: () => encodeRequest('Echo', { message: ECHO_MESSAGE }) },
  { label: 'Spawn request + rlimits', kind: 'Request', encode: () => encodeRequest('Spawn', SPAWN_REQUEST) },
  { label: 'StreamResponse 64 KiB', kind: 'Response', encode: () => encodeResponse('Stream', STREAM_RESPONSE) },
];

/** The least work that yields the same bytes: join the frame's three parts already encoded. */
function concatBaseline(frame: Buffer): Operation {
  const headLength = frame.indexOf('\r\n') + 2;
  const head = Buffer.from(frame.subarray(0, headLength));
  const inner = Buffer.from(frame.subarray(headLength, frame.length - 2));
  const crlf = Buffer.from('\r\n');
  const parts = [head, inner, crlf];
  return { name: 'Buffer.concat of its parts', fn: () => Buffer.concat(parts, frame.length) };
}

/** The least work that hands out the frame's bytes as a buffer of one's own: copy them. */
function copyBaseline(frame: Buffer): Operation {
  return { name: 'Buffer.from copy', fn: () => Buffer.from(frame) };
}

function decodeOperation(frame: Buffer, kind: MessageKind): () => unknown {
  const decoder = new FrameDecoder();
  return () => {
    const [body] = decoder.push(frame);
    const { type, payload } = decodeEnvelope(body);
    return decodeBody(bodyTypeName(type, kind), payload);
  };
}

export function codecCases(): Case[] {
  const encode: Case[] = [];
  const decode: Case[] = [];
  for (const m of MESSAGES) {
    const frame = m.encode();
    encode.push({ group: 'encode', name: m.label, bytes: frame.length, fn: m.encode, baseline: concatBaseline(frame) });
    decode.push({
      group: 'decode',
      name: m.label,
      bytes: frame.length,
      fn: decodeOperation(frame, m.kind),
      baseline: copyBaseline(frame),
    });
  }
  return [...encode, ...decode];
}
