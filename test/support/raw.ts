// A raw connection to the daemon for tests that send bytes the client library
// never would: it writes whatever it is given and decodes whatever comes back,
// frame by frame, so a test can tell an ErrorResponse from a closed connection.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { bodyTypeName, decodeBody, decodeEnvelope, encodeRequest, frameEnvelope } from '../../src/protocol/codec.ts';
import { FrameDecoder } from '../../src/protocol/framing.ts';
import { MessageType, type MessageTypeName, type RequestMap, type RequestName } from '../../src/protocol/types.ts';
import type { TestDaemon } from './daemon.ts';

export interface Reply {
  type: MessageTypeName;
  body: Record<string, unknown>;
}

/** What a connection did next: a reply, the daemon closed it, or nothing within the time. */
export type Outcome = { kind: 'reply'; reply: Reply } | { kind: 'closed' } | { kind: 'timeout' };

export class RawConn {
  readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private readonly replies: Reply[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  /** A reply that could not be decoded: the daemon broke the protocol. */
  protocolError: Error | undefined;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.decoder.push(chunk)) {
          const { type, payload } = decodeEnvelope(frame);
          const name = type === 'Error' ? 'ErrorResponse' : bodyTypeName(type, 'Response');
          this.replies.push({ type, body: decodeBody(name, payload) });
        }
      } catch (err) {
        this.protocolError = err as Error;
        socket.destroy();
      }
      this.wake();
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  static connect(path: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(path);
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawConn(s));
      });
    });
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Write bytes; resolves when the kernel took them (or rejects when the socket is gone). */
  write(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed) {
        reject(new Error('socket destroyed'));
        return;
      }
      this.socket.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  send<K extends RequestName>(type: K, body: RequestMap[K]): Promise<void> {
    return this.write(encodeRequest(type, body));
  }

  /** The next reply, the close, or a timeout. */
  async next(timeoutMs = 5000): Promise<Outcome> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.replies.shift();
      if (reply) return { kind: 'reply', reply };
      if (this.protocolError) throw this.protocolError;
      if (this.ended) return { kind: 'closed' };
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'timeout' };
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiter = undefined;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = undefined;
          resolve();
        };
      });
    }
  }

  /** The next reply, which must come; throws on close or timeout. */
  async reply(timeoutMs = 5000): Promise<Reply> {
    const o = await this.next(timeoutMs);
    if (o.kind !== 'reply') throw new Error(`expected a reply, got ${o.kind}`);
    return o.reply;
  }

  /** Send one request and wait for its reply. */
  async call<K extends RequestName>(type: K, body: RequestMap[K], timeoutMs = 5000): Promise<Reply> {
    await this.send(type, body);
    return this.reply(timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    this.waiter?.();
  }
}

/** A whole frame around an arbitrary envelope payload (type number and body bytes). */
export function rawFrame(typeId: number, body: Uint8Array): Buffer {
  return frameEnvelope(typeId as (typeof MessageType)[MessageTypeName], body);
}

/** `<len>\r\n<bytes>\r\n` around any bytes, envelope or not. */
export function frameBytes(bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${bytes.length}\r\n`, 'latin1'), bytes, Buffer.from('\r\n', 'latin1')]);
}

/** Resident set size of a process in bytes, from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

export function isRunning(d: TestDaemon): boolean {
  const p = d.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null) return false;
  try {
    process.kill(p.pid!, 0);
    return true;
  } catch {
    return false;
  }
}

/** The daemon process is alive and answers Ping on a fresh connection, within timeoutMs. */
export async function assertHealthy(d: TestDaemon, timeoutMs = 5000): Promise<void> {
  if (!isRunning(d)) throw new Error(`daemon is not running; log tail:\n${d.log().slice(-4000)}`);
  const c = await RawConn.connect(d.socket);
  try {
    const r = await c.call('Ping', {}, timeoutMs);
    if (r.type !== 'Ping') throw new Error(`Ping answered with ${r.type}: ${JSON.stringify(r.body)}`);
  } finally {
    c.destroy();
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
