// What the tests' and the bench's daemon starters share: where the daemon's
// binary is, free ports, the YAML config sections they write, and the wait
// for a started daemon to answer.
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { WardenClient } from '../../src/client/client.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const SERVER_BIN = join(ROOT, 'bin/warden-server');
export const CLIENT_BIN = join(ROOT, 'bin/warden');

/** A TCP port on 127.0.0.1 that was free a moment ago (health-check ports). */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** One top-level section of a warden.yml, each value as JSON (which YAML reads as is). */
export function yamlSection(name: string, values: Record<string, unknown>): string {
  const lines = Object.entries(values).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`);
  return `${name}:\n${lines.join('\n')}\n`;
}

/** Why a started daemon never answered: it exited, or the time ran out (it may still run). */
export class NotServingError extends Error {
  override name = 'NotServingError';
  readonly reason: 'exited' | 'timeout';
  constructor(reason: 'exited' | 'timeout', message: string) {
    super(message);
    this.reason = reason;
  }
}

/**
 * Pings the daemon on `socket` until it answers; resolves with when it did
 * (performance.now()). Rejects with NotServingError when `proc` exits first or
 * `timeoutMs` passes; what to do with the process then is the caller's choice.
 */
export async function waitUntilServing(proc: ChildProcess, socket: string, o: { timeoutMs: number; pollMs?: number }): Promise<number> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new NotServingError('exited', `warden-server exited with ${proc.exitCode ?? proc.signalCode}`);
    }
    try {
      const c = await WardenClient.connect(socket);
      await c.ping();
      const servingAt = performance.now();
      await c.close();
      return servingAt;
    } catch {
      if (Date.now() > deadline) throw new NotServingError('timeout', `warden-server did not come up within ${o.timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, o.pollMs ?? 50));
    }
  }
}
