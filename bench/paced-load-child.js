// The paced keep-alive load of bench/reload-under-load.js, in a process of its own: the bench's
// own work during reloads (writing and renaming the .tmp, parsing the admin event stream, polling
// for the swap, reading /proc) then never shares an event loop or a heap with the requests whose
// latency it measures. Started with fork(); told what to do over IPC:
//   { start: { url, connections, rate } }   starts the loops
//   { measure: { from, until, windowMs } }  counts requests that start in [from, until)
//   { stop: true }                          stops, answers { done: { samples, ... } } and exits
// It sends { generation, at } each time a response carries a higher generation than before.
// Every time is milliseconds since the epoch with sub-millisecond precision (`now()` below), the
// clock the parent uses too, so the two processes' times compare.
import http from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import { requestSettled } from './common.js'

const now = () => performance.timeOrigin + performance.now()

let running = false
let loops = []
let agents = []
let from = Number.POSITIVE_INFINITY
let until = Number.POSITIVE_INFINITY
let highest = 0
// starts and latencies side by side, NaN for a failure: two numbers a request, nothing retained per response
const starts = []
const latencies = []
const failures = []
let failedTotal = 0

async function loop(url, agent, intervalMs, offsetMs) {
  let next = now() + offsetMs
  while (running) {
    const wait = next - now()
    if (wait > 0) await delay(wait)
    if (!running) break
    const start = now()
    const res = await requestSettled(url, { agent, timeoutMs: 15_000 })
    const end = now()
    // The next slot of this connection's own grid; slots missed while waiting for a slow answer
    // are skipped, not sent in a burst. The grid never moves: restarting it from a late request
    // (as a first version did) made every connection that waited through one stall fire together
    // from then on, so the load became bursts of `connections` requests and one stall delayed
    // them all.
    next += intervalMs
    while (next < end) next += intervalMs
    const gen = res.status === 200 ? res.body?.generation : undefined
    if (typeof gen === 'number' && gen > highest) {
      highest = gen
      process.send?.({ generation: gen, at: end })
    }
    if (start < from || start >= until) continue
    starts.push(start)
    if (res.error || res.status !== 200) {
      failedTotal++
      if (failures.length < 10) failures.push(res.error?.message ?? `HTTP ${res.status}`)
      latencies.push(Number.NaN)
    } else latencies.push(end - start)
  }
}

process.on('message', async (msg) => {
  if (msg.start) {
    const { url, connections, rate } = msg.start
    const intervalMs = (1000 * connections) / rate
    agents = Array.from({ length: connections }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }))
    running = true
    // the connections spread over one interval
    loops = agents.map((agent, i) => loop(url, agent, intervalMs, (i * intervalMs) / connections))
  } else if (msg.measure) {
    ;({ from, until } = msg.measure)
  } else if (msg.stop) {
    running = false
    await Promise.all(loops)
    for (const agent of agents) agent.destroy()
    process.send?.({ done: { starts, latencies, failures, failedTotal } }, () => process.exit(0))
  }
})
// the parent gone (the bench stopped or failed): nothing is left to measure for
process.on('disconnect', () => process.exit(0))
