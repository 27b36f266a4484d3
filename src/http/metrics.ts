import type { ReloadEvents } from '../reload/reload-events.js'
import type { ModuleRecord } from '../runtime/module-record.js'

// seconds; a reload is tens of milliseconds, a drain up to auto.reload.drain.timeout
const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** Prometheus text exposition of reloads and requests, counted from reload events and the records. */
export class Metrics {
  readonly #reloads = new Map<string, number>([
    ['reloaded', 0],
    ['failed', 0],
    ['unchanged', 0],
  ])
  readonly #bucketCounts = buckets.map(() => 0)
  #sum = 0
  #count = 0

  constructor(events: ReloadEvents) {
    events.on((e) => {
      if (e.phase === 'swapped') {
        this.#reloads.set('reloaded', (this.#reloads.get('reloaded') ?? 0) + 1)
        const s = (e.ms ?? 0) / 1000
        this.#sum += s
        this.#count++
        buckets.forEach((b, i) => {
          if (s <= b) this.#bucketCounts[i]!++
        })
      } else if (e.phase === 'failed' || e.phase === 'unchanged') {
        const key = e.phase
        this.#reloads.set(key, (this.#reloads.get(key) ?? 0) + 1)
      }
    })
  }

  render(records: Iterable<ModuleRecord>): string {
    const lines: string[] = []
    lines.push(
      '# HELP nyala_reloads_total Reload transactions by result.',
      '# TYPE nyala_reloads_total counter',
    )
    for (const [result, n] of this.#reloads) lines.push(`nyala_reloads_total{result="${result}"} ${n}`)
    lines.push(
      '# HELP nyala_reload_duration_seconds Time from trigger to swap of successful reloads.',
      '# TYPE nyala_reload_duration_seconds histogram',
    )
    for (const [i, b] of buckets.entries())
      lines.push(`nyala_reload_duration_seconds_bucket{le="${b}"} ${this.#bucketCounts[i]}`)
    lines.push(`nyala_reload_duration_seconds_bucket{le="+Inf"} ${this.#count}`)
    lines.push(
      `nyala_reload_duration_seconds_sum ${this.#sum}`,
      `nyala_reload_duration_seconds_count ${this.#count}`,
    )
    lines.push(
      '# HELP nyala_requests_total Requests dispatched, by module and serving generation.',
      '# TYPE nyala_requests_total counter',
    )
    const inflight: string[] = []
    const upgraded: string[] = []
    const state: string[] = []
    const crashes: string[] = []
    for (const r of records) {
      const gen = r.generation
      if (gen) {
        lines.push(`nyala_requests_total{module="${r.name}",generation="${gen.number}"} ${gen.served}`)
        inflight.push(
          `nyala_inflight_requests{module="${r.name}",generation="${gen.number}"} ${gen.inflight}`,
        )
        upgraded.push(
          `nyala_upgraded_connections{module="${r.name}",generation="${gen.number}"} ${gen.upgraded}`,
        )
      }
      state.push(`nyala_module_up{module="${r.name}"} ${r.state === 'running' ? 1 : 0}`)
      crashes.push(`nyala_module_crashes_total{module="${r.name}"} ${r.crashes}`)
    }
    lines.push(
      '# HELP nyala_inflight_requests Requests in flight.',
      '# TYPE nyala_inflight_requests gauge',
      ...inflight,
    )
    lines.push(
      '# HELP nyala_upgraded_connections Open upgraded connections (WebSockets), also counted in nyala_inflight_requests.',
      '# TYPE nyala_upgraded_connections gauge',
      ...upgraded,
    )
    lines.push(
      '# HELP nyala_module_up 1 when the module is running.',
      '# TYPE nyala_module_up gauge',
      ...state,
    )
    lines.push(
      '# HELP nyala_module_crashes_total Uncaught exceptions and unhandled rejections of module code.',
      '# TYPE nyala_module_crashes_total counter',
      ...crashes,
    )
    return `${lines.join('\n')}\n`
  }
}
