// A WardenService over a temp depot, the fake backend and the in-thread task
// runner, for orchestrator unit tests: no root, no workers, no socket. A
// TestConnection plays the part of src/server/connection.ts towards the
// service (references on connect, release on close, an abort signal).
// Test-only: never imported by src/.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/config.ts';
import type { WardenConfig } from '../../src/config/types.ts';
import type { Container } from '../../src/model/container.ts';
import type { ContainerRecord } from '../../src/model/records.ts';
import { fromSnapshot } from '../../src/depot/snapshot-format.ts';
import { parse64 } from '../../src/protocol/json64.ts';
import { createPools, type Pools } from '../../src/pools/pools.ts';
import type { RequestContext } from '../../src/orchestrator/warden-service.ts';
import { WardenService } from '../../src/orchestrator/warden-service.ts';
import type { StreamResponse } from '../../src/protocol/types.ts';
import { FakeBackend } from './fake-backend.ts';
import { InThreadPool } from './in-thread-pool.ts';

/** A small config: 4 networks, 4 uids, 4 ports, no network cool-down, grace time off unless asked. */
export function testConfig(depot: string, extraServer = ''): WardenConfig {
  return parseConfig(
    [
      'server:',
      '  container_klass: Warden::Container::Insecure',
      `  container_depot_path: ${depot}`,
      `  container_rootfs_path: ${depot}`,
      '  container_grace_time: null',
      '  job_output_limit: 1048576',
      ...extraServer.split('\n').filter((l) => l.trim() !== '').map((l) => `  ${l.trim()}`),
      'network:',
      '  pool_start_address: 10.250.0.0',
      '  pool_size: 4',
      '  release_delay: 0',
      'port:',
      '  pool_start_port: 40000',
      '  pool_size: 4',
      'user:',
      '  pool_start_uid: 20000',
      '  pool_size: 4',
    ].join('\n'),
    'orchestrator-test.yml',
    { localPortRange: [32768, 39999], pidMax: 32768 },
  );
}

let nextConnectionId = 1;

/** A client connection as the service sees it. */
export class TestConnection {
  readonly id = nextConnectionId++;
  readonly references = new Set<Container>();
  readonly streamed: StreamResponse[] = [];
  private readonly abort = new AbortController();
  private readonly service: WardenService;
  closed = false;

  constructor(service: WardenService) {
    this.service = service;
    service.connected(this.id, this.references);
  }

  get ctx(): RequestContext {
    return {
      connectionId: this.id,
      references: this.references,
      signal: this.abort.signal,
      send: async (_type, body) => {
        this.streamed.push(body);
      },
    };
  }

  /** What Connection.onClose does: abort its requests, release its references. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.service.release(this.id, this.references);
    this.references.clear();
  }
}

export interface Harness {
  depot: string;
  config: WardenConfig;
  pools: Pools;
  backend: FakeBackend;
  pool: InThreadPool;
  service: WardenService;
  connect(): TestConnection;
  /** Folders in the depot (not the dot files). */
  depotEntries(): Promise<string[]>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Extra `server:` keys, one `key: value` a line. */
  server?: string;
  /** Reuse a depot (recovery tests); default a new temp folder. */
  depot?: string;
  backend?: FakeBackend;
}

export async function makeHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const depot = opts.depot ?? (await mkdtemp(join(tmpdir(), 'warden-orch-')));
  const config = testConfig(depot, opts.server);
  const pools = createPools(config);
  const backend = opts.backend ?? new FakeBackend();
  const pool = new InThreadPool();
  const service = new WardenService({
    config,
    pool,
    backend,
    pools,
    logger: pino({ level: 'silent' }),
    hardLimits: {},
    jobEnv: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
  });
  const connections: TestConnection[] = [];
  return {
    depot,
    config,
    pools,
    backend,
    pool,
    service,
    connect() {
      const c = new TestConnection(service);
      connections.push(c);
      return c;
    },
    async depotEntries() {
      return (await readdir(depot)).filter((n) => !n.startsWith('.')).sort();
    },
    async close() {
      for (const c of connections) c.close();
      service.stopping = true;
      for (const c of service.registry.all()) {
        if (c.graceTimer) clearTimeout(c.graceTimer);
        // Kill what still runs (jobs are real processes).
        await backend.destroy(c.record).catch(() => {});
      }
      await service.stopGuards(2000);
      await pool.idle();
      // A killed job's supervisor may still be writing its exit into its folder.
      if (!opts.depot) await rm(depot, { recursive: true, force: true, maxRetries: 10 });
    },
  };
}

/** Pool counts, to compare before and after. */
export function poolState(p: Pools): { networks: number; uids: number; ports: number } {
  return { networks: p.network.taken, uids: p.uid.taken, ports: p.port.taken };
}

/** The record c's snapshot on disk holds, read as recovery reads it (undefined: none). */
export async function readSnapshot(c: Container): Promise<ContainerRecord | undefined> {
  const text = await readFile(c.snapshotPath, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : fromSnapshot(parse64(text), c.record.path);
}
