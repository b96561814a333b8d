// Event-loop delay gauges (nodejs_eventloop_lag_*), under prom-client's names.
// prom-client's own reset its delay histogram at every scrape and then reported
// the mean and stddev of no samples: NaN (printed `Nan`, which Prometheus refuses)
// for a scrape that came within the sampling resolution of the one before, or
// right after start. Here a scrape with no new samples repeats the last figures,
// and before the first sample every figure is 0.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/** The series prom-client's default metrics add for the event loop (replaced here). */
export const EVENT_LOOP_METRICS = [
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_min_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_stddev_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p90_seconds',
  'nodejs_eventloop_lag_p99_seconds',
] as const;

/** A finite number of seconds from a nanosecond figure, else undefined. */
function seconds(ns: number): number | undefined {
  return Number.isFinite(ns) ? ns / 1e9 : undefined;
}

/** Registers the event-loop gauges on `registry` (after removing any of the same name). */
export function registerEventLoopMetrics(registry: Registry, resolutionMs = 10): void {
  for (const name of EVENT_LOOP_METRICS) registry.removeSingleMetric(name);
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  histogram.enable();
  const registers = [registry];
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers });
  const min = gauge('nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.');
  const max = gauge('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.');
  const mean = gauge('nodejs_eventloop_lag_mean_seconds', 'The mean of the recorded event loop delays.');
  const stddev = gauge('nodejs_eventloop_lag_stddev_seconds', 'The standard deviation of the recorded event loop delays.');
  const p50 = gauge('nodejs_eventloop_lag_p50_seconds', 'The 50th percentile of the recorded event loop delays.');
  const p90 = gauge('nodejs_eventloop_lag_p90_seconds', 'The 90th percentile of the recorded event loop delays.');
  const p99 = gauge('nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.');
  for (const g of [min, max, mean, stddev, p50, p90, p99]) g.set(0);
  new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds (how long a setImmediate took at the last scrape).',
    registers,
    collect() {
      // Measured now, reported at the next scrape (as prom-client does).
      const start = process.hrtime.bigint();
      setImmediate(() => this.set(Number(process.hrtime.bigint() - start) / 1e9));
      if (histogram.count === 0) return;
      const figures: [Gauge, number][] = [
        [min, histogram.min], [max, histogram.max], [mean, histogram.mean], [stddev, histogram.stddev],
        [p50, histogram.percentile(50)], [p90, histogram.percentile(90)], [p99, histogram.percentile(99)],
      ];
      for (const [g, ns] of figures) {
        const s = seconds(ns);
        if (s !== undefined) g.set(s);
      }
      histogram.reset();
    },
  });
}
