// The unix socket listener: accepts connections, and drains them on shutdown.
// Layer: src/server/ owns sockets, frames and connections; it hands decoded
// requests to the orchestrator and never touches containers, pools or workers.
import { chmod, unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import type { Logger } from 'pino';
import type { WardenService } from '../orchestrator/warden-service.ts';
import { Connection } from './connection.ts';
import { FrameBudget } from './frame-budget.ts';

export interface ListenerOptions {
  path: string;
  permissions: number;
  maxFrameBytes: number;
  /** Most bytes of unfinished frames held across all connections (server.max_buffered_bytes). */
  maxBufferedBytes?: number;
  /** Seconds an unfinished frame may wait for more bytes (server.frame_idle_timeout); null: forever. */
  frameIdleTimeout?: number | null;
}

export class Listener {
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private nextId = 1;
  private readonly opts: ListenerOptions;
  private readonly log: Logger;

  constructor(service: WardenService, log: Logger, opts: ListenerOptions) {
    this.opts = opts;
    this.log = log;
    const framing = {
      maxFrameBytes: opts.maxFrameBytes,
      budget: new FrameBudget(opts.maxBufferedBytes ?? Number.MAX_SAFE_INTEGER),
      idleTimeoutMs: opts.frameIdleTimeout == null ? null : opts.frameIdleTimeout * 1000,
    };
    this.server = createServer((socket) => {
      const conn = new Connection(this.nextId++, socket, service, log, framing);
      this.connections.add(conn);
      conn.done.then(() => this.connections.delete(conn));
    });
    this.server.on('error', (err) => log.error({ err: err.message }, 'listener error'));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async listen(): Promise<void> {
    // A socket file left by a daemon that died is stale: replace it.
    await unlink(this.opts.path).catch(() => {});
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.path, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    await chmod(this.opts.path, this.opts.permissions);
    this.log.info({ path: this.opts.path }, 'listening');
  }

  /** Stop accepting; close idle and job-waiting connections; let the others finish their request. */
  async drain(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.drain();
    await Promise.all([...this.connections].map((c) => c.done));
    await closed;
    await unlink(this.opts.path).catch(() => {});
  }
}
