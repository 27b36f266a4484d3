// Shared by bench/peers.js and bench/scale.js: child processes in their own process groups (so a
// `node --watch` parent and the child it restarts go together), a paced keep-alive HTTP client that
// keeps a timestamp per request, /proc readings and small statistics.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

export const projectRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
export const cliPath = path.join(projectRoot, 'dist', 'cli.js')
export const packModule = path.join(projectRoot, 'dist', 'bundle', 'pack.js')

// ---------------------------------------------------------------------------------------------
// Processes

/**
 * Everything one benchmark run starts: child process groups, load clients and temp dirs.
 * Each child is spawned `detached`, so it leads a process group this run created; stopping it
 * signals that group (the child and anything it spawned), never anything else.
 */
export class Session {
  groups = new Set()
  clients = new Set()
  dirs = []

  async tempDir(prefix = 'nyala-bench-') {
    const dir = await mkdtemp(path.join(tmpdir(), prefix))
    this.dirs.push(dir)
    return dir
  }

  /** Spawns `node <args>` as the leader of a new process group and tracks that group. */
  spawnNode(args, { cwd = projectRoot, env } = {}) {
    const child = spawn(process.execPath, args, {
      cwd,
      env: env ? { ...process.env, ...env } : process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    const group = { child, pid: child.pid, exited: false }
    const exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        group.exited = true
        resolve({ code, signal })
      })
      child.once('error', (err) => {
        group.exited = true
        resolve({ error: err })
      })
    })
    group.exitedPromise = exited
    if (child.pid !== undefined) this.groups.add(group)
    return group
  }

  /** Signals a group this session created; false when it is gone already. */
  signalGroup(group, signal) {
    if (group.pid === undefined) return false
    try {
      process.kill(-group.pid, signal)
      return true
    } catch {
      return false
    }
  }

  /** SIGTERM to the group, SIGKILL after `ms`; then SIGKILL again for any member left behind. */
  async stopGroup(group, ms = 5000) {
    if (!this.groups.has(group)) return
    if (!group.exited) this.signalGroup(group, 'SIGTERM')
    const timer = delay(ms).then(() => 'timeout')
    const outcome = await Promise.race([group.exitedPromise, timer])
    if (outcome === 'timeout') this.signalGroup(group, 'SIGKILL')
    await Promise.race([group.exitedPromise, delay(3000)])
    // a grandchild (the program `node --watch` runs) may outlive its parent: the group id stays
    // valid while any member lives, so this reaches exactly the processes we started
    this.signalGroup(group, 'SIGKILL')
    this.groups.delete(group)
  }

  /** Synchronous, for the abort path. */
  killNow() {
    for (const client of this.clients) client.stop()
    for (const group of this.groups) this.signalGroup(group, 'SIGKILL')
  }

  async close() {
    for (const client of this.clients) client.stop()
    await Promise.all([...this.groups].map((g) => this.stopGroup(g, 2000)))
    await Promise.all(this.dirs.map((dir) => rm(dir, { recursive: true, force: true })))
    this.dirs = []
  }
}

/**
 * Starts `node <args>` (own process group) and resolves once it logs a JSON line with a numeric
 * `port` and a message starting with "listening". Keeps reading stdout afterwards (a full pipe
 * would block a synchronous logger) and keeps every JSON record in `records`.
 */
export async function startServer(session, label, args, { readyTimeoutMs = 30_000, cwd, env } = {}) {
  const t0 = performance.now()
  const group = session.spawnNode(args, { cwd, env })
  const { child } = group
  const records = []
  const tail = []
  const remember = (line) => {
    tail.push(line)
    if (tail.length > 40) tail.shift()
  }
  const listeners = new Set()
  let ready
  const listening = new Promise((resolve, reject) => {
    ready = { resolve, reject }
  })
  let readyMs
  let buffered = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk) => {
    buffered += chunk
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      remember(line)
      if (!line.startsWith('{')) continue
      let record
      try {
        record = JSON.parse(line)
      } catch {
        continue
      }
      if (records.length < 10_000) records.push(record)
      for (const fn of listeners) fn(record)
      if (readyMs === undefined && typeof record.port === 'number' && /^listening/.test(record.msg ?? '')) {
        readyMs = performance.now() - t0
        ready.resolve(record)
      }
    }
  })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk) => {
    for (const line of chunk.split('\n')) if (line) remember(line)
  })
  const describe = () => `${label}: ${tail.join('\n')}`
  child.once('error', (err) => ready.reject(new Error(`${label} could not start: ${err.message}`)))
  child.once('exit', (code, signal) =>
    ready.reject(new Error(`${label} exited (${code ?? signal}) before listening\n${describe()}`)),
  )
  const timer = setTimeout(() => {
    session.signalGroup(group, 'SIGKILL')
    ready.reject(new Error(`${label} did not listen within ${readyTimeoutMs} ms\n${describe()}`))
  }, readyTimeoutMs)
  let record
  try {
    record = await listening
  } finally {
    clearTimeout(timer)
  }
  return {
    group,
    pid: child.pid,
    port: record.port,
    adminPort: record.adminPort,
    readyMs,
    records,
    describe,
    onRecord: (fn) => listeners.add(fn),
    stop: (ms) => session.stopGroup(group, ms),
  }
}

/** Runs `node <args>` to completion (own group, bounded); resolves { code, output }. */
export async function runNode(session, args, { timeoutMs = 30_000, cwd } = {}) {
  const group = session.spawnNode(args, { cwd })
  let output = ''
  group.child.stdout.on('data', (d) => {
    output += d
  })
  group.child.stderr.on('data', (d) => {
    output += d
  })
  const timer = setTimeout(() => session.signalGroup(group, 'SIGKILL'), timeoutMs)
  const { code, signal, error } = await group.exitedPromise
  clearTimeout(timer)
  session.groups.delete(group)
  if (error) throw error
  return { code: code ?? signal, output }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** One request on a fresh connection (nothing pooled outlives the servers). */
export function request(url, { method = 'GET', timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, timeout: timeoutMs }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        text += d
      })
      res.on('end', () => {
        let body
        try {
          body = JSON.parse(text)
        } catch {
          body = undefined
        }
        resolve({ status: res.statusCode, text, body })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)))
    req.on('error', reject)
    req.end()
  })
}

/** GETs until a 200 whose JSON body passes `accept`, or throws after `ms`. */
export async function waitFor(url, accept, ms = 10_000) {
  const deadline = performance.now() + ms
  let last
  while (performance.now() < deadline) {
    try {
      const res = await request(url, { timeoutMs: 2000 })
      if (res.status === 200 && accept(res.body)) return res
      last = `${res.status} ${res.text.slice(0, 200)}`
    } catch (err) {
      last = err.message
    }
    await delay(20)
  }
  throw new Error(`${url} did not answer as expected within ${ms} ms (last: ${last})`)
}

/**
 * A steady keep-alive load: `connections` loops on one http.Agent, each sending one request at a
 * time and pacing itself to `rate / connections` requests a second (a slow answer delays that
 * loop's next request, no catch-up burst). Every request is kept as (start, latency, outcome, v),
 * times in ms on `performance.now()`, so a caller can cut the run into windows afterwards and find
 * the first answer from new code (`v` is the number in the body's `"v":N`). After a failed request
 * a loop waits `retryMs` before the next one, as a client with a short retry delay would.
 */
export function startLoad(session, { url, connections = 10, rate = 1000, retryMs = 10, timeoutMs = 5000 }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const target = new URL(url)
  const intervalMs = (connections / rate) * 1000
  const log = { start: [], latency: [], outcome: [], v: [] }
  const counts = { ok: 0, refused: 0, reset: 0, timeout: 0, otherError: 0, status: {} }
  let recording = true
  let running = true
  let lastV
  const waiters = new Set()

  const once = () =>
    new Promise((resolve) => {
      const t0 = performance.now()
      let settled = false
      const done = (outcome, v) => {
        if (settled) return
        settled = true
        const t1 = performance.now()
        if (recording) {
          log.start.push(t0)
          log.latency.push(t1 - t0)
          log.outcome.push(outcome)
          log.v.push(v)
        }
        if (v !== undefined) {
          lastV = v
          for (const w of waiters) w(v, t1)
        }
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
              counts.status[res.statusCode] = (counts.status[res.statusCode] ?? 0) + 1
              done(`http ${res.statusCode}`)
              return
            }
            counts.ok++
            const m = /"v":(\d+)/.exec(text)
            done('ok', m ? Number(m[1]) : undefined)
          })
          res.on('error', () => {
            counts.reset++
            done('reset')
          })
        },
      )
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' })))
      req.on('error', (err) => {
        if (err.code === 'ECONNREFUSED') {
          counts.refused++
          done('refused')
        } else if (err.code === 'ECONNRESET' || /socket hang up/.test(err.message)) {
          counts.reset++
          done('reset')
        } else if (err.code === 'ETIMEOUT') {
          counts.timeout++
          done('timeout')
        } else {
          counts.otherError++
          done(`error ${err.code ?? err.message}`)
        }
      })
      req.end()
    })

  const loop = async (index) => {
    let next = performance.now() + (index * intervalMs) / connections
    while (running) {
      const wait = next - performance.now()
      if (wait > 0) await delay(wait)
      if (!running) break
      const outcome = await once()
      if (outcome !== 'ok' && running) await delay(retryMs)
      next = Math.max(next + intervalMs, performance.now())
    }
  }
  const loops = Array.from({ length: connections }, (_, i) => loop(i))
  const client = {
    log,
    counts,
    get lastV() {
      return lastV
    },
    /** Stop (true) or resume (false) keeping per-request records; counts go on. */
    setRecording(on) {
      recording = on
    },
    /** Resolves with the completion time of the first answer carrying `v`, or undefined after `ms`. */
    waitForV(v, ms) {
      if (lastV === v) return Promise.resolve(performance.now())
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter)
          resolve(undefined)
        }, ms)
        const waiter = (seen, t) => {
          if (seen !== v) return
          clearTimeout(timer)
          waiters.delete(waiter)
          resolve(t)
        }
        waiters.add(waiter)
      })
    },
    stop() {
      running = false
    },
    async finish() {
      running = false
      await Promise.all(loops)
      agent.destroy()
      session.clients.delete(client)
    },
  }
  session.clients.add(client)
  return client
}

// ---------------------------------------------------------------------------------------------
// /proc (Linux)

/** User + system CPU seconds of one process, from /proc/<pid>/stat (USER_HZ = 100). */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name may hold spaces and parentheses: count fields after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

/** Resident set size of one process in bytes, from /proc/<pid>/status. */
export function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics

export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

export function medianOf(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export function round(value, digits = 1) {
  if (!Number.isFinite(value)) return undefined
  const f = 10 ** digits
  return Math.round(value * f) / f
}

export const mb = (bytes) => round(bytes / 1024 / 1024, 1)

export async function mapLimit(items, limit, fn) {
  const results = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}
