/**
 * Requests of one module over the last minute, for the operator console:
 * a count and a latency histogram per second, in a ring of 60 slots.
 *
 * Recording is a few arithmetic operations and two array writes, on the
 * request path: buckets are quarter powers of two of a millisecond (each ~19%
 * wide), so a p99 read from them is within one bucket of the true value, and
 * nothing is allocated per request. The memory is fixed: 60 x 121 counters.
 */
const slots = 60
// up to 2^20 ms (17.5 minutes): a long poll or a slow upload must not show as the 16 s that 96
// buckets ended at; anything longer still lands in the last one
const buckets = 120
// bucket 0 holds everything under 2^(-39/4) ms (about 1 us); each next one is 2^(1/4) wider
const offset = 40
const perSlot = buckets + 1 // the count, then the buckets

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

export class RequestStats {
  readonly #counts = new Uint32Array(slots * perSlot)
  /** The second each slot holds; a slot of an older second is cleared before reuse. */
  readonly #second = new Float64Array(slots).fill(-1)

  /** Counts one finished request that took `ms`. */
  record(ms: number, nowMs: number = performance.now()): void {
    const second = Math.floor(nowMs / 1000)
    const slot = second % slots
    const base = slot * perSlot
    if (this.#second[slot] !== second) {
      this.#counts.fill(0, base, base + perSlot)
      this.#second[slot] = second
    }
    let bucket = ms > 0 ? Math.floor(Math.log2(ms) * 4) + offset : 0
    if (bucket < 0) bucket = 0
    else if (bucket >= buckets) bucket = buckets - 1
    this.#counts[base]!++
    this.#counts[base + 1 + bucket]!++
  }

  /** The last minute as of `nowMs`. */
  minute(nowMs: number = performance.now()): MinuteStats {
    const now = Math.floor(nowMs / 1000)
    const perSecond: number[] = []
    const merged = new Float64Array(buckets)
    let requests = 0
    for (let second = now - slots + 1; second <= now; second++) {
      const slot = ((second % slots) + slots) % slots
      if (this.#second[slot] !== second) {
        perSecond.push(0)
        continue
      }
      const base = slot * perSlot
      const count = this.#counts[base]!
      perSecond.push(count)
      requests += count
      for (let b = 0; b < buckets; b++) merged[b]! += this.#counts[base + 1 + b]!
    }
    // the current second is still filling: the rate is over the 59 full ones
    const full = requests - (perSecond[perSecond.length - 1] ?? 0)
    return { perSecond, requests, rps: full / (slots - 1), p99Ms: percentile(merged, requests, 0.99) }
  }
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
