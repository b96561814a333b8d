// One insecure daemon per test file, with a client, a scratch folder and
// bin/warden pointed at it: the setup the command-line and error-text tests
// share. Registers its own hooks; what a test creates is destroyed after it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import { runCli, type CliResult } from './cli.ts';
import { TestDaemon } from './daemon.ts';
import { destroyLeftoversEachTest } from './leftovers.ts';

export interface CliDaemon {
  readonly daemon: TestDaemon;
  readonly client: WardenClient;
  /** A folder of the file's own, removed after it (also holds the prompt history). */
  readonly scratch: string;
  /** bin/warden with these arguments, optionally feeding stdin; socket defaults to the daemon's. */
  cli(args: string[], input?: string, socket?: string): Promise<CliResult>;
}

/** Call at the top of a test file. */
export function cliDaemonPerFile(scratchPrefix: string): CliDaemon {
  let daemon: TestDaemon | undefined;
  let client: WardenClient | undefined;
  let scratch: string | undefined;

  beforeAll(async () => {
    daemon = await TestDaemon.start();
    client = await daemon.client();
    scratch = mkdtempSync(join(tmpdir(), scratchPrefix));
  });

  afterAll(async () => {
    await client?.close().catch(() => {});
    await daemon?.cleanup();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  destroyLeftoversEachTest(() => client);

  const ready = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`cliDaemonPerFile: ${what} is used before beforeAll ran`);
    return v;
  };
  return {
    get daemon() { return ready(daemon, 'daemon'); },
    get client() { return ready(client, 'client'); },
    get scratch() { return ready(scratch, 'scratch'); },
    cli(args, input, socket) {
      return runCli(args, { socket: socket ?? ready(daemon, 'daemon').socket, scratch: ready(scratch, 'scratch'), input });
    },
  };
}
