// The client side of the protocol benchmark: C connections, each with one
// request in flight (as Warden clients work: a connection is served one request
// at a time), sending the next frame as soon as the whole reply frame is in.
// Every reply is checked against the expected bytes, so a daemon answering
// with an ErrorResponse cannot pass for a fast one.
import net from 'node:net';
import { decodeBody, decodeEnvelope } from '../../src/protocol/codec.ts';
import { FrameDecoder } from '../../src/protocol/framing.ts';

export interface RoundTripOptions {
  socketPath: string;
  /** The request frame; the reply must be these same bytes (true of Ping and Echo). */
  frame: Buffer;
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** Stops the run early (Ctrl-C). */
  signal?: AbortSignal;
}

export interface RoundTripResult {
  /** Round trips started inside the measured window. */
  count: number;
  /** From the window's start to the last of those replies. */
  elapsedMs: number;
  /** Latency of each of them, in milliseconds. */
  latencies: number[];
}

function describeReply(body: Buffer): string {
  try {
    const { type, payload } = decodeEnvelope(body);
    if (type === 'Error') return `an ErrorResponse: ${decodeBody<{ message?: string }>('ErrorResponse', payload).message}`;
    return `a ${type} frame of ${body.length} bytes`;
  } catch {
    return `${body.length} undecodable bytes`;
  }
}

function connect(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** One connection's loop: write, wait for the whole reply, repeat until the window closes. */
function drive(socket: net.Socket, o: RoundTripOptions, window: { start: number; stop: number }, out: RoundTripResult): Promise<void> {
  const expected = new FrameDecoder().push(o.frame)[0];
  const decoder = new FrameDecoder();
  return new Promise((resolve, reject) => {
    let sentAt = 0;
    // At least one measured round trip per connection, even when a stalled machine
    // lets the whole window pass during the warmup's last request.
    let measured = 0;
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    const send = () => {
      sentAt = performance.now();
      socket.write(o.frame);
    };
    socket.on('error', (err) => fail(new Error(`connection to ${o.socketPath} failed: ${err.message}`, { cause: err })));
    socket.on('close', () => fail(new Error(`connection to ${o.socketPath} closed by the server`)));
    socket.on('data', (chunk: Buffer) => {
      let replies: Buffer[];
      try {
        replies = decoder.push(chunk);
      } catch (err) {
        fail(new Error(`bad frame from ${o.socketPath}: ${(err as Error).message}`));
        return;
      }
      for (const reply of replies) {
        const now = performance.now();
        if (!reply.equals(expected)) {
          fail(new Error(`${o.socketPath} answered with ${describeReply(reply)}, not the expected frame`));
          return;
        }
        if (sentAt >= window.start) {
          measured++;
          out.count++;
          out.latencies.push(now - sentAt);
          out.elapsedMs = Math.max(out.elapsedMs, now - window.start);
        }
        if ((now < window.stop || measured === 0) && !o.signal?.aborted) {
          send();
        } else {
          socket.removeAllListeners('close');
          socket.destroy();
          resolve();
        }
      }
    });
    send();
  });
}

/** Run C connections for warmup + duration; only round trips sent after the warmup count. */
export async function measureRoundTrips(o: RoundTripOptions): Promise<RoundTripResult> {
  const sockets: net.Socket[] = [];
  try {
    for (let i = 0; i < o.connections; i++) sockets.push(await connect(o.socketPath));
    const start = performance.now() + o.warmupMs;
    const window = { start, stop: start + o.durationMs };
    const out: RoundTripResult = { count: 0, elapsedMs: 0, latencies: [] };
    await Promise.all(sockets.map((s) => drive(s, o, window, out)));
    return out;
  } finally {
    for (const s of sockets) s.destroy();
  }
}
