// One client connection: frames in, requests served one at a time in order,
// responses out. A framing error closes this connection only.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { WardenError, codeOf, describeError } from '../model/errors.ts';
import { bodyTypeName, decodeBody, decodeEnvelope, encodeError, encodeFrame, encodeResponseFrame, ProtocolError } from '../protocol/codec.ts';
import { FrameDecoder, FramingError } from '../protocol/framing.ts';
import { streamDataFrame } from '../protocol/stream-frame.ts';
import type { MessageTypeName, RequestName, StreamResponse } from '../protocol/types.ts';
import type { Container } from '../model/container.ts';
import type { RequestContext, RequestOutcome, WardenService } from '../orchestrator/warden-service.ts';
import { handlers, WAITING_REQUESTS } from './dispatch.ts';
import type { FrameBudget } from './frame-budget.ts';
import { releaseDroppedFrames } from './memory-release.ts';

/** How a connection reads frames: the largest frame, the shared budget for unfinished ones, their idle timeout. */
export interface FramingOptions {
  maxFrameBytes: number;
  budget: FrameBudget;
  /** Ms an unfinished frame may wait for more bytes while we read; null: forever. */
  idleTimeoutMs: number | null;
}

/** Frames read ahead of the one being served before we stop reading the socket. */
const MAX_QUEUED_FRAMES = 64;
/**
 * Bytes of frames read ahead before we stop reading the socket. Counting frames
 * alone let one connection hold 64 frames of up to max_frame_bytes (16 MiB by
 * default): a gigabyte.
 */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** How long a closing connection waits for its peer to take the last replies. */
const CLOSE_AFTER_WRITING_MS = 5000;

export class Connection {
  readonly id: number;
  private readonly socket: Socket;
  private readonly service: WardenService;
  private readonly log: Logger;
  private readonly decoder: FrameDecoder;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private readonly framing: FramingOptions;
  /** Bytes of the unfinished frame this connection has charged to the budget. */
  private charged = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private readonly references = new Set<Container>();
  /** What handlers get of this connection: the same object for every request. */
  private readonly ctx: RequestContext;
  private current: RequestName | undefined;
  /** serve() is running (possibly waiting for the socket to drain between requests). */
  private serving = false;
  /**
   * open: reading and serving. broken: bad input was read; serve the frames
   * before it, read nothing more, then close. draining: the daemon drains; finish
   * the request being served, then close. closed: the socket is gone.
   */
  private state: 'open' | 'broken' | 'draining' | 'closed' = 'open';
  /** Resolves once the socket is closed and references are released. */
  readonly done: Promise<void>;

  constructor(id: number, socket: Socket, service: WardenService, log: Logger, framing: FramingOptions) {
    this.id = id;
    this.socket = socket;
    this.service = service;
    this.log = log.child({ conn: id });
    this.framing = framing;
    this.decoder = new FrameDecoder(framing.maxFrameBytes, { ownsChunks: true });
    this.ctx = {
      connectionId: id,
      references: this.references,
      signal: this.abort.signal,
      send: (type: 'Stream', body: StreamResponse) => this.writeAndWait(streamFrame(body) ?? [encodeFrame(type, 'Response', body)]),
    };
    this.done = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'socket error'));
    socket.once('close', () => this.onClose());
    service.connected(id, this.references);
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  get idle(): boolean {
    return this.current === undefined && this.queue.length === 0;
  }

  /** Drain: close now if idle or waiting on a job, else after the current request. */
  drain(): void {
    if (this.state === 'open' || this.state === 'broken') this.state = 'draining';
    if (this.current === undefined || WAITING_REQUESTS.has(this.current)) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.state = 'closed';
    this.abort.abort();
    this.socket.destroy();
    this.dropUnfinished();
  }

  private dropUnfinished(): void {
    clearTimeout(this.idleTimer);
    const dropped = this.charged;
    this.framing.budget.recharge(this.charged, 0);
    this.charged = 0;
    this.decoder.reset();
    releaseDroppedFrames(dropped);
  }

  private onData(chunk: Buffer): void {
    if (this.state !== 'open' && this.state !== 'draining') return;
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      // Stop reading; the requests that came before the bad bytes are still
      // answered (as the original did), whether or not they arrived in the same
      // read, and then the connection is closed.
      this.log.warn({ err: describeError(err) }, 'bad frame, closing connection');
      this.stopReading();
      frames = err instanceof FramingError ? err.frames : [];
      if (frames.length === 0 && !this.serving) {
        this.closeAfterWriting();
        return;
      }
    }
    if (!this.account()) return;
    if (frames.length === 0) return;
    this.queue.push(...frames);
    for (const f of frames) this.queuedBytes += f.length;
    if (this.queue.length >= MAX_QUEUED_FRAMES || this.queuedBytes >= MAX_QUEUED_BYTES) this.socket.pause();
    if (!this.serving) void this.serve();
  }

  /**
   * Charges the unfinished frame to the shared budget and (re)arms its idle timer.
   * false: the connection was closed for it (over the budget).
   */
  private account(): boolean {
    const pending = this.state === 'broken' ? 0 : this.decoder.pendingBytes;
    const within = this.framing.budget.recharge(this.charged, pending);
    this.charged = pending;
    if (!within) {
      this.log.warn(
        { pending, buffered: this.framing.budget.usedBytes, limit: this.framing.budget.limit },
        'unfinished frames of all connections over server.max_buffered_bytes, closing connection',
      );
      this.close();
      return false;
    }
    this.armIdleTimer(pending);
    return true;
  }

  private armIdleTimer(pending: number): void {
    const ms = this.framing.idleTimeoutMs;
    if (ms === null || pending === 0) {
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
      return;
    }
    if (this.idleTimer) this.idleTimer.refresh();
    else this.idleTimer = setTimeout(() => this.onIdle(), ms).unref();
  }

  /** No byte of an unfinished frame for frame_idle_timeout: drop it, unless we stopped reading ourselves. */
  private onIdle(): void {
    this.idleTimer = undefined;
    if (this.closed) return;
    if (this.socket.isPaused()) {
      this.armIdleTimer(this.charged);
      return;
    }
    this.log.warn({ pending: this.charged, timeout_ms: this.framing.idleTimeoutMs }, 'unfinished frame idle past server.frame_idle_timeout, closing connection');
    this.close();
  }

  private onClose(): void {
    this.state = 'closed';
    this.abort.abort();
    this.queue.length = 0;
    this.queuedBytes = 0;
    // Give the unfinished frame's bytes back at once, to the budget and to the system.
    this.dropUnfinished();
    this.service.release(this.id, this.references);
    this.references.clear();
  }

  private async serve(): Promise<void> {
    this.serving = true;
    try {
      await this.serveQueue();
    } finally {
      this.serving = false;
    }
  }

  private async serveQueue(): Promise<void> {
    for (;;) {
      // A client that sends requests without reading the replies would otherwise
      // have every reply buffered in our memory (writes ignore backpressure):
      // serve the next request (or answer the next bad one) only once the socket
      // has taken the replies so far. The queue then fills, reading pauses, and
      // memory stays bounded.
      if (this.socket.writableNeedDrain) await this.waitForDrain();
      if (this.state === 'closed' || this.state === 'draining' || this.queue.length === 0) break;
      const frame = this.queue.shift()!;
      this.queuedBytes -= frame.length;
      const roomy = this.queue.length < MAX_QUEUED_FRAMES / 2 && this.queuedBytes < MAX_QUEUED_BYTES / 2;
      if (roomy && this.state === 'open') this.socket.resume();
      let type: MessageTypeName;
      let payload: Uint8Array;
      try {
        ({ type, payload } = decodeEnvelope(frame));
      } catch (err) {
        if (err instanceof ProtocolError && /^Unknown request type: /.test(err.message)) {
          this.write(encodeError(err.message));
          continue;
        }
        this.log.warn({ err: describeError(err) }, 'undecodable message, closing connection');
        // Frames after it are not served; replies to those before it still go out.
        this.stopReading();
        break;
      }
      if (type === 'Error') {
        // server.rb's answer to a message it has no request for.
        this.write(encodeError('Unknown request: Error'));
        continue;
      }
      this.current = type;
      await this.handle(type, payload);
      this.current = undefined;
    }
    if (this.state === 'draining' || this.state === 'broken') this.closeAfterWriting();
  }

  /** After bad input: read nothing more, serve nothing more than what came before it. */
  private stopReading(): void {
    if (this.state === 'open') this.state = 'broken';
    this.socket.pause();
  }

  /**
   * Close once the replies written so far have left our buffer: destroy()
   * drops whatever the kernel has not taken yet, which cut the last reply
   * short. A peer that does not read gets a few seconds, not forever (a
   * draining daemon waits for every connection to close).
   */
  private closeAfterWriting(): void {
    if (this.closed) return;
    if (this.socket.writableLength === 0) {
      this.close();
      return;
    }
    this.socket.end(() => this.close());
    setTimeout(() => this.close(), CLOSE_AFTER_WRITING_MS).unref();
  }

  private async handle(type: RequestName, payload: Uint8Array): Promise<void> {
    const started = performance.now();
    let handle: string | undefined;
    try {
      const req = decodeBody<Record<string, unknown>>(bodyTypeName(type, 'Request'), payload);
      handle = typeof req.handle === 'string' ? req.handle : undefined;
      const handler = handlers[type] as (s: WardenService, r: unknown, c: RequestContext) => unknown;
      const response = await handler(this.service, req, this.ctx);
      if (!this.closed) this.write(encodeResponseFrame(type, response as object));
      // Create's handle is in its answer when the client let the daemon pick it.
      handle ??= typeof (response as { handle?: unknown })?.handle === 'string' ? (response as { handle: string }).handle : undefined;
      this.logRequest(type, handle, started, 'ok');
    } catch (err) {
      const answer = errorAnswer(err);
      this.logRequest(type, handle, started, answer.outcome, answer.message, answer.outcome === 'internal' ? (err as Error)?.stack : undefined);
      if (!this.closed) this.write(encodeError(answer.message));
    }
  }

  /** The one log line of every request (info; internal failures at error, with their stack), and its metrics. */
  private logRequest(type: RequestName, handle: string | undefined, started: number, outcome: RequestOutcome, err?: string, stack?: string): void {
    const ms = performance.now() - started;
    this.service.observer.requestDone?.(type, outcome, ms / 1000);
    // Probes change nothing and come by the thousand: their line is debug, as every
    // request's was in the original (and not even built when debug is off).
    const probe = outcome === 'ok' && (type === 'Ping' || type === 'Echo');
    if (probe && !this.log.isLevelEnabled('debug')) return;
    const line = { type, handle, ms: round(ms), outcome, ...(err === undefined ? {} : { err }) };
    if (outcome === 'internal') this.log.error({ ...line, stack }, 'request failed unexpectedly');
    else if (outcome !== 'ok') this.log.info(line, 'request failed');
    else if (probe) this.log.debug(line, 'request');
    else this.log.info(line, 'request');
  }


  private write(frame: Buffer): boolean {
    if (this.closed) return false;
    return this.socket.write(frame);
  }

  /** Resolve when the socket has room again or is closed. */
  private waitForDrain(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  /**
   * Write the parts of one frame (one writev), then resolve once the socket wrote
   * them: the kernel took the bytes (flow control for streams), and a chunk the
   * frame carried is free to be reused (job-output.ts sends it back to its reader).
   */
  private writeAndWait(parts: Uint8Array[]): Promise<void> {
    if (this.closed) return Promise.reject(new WardenError('connection closed'));
    return new Promise((resolve, reject) => {
      // A destroyed socket calls back with an error for every write it still held.
      const written = (err?: Error | null) => (err ? reject(new WardenError('connection closed')) : resolve());
      const last = parts.length - 1;
      if (last > 0) this.socket.cork();
      for (let i = 0; i < last; i++) this.socket.write(parts[i]);
      this.socket.write(parts[last], written);
      if (last > 0) this.socket.uncork();
    });
  }
}

/** A Stream chunk of output: its frame in parts around the chunk, which is not copied. */
function streamFrame(body: StreamResponse): Uint8Array[] | undefined {
  const { name, data } = body;
  if (typeof name !== 'string' || !(data instanceof Uint8Array) || body.exit_status !== undefined || body.info !== undefined) return undefined;
  const { head, tail } = streamDataFrame(name, data.length);
  return [head, data, tail];
}

/**
 * How a failed request is answered, by the error's code (src/model/errors.ts):
 * as the original did, the ErrorResponse carries the message whatever the kind
 * (clients match on the original's texts); a failure without a code of ours is
 * internal and is logged with its stack.
 */
function errorAnswer(err: unknown): { message: string; outcome: RequestOutcome } {
  return { message: describeError(err), outcome: codeOf(err) === 'internal' ? 'internal' : 'error' };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
