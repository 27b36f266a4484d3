import type { Metric, Registry } from 'prom-client'
import { durationBoundsMs, type RequestTotals, statusClasses } from '../runtime/request-stats.js'

/** The part of a module record these metrics read. */
export interface RequestSource {
  readonly name: string
  readonly stats: { totals(): RequestTotals }
}

interface Sample {
  metricName?: string
  labels: Record<string, string | number>
  value: number
}

// `le` labels as prom-client's own histograms print them (a number turned to a string)
const boundLabels = [...durationBoundsMs.map((ms) => String(ms / 1000)), '+Inf']

/**
 * Registers `nyala_requests_total{module,status_class}` and
 * `nyala_request_duration_seconds{module}` (a histogram) on `registry`, read at
 * scrape time from each module's `RequestStats` totals, which the request path
 * keeps (src/runtime/request-stats.ts).
 *
 * They are plain metric objects in the shape prom-client's `Registry` takes
 * (`get()` returning name, help, type, aggregator and values, as its own
 * metrics do): prom-client's Histogram can only `observe()` one value at a
 * time, and has no way to be given bucket counts kept elsewhere.
 */
export function registerRequestMetrics(registry: Registry, modules: () => Iterable<RequestSource>): void {
  const requests = {
    name: 'nyala_requests_total',
    help: 'Requests a module answered since it was first loaded (every generation), by status class; aborted: the connection closed before the response ended.',
    type: 'counter',
    aggregator: 'sum',
    get: async () => {
      const values: Sample[] = []
      for (const m of modules()) {
        const { byStatus } = m.stats.totals()
        for (const [i, statusClass] of statusClasses.entries())
          values.push({ labels: { module: m.name, status_class: statusClass }, value: byStatus[i]! })
      }
      return { ...describe(requests), values }
    },
    reset: () => {},
  }
  const duration = {
    name: 'nyala_request_duration_seconds',
    help: 'Time from dispatch to a module until its response closed, since the module was first loaded.',
    type: 'histogram',
    aggregator: 'sum',
    get: async () => {
      const values: Sample[] = []
      for (const m of modules()) {
        const { byDuration, sumMs } = m.stats.totals()
        let count = 0
        for (const [i, le] of boundLabels.entries()) {
          count += byDuration[i]!
          values.push({ metricName: `${duration.name}_bucket`, labels: { le, module: m.name }, value: count })
        }
        values.push({ metricName: `${duration.name}_sum`, labels: { module: m.name }, value: sumMs / 1000 })
        values.push({ metricName: `${duration.name}_count`, labels: { module: m.name }, value: count })
      }
      return { ...describe(duration), values }
    },
    reset: () => {},
  }
  // the type declarations list prom-client's own classes only; the registry takes any object
  // with `get()` (its cluster aggregation registers such objects too)
  registry.registerMetric(requests as unknown as Metric)
  registry.registerMetric(duration as unknown as Metric)
}

function describe(m: { name: string; help: string; type: string; aggregator: string }) {
  return { name: m.name, help: m.help, type: m.type, aggregator: m.aggregator }
}
