// A steady keep-alive load on one module while it is reloaded every 500 ms by dropping a new
// `solo.zip.tmp` beside its bundle (auto.reload.monitoring.type=tmpfile, OS file events): failed
// requests, p50/p99 latency during reloads against the same load without reloads, and the time
// from the trigger (the .tmp appearing) to the first response served by the new generation.
//
// Sequential runs are not comparable on these machines (/work/shared/NOTES.md, "Measuring on these
// machines"): one continuous load is split into alternating quiet and change windows, and each
// request counts in the window it started in.
//
// The small process helpers at the bottom are exported for bench/reload-memory.js.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'

export const projectRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
export const cliPath = path.join(projectRoot, 'dist', 'cli.js')
const packModule = path.join(projectRoot, 'dist', 'bundle', 'pack.js')

export const targets = { failed: 0, p99Ratio: 1.2, triggerToNewMs: 50 }

const full = { seconds: 20, windowSeconds: 2, intervalMs: 500, connections: 4, rate: 800, warmupSeconds: 1 }
const quick = {
  seconds: 2,
  windowSeconds: 0.5,
  intervalMs: 250,
  connections: 4,
  rate: 400,
  warmupSeconds: 0.3,
}

/**
 * @param {{ quick?: boolean, duration?: number, signal?: AbortSignal, progress?: (msg: string) => void }} opts
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.duration) settings.seconds = opts.duration
  const progress = opts.progress ?? (() => {})
  for (const file of [cliPath, packModule]) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run "npm run build" first`)
  }
  const session = new Session()
  const onAbort = () => session.killNow()
  opts.signal?.throwIfAborted()
  opts.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const work = await session.tempDir()
    const root = await makeBenchRoot(work, [
      'auto.reload.modules=true',
      'auto.reload.monitoring.type=tmpfile',
      'auto.reload.drain.timeout=5',
    ])
    const modules = path.join(root, 'modules')
    await writeModule(work, 'solo', soloIndex('v0'), path.join(modules, 'solo.zip'))
    const variants = [
      await writeModule(work, 'solo-a', soloIndex('a'), path.join(work, 'solo-a.zip')),
      await writeModule(work, 'solo-b', soloIndex('b'), path.join(work, 'solo-b.zip')),
    ]
    const bytes = await Promise.all(variants.map((v) => readFile(v)))

    progress(`starting the host (tmpfile monitoring) in ${root}`)
    const host = await startHost(session, root)
    const events = await openEvents(session, `http://127.0.0.1:${host.adminPort}/events`)
    const url = `http://127.0.0.1:${host.port}/solo`
    const first = await getOnce(url)
    if (first.status !== 200 || first.body?.generation !== 1) {
      throw new Error(`GET /solo answered ${first.status} ${JSON.stringify(first.body)}`)
    }

    const load = new PacedLoad(url, settings.connections, settings.rate)
    session.loads.add(load)
    const triggers = []
    try {
      progress(`warm-up ${settings.warmupSeconds} s`)
      load.start()
      await delay(settings.warmupSeconds * 1000)
      const windowMs = settings.windowSeconds * 1000
      const t0 = performance.now()
      load.measure(t0, windowMs)
      const windows = Math.max(2, Math.round(settings.seconds / settings.windowSeconds))
      progress(
        `${settings.seconds} s of load at ${settings.rate} req/s over ${settings.connections} keep-alive ` +
          `connections, ${windows} alternating ${settings.windowSeconds} s windows, a reload every ` +
          `${settings.intervalMs} ms in the change windows`,
      )
      for (let w = 0; w < windows; w++) {
        const windowStart = t0 + w * windowMs
        const windowEnd = windowStart + windowMs
        if (w % 2 === 1) {
          for (let at = windowStart; at < windowEnd - 1; at += settings.intervalMs) {
            opts.signal?.throwIfAborted()
            await sleepUntil(at)
            // the previous reload must be done (swapped, .tmp committed) for its figure to be its own
            const prev = triggers.at(-1)
            const tmp = path.join(modules, 'solo.zip.tmp')
            await waitFor(
              () => !existsSync(tmp) && (prev === undefined || prev.swappedMs !== undefined),
              2000,
            )
            const overlapped = existsSync(tmp) || (prev !== undefined && prev.swappedMs === undefined)
            const entry = await trigger(modules, bytes[triggers.length % 2], events, load)
            entry.overlapped = overlapped
            triggers.push(entry)
          }
        }
        await sleepUntil(windowEnd)
      }
      load.measureUntil(t0 + windows * windowMs)
    } finally {
      await load.stop()
      session.loads.delete(load)
    }
    // the last reload has its own response: wait a little for the trigger->new-generation figure
    const lastTrigger = triggers.at(-1)
    if (lastTrigger)
      await waitFor(() => lastTrigger.newMs !== undefined || lastTrigger.swappedMs !== undefined, 5000)
    await waitFor(() => !existsSync(path.join(modules, 'solo.zip.tmp')), 5000)
    events.close()
    await host.stop()

    return report(settings, Boolean(opts.quick), load, triggers, events)
  } finally {
    opts.signal?.removeEventListener('abort', onAbort)
    await session.close()
  }
}

function soloIndex(tag) {
  return `module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ generation: ctx.generation, tag: ${JSON.stringify(tag)} }))
} }
`
}

/**
 * Drops the next `.tmp` in one step (written hidden, then renamed, so the watcher never sees half a
 * file), after the previous reload swapped. The trigger time is taken just before the rename.
 */
async function trigger(modulesDir, data, events, load) {
  const before = events.generation
  const hidden = path.join(modulesDir, '.solo.zip.tmp.partial')
  await writeFile(hidden, data)
  const t = performance.now()
  await rename(hidden, path.join(modulesDir, 'solo.zip.tmp'))
  const entry = { t, before, newMs: undefined, swappedMs: undefined }
  load.onGeneration((gen, at) => {
    if (gen > before && entry.newMs === undefined) {
      entry.newMs = at - t
      return true
    }
    return false
  })
  events.onSwap((gen, at) => {
    if (gen > before && entry.swappedMs === undefined) {
      entry.swappedMs = at - t
      return true
    }
    return false
  })
  return entry
}

function report(settings, quickRun, load, triggers, events) {
  const quiet = load.windowed((w) => w % 2 === 0)
  const change = load.windowed((w) => w % 2 === 1)
  const row = (name, s) => ({
    section: 'latency (requests counted in the window they started in)',
    window: name,
    requests: s.latencies.length + s.failed,
    'req/s': round(s.latencies.length / s.seconds, 0),
    'p50 ms': round(percentile(s.latencies, 50), 2),
    'p99 ms': round(percentile(s.latencies, 99), 2),
    'max ms': round(percentile(s.latencies, 100), 2),
    failed: s.failed,
  })
  const table = [row('quiet', quiet), row('reloading', change)]
  const p99Ratio = round(percentile(change.latencies, 99) / percentile(quiet.latencies, 99), 3)
  const p50Ratio = round(percentile(change.latencies, 50) / percentile(quiet.latencies, 50), 3)
  table.push({
    section: table[0].section,
    window: 'ratio reloading/quiet',
    'p50 ms': p50Ratio,
    'p99 ms': p99Ratio,
  })

  // a trigger dropped while the previous reload still ran would borrow that reload's figure
  const clean = triggers.filter((t) => !t.overlapped)
  const newMs = clean.map((t) => t.newMs).filter((v) => v !== undefined)
  const swappedMs = clean.map((t) => t.swappedMs).filter((v) => v !== undefined)
  const failedRequests = load.failedTotal
  const stat = (name, values) => ({
    section: 'reloads',
    measure: name,
    samples: values.length,
    'p50 ms': round(percentile(values, 50), 1),
    'p90 ms': round(percentile(values, 90), 1),
    'max ms': round(percentile(values, 100), 1),
  })
  table.push(stat('trigger -> first response from the new generation', newMs))
  table.push(stat('trigger -> swap (admin event)', swappedMs))
  const medianNew = percentile(newMs, 50)
  const withinTarget = newMs.filter((v) => v <= targets.triggerToNewMs).length
  const judge = (ok) =>
    quickRun || settings.seconds < 10 ? 'quick run, too short to judge' : ok ? 'met' : 'NOT met'
  const notes = [
    `failed requests: ${failedRequests} of ${load.total} (target ${targets.failed}): ${failedRequests === 0 ? 'met' : 'NOT met'}` +
      (load.failures.length > 0 ? ` - first: ${load.failures.slice(0, 3).join('; ')}` : ''),
    `p99 reloading/quiet: ${p99Ratio} (target <= ${targets.p99Ratio}): ${judge(p99Ratio <= targets.p99Ratio)}; p50 ratio ${p50Ratio}`,
    `trigger -> first response from the new generation: median ${round(medianNew, 1)} ms, ` +
      `max ${round(percentile(newMs, 100), 1)} ms, ${withinTarget}/${newMs.length} within ${targets.triggerToNewMs} ms ` +
      `(target <= ${targets.triggerToNewMs} ms): ${judge(medianNew <= targets.triggerToNewMs)}`,
    `reloads: ${triggers.length} triggers, ${events.count('swapped')} swapped, ${events.count('failed')} failed, ` +
      `${clean.length - newMs.length} trigger(s) without a new generation seen, ` +
      `${triggers.length - clean.length} dropped before the previous reload was done (left out)`,
    `${settings.connections} keep-alive connections paced at ${settings.rate} req/s in total, ` +
      `${settings.windowSeconds} s windows alternating quiet/reloading, a .tmp every ${settings.intervalMs} ms ` +
      `in the reloading windows; client and host share the machine's cores.`,
  ]
  return {
    name: 'reload-under-load',
    table,
    notes,
    summary: {
      targets,
      settings,
      failedRequests,
      requests: load.total,
      p50Ms: {
        quiet: round(percentile(quiet.latencies, 50), 3),
        reloading: round(percentile(change.latencies, 50), 3),
      },
      p99Ms: {
        quiet: round(percentile(quiet.latencies, 99), 3),
        reloading: round(percentile(change.latencies, 99), 3),
      },
      p99Ratio,
      triggers: triggers.length,
      reloads: { swapped: events.count('swapped'), failed: events.count('failed') },
      triggerToNewMs: {
        median: round(medianNew, 2),
        max: round(percentile(newMs, 100), 2),
        samples: newMs.map((v) => round(v, 2)),
      },
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Load

/**
 * `connections` keep-alive sockets (one agent with one socket each), each sending its share of
 * `rate` requests per second on a fixed schedule; a late request goes at once, without catching up
 * in a burst. Records the start, latency and generation of every measured request.
 */
class PacedLoad {
  constructor(url, connections, rate) {
    this.url = url
    this.connections = connections
    this.intervalMs = (1000 * connections) / rate
    this.agents = Array.from(
      { length: connections },
      () => new http.Agent({ keepAlive: true, maxSockets: 1 }),
    )
    this.samples = []
    this.failures = []
    this.failedTotal = 0
    this.total = 0
    this.from = Number.POSITIVE_INFINITY
    this.until = Number.POSITIVE_INFINITY
    this.windowMs = 1000
    this.watchers = []
    this.running = false
    this.loops = []
  }

  /** Counts requests that start from `t0` on, in windows of `windowMs`. */
  measure(t0, windowMs) {
    this.from = t0
    this.windowMs = windowMs
  }

  measureUntil(t1) {
    this.until = t1
  }

  /** `fn(generation, at)` is called for each response until it returns true. */
  onGeneration(fn) {
    this.watchers.push(fn)
  }

  start() {
    this.running = true
    this.loops = this.agents.map((agent, i) => this.#loop(agent, i))
  }

  async stop() {
    this.running = false
    await Promise.all(this.loops)
    for (const agent of this.agents) agent.destroy()
  }

  async #loop(agent, i) {
    // spread the connections over one interval
    let next = performance.now() + (i * this.intervalMs) / this.connections
    while (this.running) {
      const now = performance.now()
      if (next > now) await delay(next - now)
      if (!this.running) break
      const start = performance.now()
      next = Math.max(start, next) + this.intervalMs
      const res = await getOnce(this.url, agent)
      const end = performance.now()
      if (this.watchers.length > 0 && res.status === 200) {
        const gen = res.body?.generation
        this.watchers = this.watchers.filter((fn) => !fn(gen, end))
      }
      if (start < this.from || start >= this.until) continue
      this.total++
      if (res.error || res.status !== 200) {
        this.failedTotal++
        if (this.failures.length < 10) this.failures.push(res.error?.message ?? `HTTP ${res.status}`)
        this.samples.push({ start, ms: Number.NaN })
      } else this.samples.push({ start, ms: end - start })
    }
  }

  /** Latencies and failures of the requests that started in the windows `pick(w)` chooses. */
  windowed(pick) {
    const windowMs = this.windowMs
    const latencies = []
    let failed = 0
    const windows = new Set()
    for (const s of this.samples) {
      const w = Math.floor((s.start - this.from) / windowMs)
      if (!pick(w)) continue
      windows.add(w)
      if (Number.isNaN(s.ms)) failed++
      else latencies.push(s.ms)
    }
    return { latencies, failed, seconds: (windows.size * windowMs) / 1000 }
  }
}

// ---------------------------------------------------------------------------------------------
// The admin event stream

/** Follows `GET /events`: counts phases, tracks the serving generation of `solo`. */
async function openEvents(session, url) {
  const controller = new AbortController()
  session.aborts.add(controller)
  const res = await fetch(url, { signal: controller.signal })
  if (res.status !== 200) throw new Error(`GET /events answered ${res.status}`)
  const state = {
    generation: 1,
    counts: new Map(),
    swapWatchers: [],
    count: (phase) => state.counts.get(phase) ?? 0,
    onSwap: (fn) => state.swapWatchers.push(fn),
    close: () => {
      controller.abort()
      session.aborts.delete(controller)
    },
  }
  const reader = res.body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        const at = performance.now()
        buffer += decoder.decode(value, { stream: true })
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data = /^data: (.*)$/m.exec(block)?.[1]
          if (!data) continue
          const event = JSON.parse(data)
          state.counts.set(event.phase, state.count(event.phase) + 1)
          const gen = event.generations?.solo
          if (event.phase === 'swapped' && typeof gen === 'number') {
            state.generation = Math.max(state.generation, gen)
            state.swapWatchers = state.swapWatchers.filter((fn) => !fn(gen, at))
          }
        }
      }
    } catch {
      // closed
    }
  })()
  return state
}

// ---------------------------------------------------------------------------------------------
// Shared with bench/reload-memory.js

/** Everything a run starts, so an abort or a failure can stop all of it. */
export class Session {
  children = new Set()
  loads = new Set()
  aborts = new Set()
  dirs = []

  async tempDir() {
    const dir = await mkdtemp(path.join(tmpdir(), 'nyala-bench-'))
    this.dirs.push(dir)
    return dir
  }

  track(child) {
    this.children.add(child)
    const forget = () => this.children.delete(child)
    child.once('exit', forget)
    child.once('error', forget)
  }

  /** Synchronous, for the abort path. */
  killNow() {
    for (const load of this.loads) load.running = false
    for (const c of this.aborts) c.abort()
    for (const child of this.children) child.kill('SIGKILL')
  }

  async close() {
    for (const load of this.loads) await load.stop()
    for (const c of this.aborts) c.abort()
    const left = [...this.children]
    for (const child of left) child.kill('SIGKILL')
    await Promise.all(left.map((child) => exitOf(child, 5000)))
    await Promise.all(this.dirs.map((dir) => rm(dir, { recursive: true, force: true })))
    this.dirs = []
  }
}

/** A root with config/ and modules/, 127.0.0.1, port 0 for both listeners, short grace periods. */
export async function makeBenchRoot(work, extra = []) {
  const root = path.join(work, 'root')
  await mkdir(path.join(root, 'modules'), { recursive: true })
  await mkdir(path.join(root, 'config'), { recursive: true })
  await writeFile(
    path.join(root, 'config', 'impala.properties'),
    [
      'host=127.0.0.1',
      'port=0',
      'admin.host=127.0.0.1',
      'admin.port=0',
      'log.level=info',
      'shutdown.grace.period=3',
      'shutdown.fast.timeout=1',
      ...extra,
      '',
    ].join('\n'),
  )
  return root
}

/** Writes a module source under `work/src/<dir>` and packs it to `out` (nyala's own packer, in process). */
export async function writeModule(work, dir, index, out, properties = 'version=1.0.0\n') {
  const src = path.join(work, 'src', dir)
  await mkdir(src, { recursive: true })
  await writeFile(path.join(src, 'module.properties'), properties)
  await writeFile(path.join(src, 'index.js'), index)
  const { packDirectory } = await import(pathToFileURL(packModule).href)
  await packDirectory(src, { out })
  return out
}

function alive(child) {
  return child.exitCode === null && child.signalCode === null
}

/** Resolves on exit, or with undefined after `ms`. */
export function exitOf(child, ms) {
  if (!alive(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })
}

/**
 * `node [nodeArgs] dist/cli.js start --root <root>`; resolves once it logs "listening", with its
 * ports and `stop()` (SIGTERM, then SIGKILL). Its output is read to the end so the pipe never fills.
 */
export async function startHost(session, root, { nodeArgs = [], readyTimeoutMs = 60_000 } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, cliPath, 'start', '--root', root], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  session.track(child)
  const tail = []
  const remember = (line) => {
    tail.push(line)
    if (tail.length > 40) tail.shift()
  }
  const errors = []
  let ready
  const listening = new Promise((resolve, reject) => {
    ready = { resolve, reject }
  })
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
      if (record.level >= 50 && errors.length < 10) errors.push(record.msg)
      if (typeof record.port === 'number' && /^listening/.test(record.msg ?? '')) ready.resolve(record)
    }
  })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk) => {
    for (const line of chunk.split('\n')) if (line) remember(line)
  })
  child.once('error', (err) => ready.reject(new Error(`nyala could not start: ${err.message}`)))
  child.once('exit', (code, signal) =>
    ready.reject(new Error(`nyala exited (${code ?? signal}) before listening:\n${tail.join('\n')}`)),
  )
  const timer = setTimeout(() => {
    child.kill('SIGKILL')
    ready.reject(new Error(`nyala did not listen within ${readyTimeoutMs} ms:\n${tail.join('\n')}`))
  }, readyTimeoutMs)
  let record
  try {
    record = await listening
  } finally {
    clearTimeout(timer)
  }
  return {
    pid: child.pid,
    port: record.port,
    adminPort: record.adminPort,
    /** Error-level log messages so far (at most 10). */
    errors,
    async stop(ms = 8000) {
      if (!alive(child)) return
      child.kill('SIGTERM')
      if ((await exitOf(child, ms)) !== undefined) return
      child.kill('SIGKILL')
      await exitOf(child, 3000)
    },
  }
}

/** One request; resolves { status, body } or { error }, never rejects. `agent` false: a fresh socket. */
export function getOnce(url, agent = false, { method = 'GET', timeoutMs = 15_000 } = {}) {
  return new Promise((resolve) => {
    const req = http.request(url, { method, agent, timeout: timeoutMs }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        text += d
      })
      res.on('end', () => {
        let body = text
        try {
          body = JSON.parse(text)
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode, body })
      })
      res.on('error', (error) => resolve({ error }))
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)))
    req.on('error', (error) => resolve({ error }))
    req.end()
  })
}

async function sleepUntil(t) {
  const ms = t - performance.now()
  if (ms > 0) await delay(ms)
}

/** Polls `fn` every 10 ms until true or `ms` passed. */
export async function waitFor(fn, ms) {
  const deadline = performance.now() + ms
  while (!fn() && performance.now() < deadline) await delay(10)
}

/** Nearest-rank percentile (100: the maximum); NaN for no values. */
export function percentile(values, p) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1]
}

export function round(value, digits) {
  if (!Number.isFinite(value)) return undefined
  const f = 10 ** digits
  return Math.round(value * f) / f
}
