// The daemon's Prometheus metrics (GET /metrics on the health-check port), with
// prom-client on a registry of our own. Counters and the latency histogram are fed
// by the service and the connections through ServiceObserver; everything that is a
// level (containers, jobs, pools, workers) is read from the live state at scrape
// time, so it can never drift from it. docs/operations.md says what each means.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ContainerState } from '../model/records.ts';
import type { RequestOutcome, ServiceObserver, WardenService } from '../orchestrator/warden-service.ts';
import type { WorkerPool } from '../workers/pool.ts';
import { registerEventLoopMetrics } from './event-loop.ts';

export interface MetricsSources {
  service: WardenService;
  workers: WorkerPool;
  /** Open client connections on the unix socket. */
  connections(): number;
  draining(): boolean;
  backend: string;
  version: string;
}

/** Containers are counted in these states (destroyed ones leave the registry). */
const STATES: readonly ContainerState[] = ['born', 'active', 'stopped'];
/** From a Ping (~0.1 ms) to a Link that waits out a long job. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export class DaemonMetrics implements ServiceObserver {
  readonly registry = new Registry();
  private readonly requests: Counter<'type' | 'outcome'>;
  private readonly latency: Histogram<'type' | 'outcome'>;
  private readonly ooms: Counter;
  private readonly destroyFailures: Counter;
  private readonly refusals: Counter<'reason'>;

  constructor(src: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
    // prom-client's event-loop gauges report NaN after a scrape with no samples: ours do not.
    registerEventLoopMetrics(this.registry, 10);

    new Gauge({
      name: 'warden_build_info',
      help: 'Always 1; the labels say which build serves (version), on which backend and Node.',
      labelNames: ['version', 'backend', 'node'],
      registers,
    }).set({ version: src.version, backend: src.backend, node: process.versions.node }, 1);

    new Gauge({
      name: 'warden_draining',
      help: '1 while the daemon drains (SIGUSR2/TERM/INT) before it exits; /healthz answers 503 then.',
      registers,
      collect() {
        this.set(src.draining() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'warden_connections',
      help: 'Open client connections on the unix socket.',
      registers,
      collect() {
        this.set(src.connections());
      },
    });

    const { service } = src;
    new Gauge({
      name: 'warden_containers',
      help: 'Containers the daemon holds, by state (born: being created).',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
        for (const c of service.registry.all()) counts.set(c.state, (counts.get(c.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'warden_containers_max',
      help: 'The most containers at once (server.max_containers; default what the pools allow).',
      registers,
      collect() {
        this.set(service.config.server.max_containers);
      },
    });
    new Gauge({
      name: 'warden_jobs_running',
      help: 'Jobs (spawned scripts) still running, in all containers.',
      registers,
      collect() {
        let n = 0;
        for (const c of service.registry.all()) for (const j of c.jobs.values()) if (j.running) n++;
        this.set(n);
      },
    });

    const pools = () => Object.entries(service.pools) as [string, { total: number; free: number; cooling: number }][];
    new Gauge({
      name: 'warden_pool_size',
      help: 'Entries in each pool: /30 networks, uids, host ports.',
      labelNames: ['pool'],
      registers,
      collect() {
        for (const [pool, p] of pools()) this.set({ pool }, p.total);
      },
    });
    new Gauge({
      name: 'warden_pool_free',
      help: 'Entries of each pool that can be handed out now.',
      labelNames: ['pool'],
      registers,
      collect() {
        for (const [pool, p] of pools()) this.set({ pool }, p.free);
      },
    });
    new Gauge({
      name: 'warden_pool_cooling',
      help: 'Released entries of each pool waiting out their release delay (network.release_delay) before reuse.',
      labelNames: ['pool'],
      registers,
      collect() {
        for (const [pool, p] of pools()) this.set({ pool }, p.cooling);
      },
    });

    const { workers } = src;
    new Gauge({
      name: 'warden_worker_threads',
      help: 'Worker threads of the pool that runs host commands, job output, copies and snapshots.',
      registers,
      collect() {
        this.set(workers.stats.threads);
      },
    });
    new Gauge({
      name: 'warden_worker_queue_size',
      help: 'Tasks waiting for a worker thread (each worker runs many at once; a queue means they are all full).',
      registers,
      collect() {
        this.set(workers.stats.queued);
      },
    });
    new Gauge({
      name: 'warden_worker_utilization',
      help: "The worker pool's utilization since start, 0..1 (piscina: run time of tasks / capacity).",
      registers,
      collect() {
        this.set(workers.stats.utilization);
      },
    });

    this.requests = new Counter({
      name: 'warden_requests_total',
      help: 'Requests answered, by type and outcome (ok; error: an ErrorResponse for the client; internal: a bug, logged with its stack).',
      labelNames: ['type', 'outcome'],
      registers,
    });
    this.latency = new Histogram({
      name: 'warden_request_duration_seconds',
      help: 'Time from decoding a request to its answer, by type and outcome (Link, Stream and Run include the wait for the job).',
      labelNames: ['type', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.ooms = new Counter({
      name: 'warden_oom_events_total',
      help: 'Containers stopped because their memory cgroup killed a process (out of memory).',
      registers,
    });
    this.destroyFailures = new Counter({
      name: 'warden_destroy_failures_total',
      help: 'Destroys that failed (the container stays listed, the error in its events; a retry may succeed).',
      registers,
    });
    this.refusals = new Counter({
      name: 'warden_create_refusals_total',
      help: 'Creates refused because the daemon held server.max_containers containers.',
      labelNames: ['reason'],
      registers,
    });
    // Present from the start, so rate() and alerts see a 0 rather than nothing.
    this.refusals.inc({ reason: 'max_containers' }, 0);
  }

  requestDone(type: string, outcome: RequestOutcome, seconds: number): void {
    this.requests.inc({ type, outcome });
    this.latency.observe({ type, outcome }, seconds);
  }

  oom(): void {
    this.ooms.inc();
  }

  destroyFailed(): void {
    this.destroyFailures.inc();
  }

  createRefused(reason: 'max_containers'): void {
    this.refusals.inc({ reason });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
