/**
 * Requests of one module: over the last minute, for the operator console, a
 * count and a latency histogram per second in a ring of 60 slots; and since
 * the module was first loaded, for GET /metrics, counts by status class and a
 * cumulative latency histogram that Prometheus takes rates of.
 *
 * Recording is a few arithmetic operations and five array writes, on the
 * request path: buckets are quarter powers of two of a millisecond (each ~19%
 * wide), so a p99 read from them is within one bucket of the true value, and
 * nothing is allocated per request. The memory is fixed: 60 x 121 counters
 * and 27 totals. prom-client reads the totals when scraped
 * (src/http/metrics-requests.ts): calling its `inc`/`observe` per request
 * would cost a label lookup (a string hash) each time on the dispatch path.
 */
const slots = 60
// up to 2^20 ms (17.5 minutes): a long poll or a slow upload must not show as the 16 s that 96
// buckets ended at; anything longer still lands in the last one
const buckets = 120
// bucket 0 holds everything under 2^(-39/4) ms (about 1 us); each next one is 2^(1/4) wider
const offset = 40
const perSlot = buckets + 1 // the count, then the buckets

/**
 * Upper bounds of the cumulative histogram (`nyala_request_duration_seconds`), ms: powers of two
 * from 1/4 ms to 65.5 s. Each is the upper edge of a fine bucket above, so a request's fine bucket
 * names its cumulative one through a table, without a second search; nineteen bounds (Prometheus
 * stores one series per bound and module) at a factor of two, where the fine buckets serve the
 * console's exact p99.
 */
export const durationBoundsMs: readonly number[] = Array.from({ length: 19 }, (_, i) => 2 ** (i - 2))
/** The cumulative bucket of each fine bucket: the first bound at or above its upper edge, or +Inf. */
const boundOf = Uint8Array.from({ length: buckets }, (_, b) =>
  Math.min(Math.max(Math.ceil((b + 1 - offset) / 4) + 2, 0), durationBoundsMs.length),
)

/**
 * Status classes counted in `RequestTotals.byStatus`: index 0 is a response whose connection
 * closed before it ended (the client gave up, or the module never answered), 1 to 5 the classes
 * 1xx to 5xx (Node refuses a status outside 100 to 999; 600 to 999 count as 5xx).
 */
export const statusClasses: readonly string[] = ['aborted', '1xx', '2xx', '3xx', '4xx', '5xx']

/** What a module served since it was first loaded (every generation), for GET /metrics. */
export interface RequestTotals {
  /** Requests by status class, indexed as `statusClasses`. */
  readonly byStatus: Float64Array
  /** Requests by duration: one count per bound of `durationBoundsMs`, then the rest (+Inf); not cumulative. */
  readonly byDuration: Float64Array
  /** The durations added up, ms. */
  readonly sumMs: number
}

export interface MinuteStats {
  /** Requests finished in each of the last 60 seconds, oldest first (the current second last). */
  readonly perSecond: readonly number[]
  /** Requests finished over the minute. */
  readonly requests: number
  /** Requests per second over the minute's full seconds. */
  readonly rps: number
  /** 99th percentile of the minute's latencies (upper bound of its bucket), ms; null without requests. */
  readonly p99Ms: number | null
}

/**
 * A minute without a request, shared: most modules of a large host are idle at any moment, and
 * the console asks for every module's minute every two seconds (on the serving thread).
 */
const idleMinute: MinuteStats = Object.freeze({
  perSecond: Object.freeze(new Array<number>(slots).fill(0)),
  requests: 0,
  rps: 0,
  p99Ms: null,
})
const idleParts: MinuteParts = Object.freeze({
  perSecond: idleMinute.perSecond,
  histogram: Object.freeze(new Array<number>(buckets).fill(0)),
})

export class RequestStats {
  readonly #counts = new Uint32Array(slots * perSlot)
  /** The second each slot holds; a slot of an older second is cleared before reuse. */
  readonly #second = new Float64Array(slots).fill(-1)
  /** The latest second with a request: a minute after it, the module's minute is `idleMinute`. */
  #latest = Number.NEGATIVE_INFINITY
  // doubles: a 32-bit count wraps after 4.3 billion requests, a day at 50k per second
  readonly #byStatus = new Float64Array(statusClasses.length)
  readonly #byDuration = new Float64Array(durationBoundsMs.length + 1)
  #sumMs = 0

  /**
   * Counts one request that took `ms` and closed with `status` (0: its connection closed
   * before the response ended).
   */
  record(ms: number, nowMs: number = performance.now(), status = 200): void {
    const second = Math.floor(nowMs / 1000)
    const slot = second % slots
    const base = slot * perSlot
    if (this.#second[slot] !== second) {
      this.#counts.fill(0, base, base + perSlot)
      this.#second[slot] = second
      this.#latest = second
    }
    let bucket = ms > 0 ? Math.floor(Math.log2(ms) * 4) + offset : 0
    if (bucket < 0) bucket = 0
    else if (bucket >= buckets) bucket = buckets - 1
    this.#counts[base]!++
    this.#counts[base + 1 + bucket]!++
    this.#byDuration[boundOf[bucket]!]!++
    this.#sumMs += ms
    const statusClass = (status / 100) | 0
    this.#byStatus[statusClass < 6 ? statusClass : 5]!++
  }

  /** Totals since the module was first loaded; live arrays, read them before the next request. */
  totals(): RequestTotals {
    return { byStatus: this.#byStatus, byDuration: this.#byDuration, sumMs: this.#sumMs }
  }

  /** The last minute as of `nowMs`. */
  minute(nowMs: number = performance.now()): MinuteStats {
    return this.#idle(nowMs) ? idleMinute : minuteOf([this.minuteParts(nowMs)])
  }

  /** The last minute's counts as they are, to be added to other processes' (worker processes). */
  minuteParts(nowMs: number = performance.now()): MinuteParts {
    if (this.#idle(nowMs)) return idleParts
    const now = Math.floor(nowMs / 1000)
    const perSecond: number[] = []
    const histogram = new Array<number>(buckets).fill(0)
    for (let second = now - slots + 1; second <= now; second++) {
      const slot = ((second % slots) + slots) % slots
      if (this.#second[slot] !== second) {
        perSecond.push(0)
        continue
      }
      const base = slot * perSlot
      perSecond.push(this.#counts[base]!)
      for (let b = 0; b < buckets; b++) histogram[b]! += this.#counts[base + 1 + b]!
    }
    return { perSecond, histogram }
  }

  /** No request in the minute that ends with the second of `nowMs`. */
  #idle(nowMs: number): boolean {
    return this.#latest <= Math.floor(nowMs / 1000) - slots
  }
}

/** One process's minute of a module: requests per second (oldest first) and the latency histogram. */
export interface MinuteParts {
  readonly perSecond: readonly number[]
  readonly histogram: readonly number[]
}

/**
 * The minute of several processes together (each read at about the same moment, so their
 * seconds line up to within one): counts and histograms added, the p99 read from the sum.
 */
export function minuteOf(parts: readonly MinuteParts[]): MinuteStats {
  const perSecond = new Array<number>(slots).fill(0)
  const merged = new Float64Array(buckets)
  for (const part of parts) {
    for (let i = 0; i < slots; i++) perSecond[i]! += part.perSecond[i] ?? 0
    for (let b = 0; b < buckets; b++) merged[b]! += part.histogram[b] ?? 0
  }
  const requests = perSecond.reduce((n, c) => n + c, 0)
  // the current second is still filling: the rate is over the 59 full ones
  const full = requests - (perSecond[slots - 1] ?? 0)
  return { perSecond, requests, rps: full / (slots - 1), p99Ms: percentile(merged, requests, 0.99) }
}

function percentile(histogram: Float64Array, total: number, q: number): number | null {
  if (total === 0) return null
  const rank = Math.ceil(total * q)
  let seen = 0
  for (let b = 0; b < histogram.length; b++) {
    seen += histogram[b]!
    // the bucket's upper bound: 2^((b + 1 - offset) / 4) ms
    if (seen >= rank) return 2 ** ((b + 1 - offset) / 4)
  }
  return 2 ** ((histogram.length - offset) / 4)
}
