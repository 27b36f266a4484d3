import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { ReloadEvents } from '../reload/reload-events.js'
import type { Generation } from '../runtime/generation.js'
import type { ModuleRecord } from '../runtime/module-record.js'
import { registerRequestMetrics } from './metrics-requests.js'

// seconds; a reload is tens of milliseconds, a drain up to auto.reload.drain.timeout
const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/**
 * The host's Prometheus metrics (GET /metrics), in a prom-client registry of its own, not
 * prom-client's global one: several hosts in one process (the tests) must not share counters.
 * Node's default metrics (CPU, memory, event-loop lag, GC) carry the `nyala_` prefix. Reloads
 * are counted from reload events; everything about modules is read from the module records when
 * scraped, so serving a request never calls into prom-client (docs/metrics.md).
 */
export class Metrics {
  readonly registry = new Registry()

  constructor(events: ReloadEvents, modules: () => Iterable<ModuleRecord>) {
    const registers = [this.registry]
    // The lag monitor's timer wakes the serving thread at its resolution even when nothing else
    // happens. prom-client's 10 ms made an idle host with one module turn its event loop about
    // 103 times a second for 0.8% of a core; at 100 ms it is about 15 wake-ups and 0.1 to 0.3%
    // (/proc, 10 s idle, 2026-11-29). A stall of the loop still delays the next tick and is seen;
    // the percentiles come from 10 samples a second instead of 100.
    collectDefaultMetrics({ register: this.registry, prefix: 'nyala_', eventLoopMonitoringPrecision: 100 })

    const reloads = new Counter({
      name: 'nyala_reloads_total',
      help: 'Reload transactions by result.',
      labelNames: ['result'],
      registers,
    })
    // every result from the start: a series that appears only at its first reload hides that one
    // from rate() and increase()
    for (const result of ['reloaded', 'failed', 'unchanged']) reloads.inc({ result }, 0)
    const reloadSeconds = new Histogram({
      name: 'nyala_reload_duration_seconds',
      help: 'Time from trigger to swap of successful reloads.',
      buckets,
      registers,
    })
    const skewSeconds = new Histogram({
      name: 'nyala_reload_commit_skew_seconds',
      help: 'With worker processes: time between the first and the last worker swapping to a reload.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    })
    events.on((e) => {
      if (e.phase === 'swapped') {
        reloads.inc({ result: 'reloaded' })
        reloadSeconds.observe((e.ms ?? 0) / 1000)
        if (e.skewMs !== undefined) skewSeconds.observe(e.skewMs / 1000)
      } else if (e.phase === 'failed' || e.phase === 'unchanged') reloads.inc({ result: e.phase })
    })

    registerRequestMetrics(this.registry, modules)
    // the serving generation of each module, for the figures set when scraped
    function* serving() {
      for (const r of modules())
        if (r.generation) yield [{ module: r.name, generation: r.generation.number }, r.generation] as const
    }
    new Counter({
      name: 'nyala_generation_requests_total',
      help: 'Requests dispatched to the serving generation of a module (HTTP requests and upgrades).',
      labelNames: ['module', 'generation'],
      registers,
      collect(this: Counter) {
        this.reset()
        for (const [labels, gen] of serving()) this.inc(labels, gen.served)
      },
    })
    const generationGauge = (name: string, help: string, read: (gen: Generation) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['module', 'generation'],
        registers,
        collect(this: Gauge) {
          this.reset()
          for (const [labels, gen] of serving()) this.set(labels, read(gen))
        },
      })
    generationGauge('nyala_inflight_requests', 'Requests in flight.', (gen) => gen.inflight)
    generationGauge(
      'nyala_upgraded_connections',
      'Open upgraded connections (WebSockets), also counted in nyala_inflight_requests.',
      (gen) => gen.upgraded,
    )
    new Gauge({
      name: 'nyala_module_up',
      help: '1 when the module is running.',
      labelNames: ['module'],
      registers,
      collect(this: Gauge) {
        this.reset()
        for (const r of modules()) this.set({ module: r.name }, r.state === 'running' ? 1 : 0)
      },
    })
    new Counter({
      name: 'nyala_module_crashes_total',
      help: 'Uncaught exceptions and unhandled rejections of module code.',
      labelNames: ['module'],
      registers,
      collect(this: Counter) {
        this.reset()
        for (const r of modules()) this.inc({ module: r.name }, r.crashes)
      },
    })
  }

  /** The Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics()
  }

  /** The content type of `render`'s text. */
  get contentType(): string {
    return this.registry.contentType
  }
}
