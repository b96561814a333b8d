// What the tests' and the bench's daemon starters share: where the daemon's
// binary is, free ports, and the YAML config sections they write.
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

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
