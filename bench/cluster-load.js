// The load client of bench/cluster.js and bench/cluster-balance.js for loads whose every answer
// matters: `concurrency` loops, each one request at a time, on keep-alive connections (one
// http.Agent) or on a new connection per request (`keepAlive: false`), paced to `rate` requests a
// second in all or as fast as answers come (`rate` undefined). The servers answer their pid: the
// client counts answers per pid, counts failures by kind (refused, reset, timeout, non-200, other
// errors with their code) and keeps (time, pid) of each answer, so a bench can find when a new
// worker first served. Throughput loads use autocannon (bench/dispatch.js); this client costs more
// CPU per request but sees every failure.
import http from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'

/** Starts the load on `url`; `stop()` ends it, `finish()` waits for the last requests. */
export function startClusterLoad(
  session,
  { url, concurrency = 8, keepAlive = true, rate, timeoutMs = 5000, retryMs = 10 },
) {
  const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: concurrency }) : false
  const target = new URL(url)
  const intervalMs = rate ? (concurrency / rate) * 1000 : 0
  const byPid = new Map()
  const kinds = new Map()
  /** Answers as parallel arrays: completion time (performance.now()) and pid. */
  const answers = { t: [], pid: [] }
  /** Failures as completion times, to count the ones in a window. */
  const failures = []
  let ok = 0
  let running = true
  const fail = (kind) => {
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
    failures.push(performance.now())
  }

  const once = () =>
    new Promise((resolve) => {
      let settled = false
      const done = (outcome) => {
        if (settled) return
        settled = true
        resolve(outcome)
      }
      const req = http.request(
        { host: target.hostname, port: target.port, path: target.pathname, agent, timeout: timeoutMs },
        (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (d) => {
            text += d
          })
          res.on('end', () => {
            if (res.statusCode !== 200) {
              fail(`http ${res.statusCode}`)
              done(false)
              return
            }
            const pid = Number.parseInt(text, 10)
            ok++
            byPid.set(pid, (byPid.get(pid) ?? 0) + 1)
            answers.t.push(performance.now())
            answers.pid.push(pid)
            done(true)
          })
          res.on('error', () => {
            fail('reset')
            done(false)
          })
        },
      )
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' })))
      req.on('error', (err) => {
        if (settled) return
        if (err.code === 'ECONNREFUSED') fail('refused')
        else if (err.code === 'ECONNRESET' || /socket hang up/.test(err.message)) fail('reset')
        else if (err.code === 'ETIMEOUT') fail('timeout')
        else fail(`error ${err.code ?? err.message}`)
        done(false)
      })
      req.end()
    })

  const loop = async (index) => {
    let next = performance.now() + (index * intervalMs) / concurrency
    while (running) {
      const wait = next - performance.now()
      if (wait > 0) await delay(wait)
      if (!running) break
      const answered = await once()
      if (!answered && running) await delay(retryMs)
      next = Math.max(next + intervalMs, performance.now())
    }
  }
  const t0 = performance.now()
  const loops = Array.from({ length: concurrency }, (_, i) => loop(i))
  let t1
  const client = {
    byPid,
    kinds,
    answers,
    failures,
    get ok() {
      return ok
    },
    get failed() {
      return failures.length
    },
    /** Failures whose request ended in [from, to) (performance.now() times). */
    failedBetween(from, to) {
      return failures.filter((t) => t >= from && t < to).length
    },
    /** Time of the first answer after `from` from a pid not in `known`, or undefined. */
    firstNewPidAfter(from, known) {
      for (let i = 0; i < answers.t.length; i++) {
        if (answers.t[i] >= from && !known.has(answers.pid[i])) return answers.t[i]
      }
      return undefined
    },
    /** Resolves once a pid not in `known` answered after `from`, or undefined after `ms`. */
    async waitForNewPid(from, known, ms) {
      const deadline = performance.now() + ms
      while (performance.now() < deadline) {
        const t = client.firstNewPidAfter(from, known)
        if (t !== undefined) return t
        await delay(20)
      }
      return undefined
    },
    /** Failure kinds as "kind n, kind n" ("" for none). */
    describeKinds() {
      return [...kinds].map(([k, n]) => `${k} ${n}`).join(', ')
    },
    stop() {
      running = false
    },
    async finish() {
      running = false
      await Promise.all(loops)
      t1 ??= performance.now()
      if (agent) agent.destroy()
      session.clients.delete(client)
      return { ok, failed: failures.length, seconds: (t1 - t0) / 1000 }
    },
  }
  session.clients.add(client)
  return client
}
