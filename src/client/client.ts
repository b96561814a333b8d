// A Warden client over the daemon's unix socket. The server serves a connection
// one request at a time, so the client keeps one request in flight and queues
// the rest: each is written once the one before it is fully answered, and
// replies are matched to requests by order.
// Layer: src/client/ is the client side (library and CLI); it shares only the
// protocol with the daemon.
import net from 'node:net';
import { decodeBody, decodeEnvelope, encodeRequest, messageType, ProtocolError } from '../protocol/codec.ts';
import { FrameDecoder } from '../protocol/framing.ts';
import type {
  CopyInRequest,
  CopyOutRequest,
  CreateRequest,
  DestroyRequest,
  EchoRequest,
  ErrorResponse,
  InfoRequest,
  LimitBandwidthRequest,
  LimitCpuRequest,
  LimitDiskRequest,
  LimitMemoryRequest,
  LinkRequest,
  NetInRequest,
  NetOutRequest,
  RequestMap,
  RequestName,
  ResponseMap,
  RunRequest,
  SpawnRequest,
  StopRequest,
  StreamRequest,
  StreamResponse,
} from '../protocol/types.ts';
import { ReplyChannel } from './reply-channel.ts';

/** The server answered a request with an ErrorResponse. */
export class WardenError extends Error {
  override name = 'WardenError';
  readonly data: string | undefined;
  readonly backtrace: string[];

  constructor(reply: ErrorResponse) {
    super(reply.message || 'warden answered with an error without a message');
    this.data = reply.data;
    this.backtrace = reply.backtrace ?? [];
  }
}

/** The connection could not be made, or was lost or closed with requests outstanding. */
export class WardenConnectionError extends Error {
  override name = 'WardenConnectionError';
}

type Body = Record<string, unknown>;

/** One request and what to do with the replies to it. */
interface Exchange {
  readonly type: RequestName;
  readonly frame: Buffer;
  /** Takes one reply; returns true when it was the last one for this request. */
  reply(body: Body): boolean;
  fail(err: Error): void;
}

/** Decode a reply into a plain object holding only the fields that were set. */
function decodePlain(name: string, payload: Uint8Array): Body {
  const type = messageType(name);
  return type.toObject(decodeBody(name, payload), { defaults: false, arrays: false }) as Body;
}

export class WardenClient {
  readonly socketPath: string;
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder();
  /** Outstanding requests; the head is the one written and being answered. */
  private readonly queue: Exchange[] = [];
  /** Why the connection ended, once it has. */
  private endReason: string | undefined;

  private constructor(socketPath: string, socket: net.Socket) {
    this.socketPath = socketPath;
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.shutdown(`connection to warden at ${socketPath} failed: ${err.message}`, err));
    socket.on('close', () => this.shutdown(`connection to warden at ${socketPath} closed`));
  }

  static connect(socketPath: string): Promise<WardenClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      const onError = (err: Error): void => {
        reject(new WardenConnectionError(`cannot connect to warden at ${socketPath}: ${err.message}`, { cause: err }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(new WardenClient(socketPath, socket));
      });
    });
  }

  /** True once the connection is closed or lost; every call then rejects. */
  get closed(): boolean {
    return this.endReason !== undefined;
  }

  /**
   * Send any request and resolve with its reply. For Stream, the output frames
   * are skipped and the promise resolves with the last frame (exit_status, info);
   * use stream() to see the output.
   */
  call<K extends RequestName>(type: K, body: RequestMap[K]): Promise<ResponseMap[K]> {
    return new Promise((resolve, reject) => {
      let frame: Buffer;
      try {
        frame = encodeRequest(type, body);
      } catch (err) {
        reject(err);
        return;
      }
      this.enqueue({
        type,
        frame,
        reply: (reply) => {
          if (type === 'Stream' && reply.exit_status === undefined) return false;
          resolve(reply as unknown as ResponseMap[K]);
          return true;
        },
        fail: reject,
      });
    });
  }

  /**
   * Stream a job's output: yields each StreamResponse frame (`name` stdout or
   * stderr, `data` as bytes) as it arrives, and ends after the frame carrying
   * exit_status. Iteration throws WardenError or WardenConnectionError. The
   * request is queued at once; a reader that stops early leaves the connection
   * busy until the job ends, because Warden has no way to cancel a stream.
   */
  stream(req: StreamRequest): AsyncIterable<StreamResponse> {
    const channel = new ReplyChannel<StreamResponse>({
      onPressure: (paused) => (paused ? this.socket.pause() : this.socket.resume()),
    });
    let frame: Buffer;
    try {
      frame = encodeRequest('Stream', req);
    } catch (err) {
      channel.fail(err as Error);
      return channel;
    }
    this.enqueue({
      type: 'Stream',
      frame,
      reply: (reply) => {
        channel.push(reply as StreamResponse);
        if (reply.exit_status === undefined) return false;
        channel.end();
        return true;
      },
      fail: (err) => channel.fail(err),
    });
    return channel;
  }

  create(req: CreateRequest = {}) { return this.call('Create', req); }
  stop(req: StopRequest) { return this.call('Stop', req); }
  destroy(req: DestroyRequest) { return this.call('Destroy', req); }
  info(req: InfoRequest) { return this.call('Info', req); }
  spawn(req: SpawnRequest) { return this.call('Spawn', req); }
  link(req: LinkRequest) { return this.call('Link', req); }
  run(req: RunRequest) { return this.call('Run', req); }
  netIn(req: NetInRequest) { return this.call('NetIn', req); }
  netOut(req: NetOutRequest) { return this.call('NetOut', req); }
  copyIn(req: CopyInRequest) { return this.call('CopyIn', req); }
  copyOut(req: CopyOutRequest) { return this.call('CopyOut', req); }
  limitMemory(req: LimitMemoryRequest) { return this.call('LimitMemory', req); }
  limitDisk(req: LimitDiskRequest) { return this.call('LimitDisk', req); }
  limitBandwidth(req: LimitBandwidthRequest) { return this.call('LimitBandwidth', req); }
  limitCpu(req: LimitCpuRequest) { return this.call('LimitCpu', req); }
  ping() { return this.call('Ping', {}); }
  list() { return this.call('List', {}); }
  echo(req: EchoRequest) { return this.call('Echo', req); }

  /** Close the connection; outstanding requests reject with WardenConnectionError. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.closed) {
        this.shutdown('connection closed by the client');
        resolve();
        return;
      }
      this.socket.once('close', () => resolve());
      this.shutdown('connection closed by the client');
    });
  }

  private enqueue(ex: Exchange): void {
    if (this.endReason !== undefined) {
      ex.fail(new WardenConnectionError(`${this.endReason}; cannot send ${ex.type}`));
      return;
    }
    this.queue.push(ex);
    if (this.queue.length === 1) this.socket.write(ex.frame);
  }

  private onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.shutdown(`bad frame from warden at ${this.socketPath}: ${(err as Error).message}`, err);
      return;
    }
    for (const frame of frames) {
      if (this.endReason !== undefined) return;
      this.onFrame(frame);
    }
  }

  private onFrame(bytes: Buffer): void {
    const ex = this.queue[0];
    if (!ex) {
      this.shutdown(`warden at ${this.socketPath} sent a reply to no request`);
      return;
    }
    let done: boolean;
    try {
      const { type, payload } = decodeEnvelope(bytes);
      if (type === 'Error') {
        ex.fail(new WardenError(decodePlain('ErrorResponse', payload) as ErrorResponse));
        done = true;
      } else if (type !== ex.type) {
        throw new ProtocolError(`expected a ${ex.type} reply, got ${type}`);
      } else {
        done = ex.reply(decodePlain(`${type}Response`, payload));
      }
    } catch (err) {
      // Replies can no longer be matched to requests: give the connection up.
      this.shutdown(`bad reply from warden at ${this.socketPath}: ${(err as Error).message}`, err);
      return;
    }
    if (!done) return;
    this.queue.shift();
    this.socket.resume(); // a finished stream no longer holds the socket back
    const next = this.queue[0];
    if (next) this.socket.write(next.frame);
  }

  private shutdown(reason: string, cause?: unknown): void {
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    this.socket.destroy();
    const pending = this.queue.splice(0);
    pending.forEach((ex, i) => {
      const when = i === 0 ? `while waiting for the ${ex.type} reply` : `before the ${ex.type} request was sent`;
      ex.fail(new WardenConnectionError(`${reason} ${when}`, cause === undefined ? undefined : { cause }));
    });
  }
}
