// A scripted stand-in for the daemon, for client and CLI tests: listens on a
// unix socket in a fresh temp directory, decodes requests with the real codec,
// serves each connection's requests in order, one at a time (as warden does),
// and lets the test answer each one through a handler.
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBody, decodeEnvelope, encodeFrame, frameEnvelope, messageType } from '../../src/protocol/codec.ts';
import { FrameDecoder } from '../../src/protocol/framing.ts';
import { MessageType, type RequestName, type ResponseMap } from '../../src/protocol/types.ts';

export interface FakeRequest {
  type: RequestName;
  body: Record<string, unknown>;
}

export interface FakeConnection {
  reply<K extends RequestName>(type: K, body: ResponseMap[K]): void;
  error(message: string, data?: string): void;
  /** Write raw bytes, for malformed replies. */
  writeRaw(bytes: Buffer | string): void;
  /** Drop the connection. */
  destroy(): void;
}

/** Answers one request; the next one on the connection waits until it settles. */
export type FakeHandler = (req: FakeRequest, conn: FakeConnection) => void | Promise<void>;

export class FakeWardenServer {
  readonly socketPath: string;
  /** Every request received, in arrival order across connections. */
  readonly requests: FakeRequest[] = [];
  private readonly dir: string;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(dir: string, server: net.Server) {
    this.dir = dir;
    this.socketPath = join(dir, 'warden.sock');
    this.server = server;
  }

  static async start(handler: FakeHandler): Promise<FakeWardenServer> {
    const dir = await mkdtemp(join(tmpdir(), 'warden-fake-'));
    const server = net.createServer();
    const fake = new FakeWardenServer(dir, server);
    server.on('connection', (socket) => fake.serve(socket, handler));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(fake.socketPath, () => resolve());
    });
    return fake;
  }

  /** Close the listener and every connection, and remove the socket's temp directory. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.dir, { recursive: true, force: true });
  }

  private serve(socket: net.Socket, handler: FakeHandler): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {}); // clients going away mid-reply is what some tests do
    const conn: FakeConnection = {
      reply: (type, body) => {
        if (!socket.destroyed) socket.write(encodeFrame(type, 'Response', body));
      },
      error: (message, data) => {
        // Encoded directly: codec.encodeError turns any `data` field into bytes,
        // which ErrorResponse.data (a string) then fails to verify.
        const body = messageType('ErrorResponse').encode(data === undefined ? { message } : { message, data }).finish();
        if (!socket.destroyed) socket.write(frameEnvelope(MessageType.Error, body));
      },
      writeRaw: (bytes) => {
        if (!socket.destroyed) socket.write(bytes);
      },
      destroy: () => socket.destroy(),
    };
    const decoder = new FrameDecoder();
    let chain = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        const { type, payload } = decodeEnvelope(frame);
        if (type === 'Error') continue;
        const name = `${type}Request`;
        const body = messageType(name).toObject(decodeBody(name, payload), { defaults: false, arrays: false });
        const req: FakeRequest = { type, body };
        this.requests.push(req);
        chain = chain.then(() => handler(req, conn)).catch((err: Error) => conn.error(`fake handler failed: ${err.message}`));
      }
    });
  }
}
