import { type Metric, Registry } from 'prom-client'

/** One registry's `getMetricsAsJSON()`, as a worker sends it to the supervisor. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

/** The metrics of one process and the `worker` label its series get. */
export interface WorkerMetrics {
  /** The worker's id; undefined for the supervisor's own metrics, which are not labelled. */
  readonly worker: string | undefined
  readonly metrics: MetricsJson
}

/**
 * One Prometheus exposition of several processes' metrics: every worker's series carries
 * `worker="<id>"`, and each metric is printed once (HELP, TYPE, then every process's samples,
 * which the text format needs together), in the order the metrics first appear.
 *
 * No unlabelled sums beside them, unlike prom-client's `AggregatorRegistry.aggregate`, which
 * merges the workers into one series per label set (sums counters and histograms, averages or
 * picks one worker for some gauges, and drops `process_start_time_seconds`). A sum next to the
 * per-worker series under the same name would be counted twice by any `sum()` over it; Prometheus
 * sums at query time (`sum without (worker) (rate(nyala_requests_total[1m]))`); and averaged
 * gauges such as event-loop lag hide the one stalled worker an operator is looking for.
 *
 * A metric two processes describe differently takes the first one's help and type. Pure: the
 * inputs are not changed.
 */
export function mergeWorkerMetrics(parts: readonly WorkerMetrics[]): Promise<string> {
  const merged = new Map<string, { head: MetricsJson[number]; values: MetricsJson[number]['values'] }>()
  for (const { worker, metrics } of parts) {
    for (const metric of metrics) {
      let into = merged.get(metric.name)
      if (!into) {
        into = { head: metric, values: [] }
        merged.set(metric.name, into)
      }
      for (const value of metric.values)
        into.values.push(worker === undefined ? value : { ...value, labels: { ...value.labels, worker } })
    }
  }
  // prom-client's own formatter (escaping, +Inf, NaN), as AggregatorRegistry.aggregate uses it
  const registry = new Registry()
  for (const { head, values } of merged.values()) {
    const metric = { name: head.name, help: head.help, type: head.type, aggregator: head.aggregator, values }
    registry.registerMetric({ ...metric, get: async () => metric, reset: () => {} } as unknown as Metric)
  }
  return registry.metrics()
}
