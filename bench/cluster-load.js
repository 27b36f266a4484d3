// The load clients of bench/cluster.js and bench/cluster-balance.js.
//
// startClusterLoad: for loads whose every answer matters, the project's paced client
// (common.js startLoad) on keep-alive connections or on a new connection per request, as fast as
// answers come when no `rate` is given. The servers answer their pid: it is kept as the answer's
// `v`, so a bench can count answers per worker and find when a new worker first served.
//
// runAutocannon: for throughput, autocannon (cheaper per request than a node:http client, so
// more of the 2 cores go to the servers), bounded by a watchdog in case a server stops answering.
import autocannon from 'autocannon'
import { startLoad } from './common.js'

const pidOf = (text) => {
  const pid = Number.parseInt(text, 10)
  return Number.isInteger(pid) ? pid : undefined
}

/** Starts the load on `url`; `stop()` ends it, `finish()` waits for the last requests. */
export function startClusterLoad(
  session,
  { url, concurrency = 8, keepAlive = true, rate, timeoutMs = 5000 },
) {
  const load = startLoad(session, {
    url,
    connections: concurrency,
    rate: rate ?? Number.POSITIVE_INFINITY,
    keepAlive,
    timeoutMs,
    parseV: pidOf,
  })
  const { log } = load
  /** Indices of the requests that failed. */
  const failedIndices = () => {
    const out = []
    for (let i = 0; i < log.outcome.length; i++) if (log.outcome[i] !== 'ok') out.push(i)
    return out
  }
  return {
    get ok() {
      return load.counts.ok
    },
    get failed() {
      return log.outcome.length - load.counts.ok
    },
    get requests() {
      return log.outcome.length
    },
    /** Failures by kind: refused, reset, timeout, http <status>, error <code>. */
    get kinds() {
      const kinds = new Map()
      for (const i of failedIndices()) kinds.set(log.outcome[i], (kinds.get(log.outcome[i]) ?? 0) + 1)
      return kinds
    },
    /** Time of the first answer ending after `from` from a pid not in `known`, or undefined. */
    firstNewPidAfter(from, known) {
      for (let i = 0; i < log.outcome.length; i++) {
        const end = log.start[i] + log.latency[i]
        if (log.outcome[i] === 'ok' && end >= from && !known.has(log.v[i])) return end
      }
      return undefined
    },
    /** Resolves once a pid not in `known` answered after `from`, or undefined after `ms`. */
    async waitForNewPid(from, known, ms) {
      const deadline = performance.now() + ms
      while (performance.now() < deadline) {
        const t = this.firstNewPidAfter(from, known)
        if (t !== undefined) return t
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      return undefined
    },
    finish: () => load.finish(),
  }
}

/** One autocannon run of `seconds` (the other options are autocannon's); resolves its result. */
export async function runAutocannon(session, { seconds, ...options }) {
  const tracker = autocannon({ ...options, duration: seconds, timeout: 10, sampleInt: 100 })
  session.clients.add(tracker)
  const watchdog = setTimeout(() => tracker.stop(), (seconds + 15) * 1000)
  try {
    return await tracker
  } finally {
    clearTimeout(watchdog)
    session.clients.delete(tracker)
  }
}
