// What a drain does with requests on a connection, exactly: the real Listener and
// client over a socket, and a service whose Create waits on a gate the test opens,
// so the Create is in progress when the drain comes (no timing involved).
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WardenClient } from '../../src/client/client.ts';
import { decodeBody, decodeEnvelope, encodeRequest } from '../../src/protocol/codec.ts';
import { FrameDecoder } from '../../src/protocol/framing.ts';
import type { WardenService } from '../../src/orchestrator/warden-service.ts';
import { Listener } from '../../src/server/listener.ts';

interface Gate {
  /** Resolves when the service has begun a Create. */
  begun: Promise<void>;
  open(): void;
}

function gatedService(): { service: WardenService; gate: Gate; creates: string[] } {
  let begin!: () => void;
  let open!: () => void;
  const begun = new Promise<void>((r) => (begin = r));
  const opened = new Promise<void>((r) => (open = r));
  const creates: string[] = [];
  const fake = {
    observer: {},
    connected: () => undefined,
    release: () => undefined,
    ping: async () => ({}),
    async create(req: { handle?: string }) {
      const handle = req.handle ?? `h${creates.length}`;
      creates.push(handle);
      begin();
      await opened;
      return { handle };
    },
  };
  return { service: fake as unknown as WardenService, gate: { begun, open }, creates };
}

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function listen(service: WardenService): Promise<{ listener: Listener; path: string }> {
  dir = mkdtempSync(join(tmpdir(), 'warden-drain-'));
  const path = join(dir, 'warden.sock');
  const listener = new Listener(service, pino({ level: 'silent' }), { path, permissions: 0o700, maxFrameBytes: 1 << 20 });
  await listener.listen();
  return { listener, path };
}

describe('drain with a Create in progress', () => {
  it('answers the Create, then closes the connection, and only then finishes', async () => {
    const { service, gate } = gatedService();
    const { listener, path } = await listen(service);
    const client = await WardenClient.connect(path);
    const idle = await WardenClient.connect(path);
    await idle.ping();
    const creating = client.create({ handle: 'in-flight' });
    await gate.begun;

    let drained = false;
    const draining = listener.drain().then(() => (drained = true));
    // The idle connection is closed at once; the drain waits for the Create.
    await expect(idle.ping()).rejects.toThrow();
    expect(drained).toBe(false);

    gate.open();
    expect(await creating).toEqual({ handle: 'in-flight' });
    await draining;
    expect(drained).toBe(true);
    // Nothing more is served on that connection.
    await expect(client.ping()).rejects.toThrow();
  });

  it('does not serve a request queued behind the one in progress', async () => {
    const { service, gate, creates } = gatedService();
    const { listener, path } = await listen(service);
    const sock = connect(path);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const decoder = new FrameDecoder();
    const replies: string[] = [];
    sock.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) {
        const { type, payload } = decodeEnvelope(f);
        replies.push(`${type} ${JSON.stringify(decodeBody(`${type}Response`, payload))}`);
      }
    });
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    // Two Creates in one write: the second waits in the connection's queue.
    sock.write(Buffer.concat([encodeRequest('Create', { handle: 'first' }), encodeRequest('Create', { handle: 'second' })]));
    await gate.begun;
    const draining = listener.drain();
    gate.open();
    await draining;
    await closed;
    expect(creates).toEqual(['first']);
    expect(replies).toEqual(['Create {"handle":"first"}']);
  });
});
