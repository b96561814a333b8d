// A Stream response that carries one chunk of job output, framed without copying
// the chunk: the frame is a small head (the `<len>\r\n` line, the Message
// envelope's fields and StreamResponse's name and the data field's tag and
// length), the chunk itself, and `\r\n`. Written together (cork, or writev), the
// bytes are exactly what encodeFrame('Stream', 'Response', { name, data }) gives,
// without its three copies of the chunk.
import { MessageType } from './types.ts';

const TAIL = Buffer.from('\r\n', 'latin1');

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/** The head and tail of the frame of StreamResponse { name, data } (data not included). */
export function streamDataFrame(name: string, dataLength: number): { head: Buffer; tail: Buffer } {
  const nameBytes = Buffer.from(name, 'utf8');
  // StreamResponse: field 1 (name, length-delimited), field 2 (data, length-delimited).
  const body = 1 + varintLength(nameBytes.length) + nameBytes.length + 1 + varintLength(dataLength) + dataLength;
  // Message: field 1 (type, varint), field 2 (payload, length-delimited).
  const type = MessageType.Stream;
  const inner = 1 + varintLength(type) + 1 + varintLength(body) + body;
  const line = Buffer.from(`${inner}\r\n`, 'latin1');
  const head = Buffer.allocUnsafe(line.length + inner - dataLength);
  let at = line.copy(head, 0);
  head[at++] = 0x08;
  at = writeVarint(head, at, type);
  head[at++] = 0x12;
  at = writeVarint(head, at, body);
  head[at++] = 0x0a;
  at = writeVarint(head, at, nameBytes.length);
  at += nameBytes.copy(head, at);
  head[at++] = 0x12;
  writeVarint(head, at, dataLength);
  return { head, tail: TAIL };
}
