// Shared by the benchmarks in bench/: child processes in their own process groups (so a
// `node --watch` parent and the child it restarts go together), a paced keep-alive HTTP client that
// keeps a timestamp per request, fixtures (host roots, module bundles), /proc readings and small
// statistics.
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { createRequire } from 'node:module'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'

export const projectRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
export const cliPath = path.join(projectRoot, 'dist', 'cli.js')
export const packModule = path.join(projectRoot, 'dist', 'bundle', 'pack.js')

/** Throws unless every file exists (the build outputs a benchmark needs). */
export function assertBuilt(files, hint = 'run "npm run build" first') {
  for (const file of files) {
    if (!existsSync(file)) throw new Error(`${file} is missing: ${hint}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

/**
 * Everything one benchmark run starts: child process groups, adopted pids, load clients and temp
 * dirs. Each child is spawned `detached`, so it leads a process group this run created; stopping it
 * signals that group (the child and anything it spawned), never anything else. A client is anything
 * with a `stop()` (a load, an autocannon run, an event stream); `adopt` takes a pid this run started
 * that lives outside its groups (a daemonized host).
 */
export class Session {
  groups = new Set()
  pids = new Set()
  clients = new Set()
  dirs = []

  async tempDir(prefix = 'nyala-bench-') {
    const dir = await mkdtemp(path.join(tmpdir(), prefix))
    this.dirs.push(dir)
    return dir
  }

  /**
   * Spawns `node <args>` as the leader of a new process group and tracks that group. `ipc`: with
   * an IPC channel (`child.send`, structured clone, so NaN and typed arrays cross it).
   */
  spawnNode(args, { cwd = projectRoot, env, ipc = false } = {}) {
    const child = spawn(process.execPath, args, {
      cwd,
      env: env ? { ...process.env, ...env } : process.env,
      stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
      serialization: ipc ? 'advanced' : 'json',
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

  /** Tracks a pid this run started outside its groups (a daemon): close() stops it. */
  adopt(pid) {
    if (Number.isInteger(pid) && pid > 0) this.pids.add(pid)
  }

  /** Synchronous, for the abort path. */
  killNow() {
    for (const client of this.clients) client.stop()
    for (const group of this.groups) this.signalGroup(group, 'SIGKILL')
    for (const pid of this.pids) signalPid(pid, 'SIGKILL')
  }

  async close() {
    await Promise.all([...this.clients].map((client) => client.stop()))
    for (const pid of this.pids) signalPid(pid, 'SIGTERM')
    await Promise.all([...this.groups].map((g) => this.stopGroup(g, 2000)))
    // adopted pids are not our children: poll, then SIGKILL what is left
    const deadline = performance.now() + 8000
    while (performance.now() < deadline && [...this.pids].some(pidAlive)) await delay(50)
    for (const pid of this.pids) signalPid(pid, 'SIGKILL')
    this.pids.clear()
    await Promise.all(this.dirs.map((dir) => rm(dir, { recursive: true, force: true })))
    this.dirs = []
  }
}

function signalPid(pid, signal) {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * Runs `fn(session)` with a new Session that an abort of `signal` kills at once; closes the
 * session (stops everything it started, removes its temp dirs) however `fn` ends.
 */
export async function withSession(signal, fn) {
  const session = new Session()
  const onAbort = () => session.killNow()
  signal?.throwIfAborted()
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    return await fn(session)
  } finally {
    signal?.removeEventListener('abort', onAbort)
    await session.close()
  }
}

/**
 * Starts `node <args>` (own process group) and resolves once it logs a JSON line with a numeric
 * `port` and a message starting with "listening", with `readyMs` the time from spawn to that line
 * as this process saw it. Keeps reading stdout afterwards (a full pipe would block a synchronous
 * logger) and keeps every JSON record in `records`; `onRecord` sees every record from the first.
 * `stop(ms = stopMs)`: SIGTERM, SIGKILL after `ms`.
 */
export async function startServer(
  session,
  label,
  args,
  { readyTimeoutMs = 30_000, cwd, env, onRecord, stopMs = 5000 } = {},
) {
  const t0 = performance.now()
  const group = session.spawnNode(args, { cwd, env })
  const { child } = group
  const records = []
  const tail = []
  const remember = (line) => {
    tail.push(line)
    if (tail.length > 40) tail.shift()
  }
  const listeners = new Set(onRecord ? [onRecord] : [])
  let ready
  const listening = new Promise((resolve, reject) => {
    ready = { resolve, reject }
  })
  let readyMs
  eachLine(child.stdout, (line) => {
    remember(line)
    if (!line.startsWith('{')) return
    let record
    try {
      record = JSON.parse(line)
    } catch {
      return
    }
    if (records.length < 10_000) records.push(record)
    for (const fn of listeners) fn(record)
    if (readyMs === undefined && typeof record.port === 'number' && /^listening/.test(record.msg ?? '')) {
      readyMs = performance.now() - t0
      ready.resolve(record)
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
    stop: (ms = stopMs) => session.stopGroup(group, ms),
  }
}

/**
 * `node [nodeArgs] dist/cli.js start --root <root>` run from `root`, through startServer; adds
 * `errors`, the messages of the error-level log records (at most 10).
 */
export async function startHost(
  session,
  root,
  { nodeArgs = [], readyTimeoutMs = 60_000, stopMs = 8000 } = {},
) {
  const errors = []
  const server = await startServer(session, 'nyala', [...nodeArgs, cliPath, 'start', '--root', root], {
    cwd: root,
    readyTimeoutMs,
    stopMs,
    onRecord: (record) => {
      if (record.level >= 50 && errors.length < 10) errors.push(record.msg)
    },
  })
  return { ...server, errors }
}

/**
 * Runs `node <args>` to completion (own group, bounded); resolves { code, output } once its output
 * is read to the end. With `check`, a non-zero exit rejects with the output in the message.
 */
export async function runNode(session, args, { timeoutMs = 30_000, cwd, check = false } = {}) {
  const group = session.spawnNode(args, { cwd })
  let output = ''
  group.child.stdout.on('data', (d) => {
    output += d
  })
  group.child.stderr.on('data', (d) => {
    output += d
  })
  const closed = new Promise((resolve) => group.child.once('close', resolve))
  const timer = setTimeout(() => session.signalGroup(group, 'SIGKILL'), timeoutMs)
  const { code, signal, error } = await group.exitedPromise
  if (!error) await closed
  clearTimeout(timer)
  session.groups.delete(group)
  if (error) throw error
  if (check && code !== 0) {
    throw new Error(
      `node ${args.map((a) => path.basename(a)).join(' ')} failed (${code ?? signal}): ${output}`,
    )
  }
  return { code: code ?? signal, output }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/**
 * One request; resolves { status, text, body } (body: the parsed JSON, if it is JSON). `agent` false,
 * the default: a fresh connection (nothing pooled outlives the servers).
 */
export function request(url, { method = 'GET', timeoutMs = 60_000, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, timeout: timeoutMs }, (res) => {
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

/** The same request; never rejects: a failed request resolves { error }. */
export function requestSettled(url, options) {
  return request(url, options).catch((error) => ({ error }))
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
 * the first answer from new code (`v` is the number in the body's `"v":N`, or what `parseV` makes of
 * the body). After a failed request a loop waits `retryMs` before the next one, as a client with a
 * short retry delay would. `keepAlive: false`: a new connection for every request.
 */
export function startLoad(
  session,
  {
    url,
    connections = 10,
    rate = 1000,
    retryMs = 10,
    timeoutMs = 5000,
    keepAlive = true,
    parseV = versionOf,
  },
) {
  const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: connections }) : false
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
            done('ok', parseV(text))
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
      if (agent) agent.destroy()
      session.clients.delete(client)
    },
  }
  session.clients.add(client)
  return client
}

/** The number in a body's `"v":N`, or undefined. */
function versionOf(text) {
  const m = /"v":(\d+)/.exec(text)
  return m ? Number(m[1]) : undefined
}

/** A free port on 127.0.0.1, for servers that must come back on the same port after a restart. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/**
 * A host root: `modules/`, `config/` and config/impala.properties listening on 127.0.0.1, port 0
 * for both listeners, log level info and short grace periods (a stuck stop must not stretch a
 * benchmark); `settings` (key to value) adds keys or replaces these.
 */
export async function makeRoot(root, settings = {}) {
  await mkdir(path.join(root, 'modules'), { recursive: true })
  await mkdir(path.join(root, 'config'), { recursive: true })
  const all = {
    host: '127.0.0.1',
    port: 0,
    'admin.port': 0,
    'log.level': 'info',
    'shutdown.grace.period': 3,
    'shutdown.fast.timeout': 1,
    ...settings,
  }
  const lines = Object.entries(all).map(([key, value]) => `${key}=${value}`)
  await writeFile(path.join(root, 'config', 'impala.properties'), `${lines.join('\n')}\n`)
  return root
}

/** Writes a module's source into `src`: index.js, module.properties and any `files` (name to content). */
export async function writeModuleSource(src, index, { properties = 'version=1.0.0\n', files = {} } = {}) {
  await mkdir(src, { recursive: true })
  await writeFile(path.join(src, 'module.properties'), properties)
  await writeFile(path.join(src, 'index.js'), index)
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(src, name)), { recursive: true })
    await writeFile(path.join(src, name), content)
  }
}

/** Packs the module source in `src` to `out` with Nyala's own packer, in process. */
export async function packBundle(src, out) {
  const { packDirectory } = await import(pathToFileURL(packModule).href)
  await packDirectory(src, { out })
  return out
}

/** writeModuleSource, then packBundle to `out`. */
export async function writeModule(src, index, out, options) {
  await writeModuleSource(src, index, options)
  return packBundle(src, out)
}

/**
 * The handler of the memory probe route: a full GC when the process runs with --expose-gc, then
 * process.memoryUsage() of the process that serves.
 */
export const memHandler = `async () => {
  if (typeof globalThis.gc === 'function') globalThis.gc()
  return process.memoryUsage()
}`

/** The `probe` module (not reloadable), answering GET /probe/mem with memHandler, packed to `out`. */
export function writeMemProbe(src, out) {
  return writeModule(
    src,
    `module.exports = {\n  async register(app) {\n    app.get('/mem', ${memHandler})\n  },\n}\n`,
    out,
    { properties: 'version=1.0.0\nreloadable=false\n' },
  )
}

/**
 * GET /probe/mem on `port`; with `retryForMs`, retries that long while the server is away (a
 * restarting `node --watch` child).
 */
export async function probeMemory(port, { timeoutMs = 30_000, retryForMs = 0 } = {}) {
  const deadline = performance.now() + retryForMs
  let res
  for (;;) {
    try {
      res = await request(`http://127.0.0.1:${port}/probe/mem`, { timeoutMs })
      break
    } catch (err) {
      if (performance.now() > deadline || !['ECONNREFUSED', 'ECONNRESET'].includes(err.code)) throw err
      await delay(50)
    }
  }
  if (res.status !== 200 || typeof res.body?.heapUsed !== 'number') {
    throw new Error(`memory probe answered ${res.status}: ${res.text.slice(0, 200)}`)
  }
  return res.body
}

/** Calls `fn` with each whole line `stream` gives (as text, without the newline). */
export function eachLine(stream, fn) {
  let buffered = ''
  stream.setEncoding('utf8')
  stream.on('data', (chunk) => {
    buffered += chunk
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      fn(line)
    }
  })
}

/** The file: URL of a package as the project resolves it (a script in a temp dir could not). */
export const packageUrl = (specifier) =>
  pathToFileURL(createRequire(path.join(projectRoot, 'package.json')).resolve(specifier)).href

/** Source lines for a generated server: close `app` on SIGTERM/SIGINT, exit 1 if that hangs. */
export const closeOnSignal = (app) => `for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    setTimeout(() => process.exit(1), 3000).unref()
    ${app}.close().then(() => process.exit(0))
  })
}`

// ---------------------------------------------------------------------------------------------
// /proc (Linux)

/** User + system CPU time of one process in USER_HZ ticks (100 a second), from /proc/<pid>/stat. */
function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name may hold spaces and parentheses: count fields after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

/** User + system CPU seconds of one process (/proc, Linux); undefined elsewhere. */
export function cpuSeconds(pid) {
  const ticks = cpuTicks(pid)
  return ticks === undefined ? undefined : ticks / 100
}

/** The same in microseconds, computed from whole ticks (no rounding error of the seconds). */
export function cpuMicros(pid) {
  const ticks = cpuTicks(pid)
  return ticks === undefined ? undefined : ticks * 10_000
}

/**
 * CPU time of a process's main thread in ms (nanoseconds in /proc/<pid>/schedstat, Linux);
 * undefined elsewhere. Unlike wall time, it does not grow when other processes take the cores.
 */
export function mainThreadCpuMs(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6
  } catch {
    return undefined
  }
}

/**
 * The pids of every process below `pid` (children, their children...), from
 * /proc/<pid>/task/<tid>/children (Linux); [] elsewhere or once it is gone.
 */
export function descendantPids(pid) {
  const out = []
  const walk = (parent) => {
    let tasks
    try {
      tasks = readdirSync(`/proc/${parent}/task`)
    } catch {
      return
    }
    for (const tid of tasks) {
      let children = ''
      try {
        children = readFileSync(`/proc/${parent}/task/${tid}/children`, 'utf8')
      } catch {
        continue
      }
      for (const child of children.split(' ').filter(Boolean).map(Number)) {
        out.push(child)
        walk(child)
      }
    }
  }
  walk(pid)
  return out
}

/**
 * The pids of live processes (not zombies) whose command line contains `text`, e.g. a temp dir
 * of this run: finds a process that left our process groups (a detached successor).
 */
export function pidsNaming(text) {
  const out = []
  let entries
  try {
    entries = readdirSync('/proc')
  } catch {
    return out
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      if (cmdline.split('\0').some((arg) => arg.includes(text)) && !pidGone(Number(entry)))
        out.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return out
}

/** True once `pid` is gone or a zombie (exited, waiting for a parent that is not us to reap it). */
export function pidGone(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
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

/** Nearest-rank percentile of sorted values (100: the maximum); NaN for no values. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

/** The same of values in any order; non-finite values are left out. */
export function percentileOf(values, p) {
  return percentile(
    values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b),
    p,
  )
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

export const mb = (bytes, digits = 1) => round(bytes / 1024 / 1024, digits)

/** A latency table row for the requests of some windows: `latencies` (ms) of the answered ones, `failed`, `seconds` covered. */
export function latencyRow(section, window, { latencies, failed, seconds }) {
  return {
    section,
    window,
    requests: latencies.length + failed,
    'req/s': round(latencies.length / seconds, 0),
    'p50 ms': round(percentileOf(latencies, 50), 2),
    'p99 ms': round(percentileOf(latencies, 99), 2),
    'max ms': round(percentileOf(latencies, 100), 2),
    failed,
  }
}

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

/**
 * GETs `route` back to back on one keep-alive connection until an answer carries `{ "v": v }`; resolves with
 * the time that answer completed.
 */
export function versionPoller(port, route) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const get = () =>
    new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: route, agent }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d) => {
          text += d
        })
        res.on('end', () => {
          const m = /"v":(\d+)/.exec(text)
          resolve(res.statusCode === 200 && m ? Number(m[1]) : undefined)
        })
        res.on('error', () => resolve(undefined))
      })
      req.on('error', () => resolve(undefined))
    })
  return {
    async waitFor(v, ms, describe) {
      const deadline = performance.now() + ms
      while (performance.now() < deadline) {
        if ((await get()) === v) return performance.now()
      }
      throw new Error(`${route} did not answer v ${v} within ${ms} ms\n${describe()}`)
    },
    close: () => agent.destroy(),
  }
}
