// What the orchestrator's parts share: the daemon's registry, pools, worker
// pool, backend and config, and the types requests are served with. Each part
// (lifecycle, limits, network, copy, jobs, deaths, info) is a set of functions
// or a small class over a Core; WardenService puts them together. Nothing here
// knows of sockets (src/server/) or of Linux (src/backends/).
// Layer: src/orchestrator/ owns the registry, the pools' reservations, the job
// ids, the grace timers and every container's state; it may not touch sockets
// (src/server/) or the host (src/backends/, in workers).
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.ts';
import type { WardenConfig } from '../config/types.ts';
import type { Container } from '../model/container.ts';
import type { ContainerRegistry } from '../model/registry.ts';
import type { SnapshotWriter } from '../depot/snapshot-writer.ts';
import type { GraceTimers } from './grace-timers.ts';
import type { Pools } from '../pools/pools.ts';
import type * as M from '../protocol/types.ts';
import type { TaskRunner } from '../workers/pool.ts';

/** What a request handler knows of the connection it serves. */
export interface RequestContext {
  readonly connectionId: number;
  /** Containers this connection referenced (released when it closes). */
  readonly references: Set<Container>;
  /** Aborted when the connection goes away (or the daemon drains). */
  readonly signal: AbortSignal;
  /** Send one more response frame (Stream); resolves once the socket wrote it (body.data may then be reused). */
  send(type: 'Stream', body: M.StreamResponse): Promise<void>;
}

/** How a request ended: answered, refused with an ErrorResponse, or an internal failure. */
export type RequestOutcome = 'ok' | 'error' | 'internal';

/**
 * Hooks for the daemon's metrics (src/metrics/); every one optional, none may
 * throw or block. The orchestrator calls the container ones, Connection requestDone.
 */
export interface ServiceObserver {
  requestDone?(type: string, outcome: RequestOutcome, seconds: number): void;
  oom?(handle: string): void;
  destroyFailed?(handle: string): void;
  createRefused?(reason: 'max_containers'): void;
}

/** The daemon's parts every request works with. */
export interface Core {
  readonly config: WardenConfig;
  readonly pool: TaskRunner;
  readonly backend: Backend;
  readonly pools: Pools;
  readonly log: Logger;
  readonly registry: ContainerRegistry;
  readonly snapshots: SnapshotWriter;
  readonly grace: GraceTimers;
  readonly observer: ServiceObserver;
  /** Recovery's cleanup while it runs: Creates wait for it. */
  readonly createsHeld: Promise<void> | undefined;
  /** The container a request names; the request's connection now references it. */
  lookup(handle: string, ctx: RequestContext): Container;
}

/** Container events (Info.events): the original's words where it had them. */
export const OUTPUT_EXCEEDED_EVENT = 'command exceeded maximum output';
export const INIT_EXITED_EVENT = 'container init exited';
export const OUT_OF_MEMORY_EVENT = 'out of memory';
