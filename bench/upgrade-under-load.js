// Process upgrade under steady keep-alive load: Nyala replaced by `nyala upgrade` every few
// seconds, against what users would do otherwise, `node --watch` restarting a bare Fastify
// server on a file change. Prints failed requests and refused connections for both (target 0
// for Nyala), Nyala's p99 in the windows around each upgrade against the quiet windows between
// them (target ratio <= 1.5), and the handover time from SIGQUIT to the successor accepting.
//
// One continuous load is split into alternating quiet and upgrade windows: on these shared
// 2-core machines a baseline run followed by an upgrade run is not comparable (NOTES.md,
// "Measuring on these machines"). The two servers are loaded one after the other: the figures
// compared between them are failure counts, not speed.
import { readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import {
  assertBuilt,
  cliPath,
  freePort,
  makeRoot,
  medianOf,
  packageUrl,
  projectRoot,
  request,
  round,
  runNode,
  startServer,
  withSession,
  writeModuleSource,
} from './common.js'

const addonPath = path.join(projectRoot, 'native', 'build', 'Release', 'nyala_fdpass.node')

export const targets = { failures: 0, p99Ratio: 1.5 }
const body = { hello: 'world' }

const full = { seconds: 20, periodSeconds: 5, connections: 10 }
const quick = { seconds: 4, periodSeconds: 2, connections: 4 }

/**
 * @param {{ quick?: boolean, duration?: number, signal?: AbortSignal, progress?: (msg: string) => void }} opts
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.duration) settings.seconds = opts.duration
  const progress = opts.progress ?? (() => {})
  assertBuilt([cliPath, addonPath], 'run "npm run build" and "npm run build:native"')
  return withSession(opts.signal, async (session) => {
    const work = await session.tempDir('nyala-bench-upgrade-')
    progress(
      `Nyala: ${settings.seconds} s of load, ${settings.connections} keep-alive connections, an upgrade every ${settings.periodSeconds} s`,
    )
    const nyala = await loadNyala(session, work, settings, opts.signal)
    opts.signal?.throwIfAborted()
    progress(`node --watch: the same load, a file change every ${settings.periodSeconds} s`)
    const watch = await loadWatch(session, work, settings, opts.signal)
    return report(settings, nyala, watch, opts.quick)
  })
}

function report(settings, nyala, watch, isQuick) {
  const table = []
  for (const [name, r] of [
    ['Nyala (nyala upgrade)', nyala],
    ['node --watch + Fastify', watch],
  ]) {
    table.push({
      section: 'failures',
      server: name,
      changes: r.changes,
      requests: r.load.requests,
      'failed requests': r.load.failed,
      'refused connections': r.load.refused,
      'reset / hang up': r.load.reset,
      'non-200': r.load.non200,
      'other errors': r.load.other,
    })
  }
  const quiet = percentiles(nyala.windows.quiet)
  const busy = percentiles(nyala.windows.upgrade)
  const ratio = quiet.p99 > 0 && Number.isFinite(busy.p99) ? round(busy.p99 / quiet.p99, 2) : undefined
  for (const [window, p, n] of [
    ['quiet', quiet, nyala.windows.quiet.length],
    ['around upgrades', busy, nyala.windows.upgrade.length],
  ]) {
    table.push({
      section: 'Nyala latency',
      window,
      requests: n,
      'p50 ms': p.p50,
      'p99 ms': p.p99,
      'max ms': p.max,
    })
  }
  for (const [i, u] of nyala.upgrades.entries()) {
    table.push({
      section: 'Nyala upgrades',
      upgrade: i + 1,
      ok: u.ok ? 'yes' : `no: ${u.error}`,
      'nyala upgrade ms': u.commandMs,
      'SIGQUIT to accepting ms': u.handoverMs,
      'old pid exit ms': u.oldExitMs,
    })
  }
  const handovers = nyala.upgrades.map((u) => u.handoverMs).filter((v) => typeof v === 'number')
  const handoverMs = round(medianOf(handovers), 1)
  const failed = nyala.load.failed
  const verdict = (ok) => (isQuick ? 'quick run, too short to judge' : ok ? 'met' : 'NOT met')
  const notes = [
    `Failed requests: Nyala ${failed} (${nyala.load.refused} refused connections) over ${nyala.changes} upgrade(s), ` +
      `node --watch ${watch.load.failed} (${watch.load.refused} refused) over ${watch.changes} restart(s); ` +
      `target ${targets.failures} for Nyala: ${failed === targets.failures ? 'met' : 'NOT met'}`,
    `p99 around upgrades / quiet: ${ratio ?? 'n/a'} (${busy.p99} ms / ${quiet.p99} ms), target <= ${targets.p99Ratio}: ` +
      verdict(ratio !== undefined && ratio <= targets.p99Ratio),
    `Handover, SIGQUIT to successor accepting: median ${handoverMs ?? 'n/a'} ms [${handovers.join(', ')}]`,
    `Each ${settings.periodSeconds} s period: first half quiet, an upgrade (or file change) at its middle, the ` +
      'second half is the upgrade window. Requests of the window they end in; latency includes any new connection.',
  ]
  return {
    name: 'upgrade',
    table,
    notes,
    summary: {
      targets,
      settings,
      nyala: {
        ...nyala.load,
        upgrades: nyala.changes,
        okUpgrades: nyala.upgrades.filter((u) => u.ok).length,
      },
      watch: { ...watch.load, restarts: watch.changes },
      p99: { quiet: quiet.p99, upgrade: busy.p99, ratio },
      handoverMs: { median: handoverMs, all: handovers },
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Nyala: a daemonized instance, `nyala upgrade` in the middle of each period

async function loadNyala(session, work, settings, signal) {
  const root = await makeRoot(path.join(work, 'nyala'), { 'shutdown.grace.period': 4 })
  const src = path.join(work, 'src', 'hello')
  await writeModuleSource(
    src,
    `module.exports = { async register (app) { app.get('/', async () => (${JSON.stringify(body)})) } }\n`,
  )
  const cli = (args, timeoutMs) => runNode(session, [cliPath, ...args], { check: true, timeoutMs })
  await cli(['pack', src, '-o', path.join(root, 'modules', 'hello.zip')])
  const { output: started } = await cli(['start', '--root', root, '--daemonize'])
  const m = /pid (\d+) serving on (\S+)/.exec(started)
  if (!m) throw new Error(`nyala did not start: ${started}`)
  session.adopt(Number(m[1]))
  const url = `${m[2]}/hello/`
  await expectBody(url)

  const upgrades = []
  const load = startLoad(url, settings, signal)
  const changes = await everyPeriod(load, settings, signal, async () => {
    const t0 = performance.now()
    const u = { ok: false }
    try {
      const { output } = await cli(['upgrade', '--root', root], 60_000)
      const successor = Number(/successor pid (\d+)/.exec(output)?.[1])
      const old = Number(/upgrading pid (\d+)/.exec(output)?.[1])
      session.adopt(successor)
      u.commandMs = round(performance.now() - t0, 0)
      u.ok = true
      u.old = old
      u.successor = successor
    } catch (err) {
      u.error = err.message.split('\n')[0]
      const successor = Number(/successor pid (\d+)/.exec(err.message)?.[1])
      if (successor) session.adopt(successor)
    }
    upgrades.push(u)
  })
  const result = await load.done
  // handover times come from the log both processes append to, after the load
  const records = readLog(path.join(root, 'nyala.log'))
  for (const u of upgrades) {
    if (!u.ok) continue
    const quit = records.find((r) => r.pid === u.old && r.signal === 'SIGQUIT')
    const accepting = records.find((r) => r.pid === u.successor && /^listening/.test(r.msg ?? ''))
    const stopped = records.find((r) => r.pid === u.old && r.msg === 'stopped')
    if (quit && accepting) u.handoverMs = Date.parse(accepting.time) - Date.parse(quit.time)
    if (quit && stopped) u.oldExitMs = Date.parse(stopped.time) - Date.parse(quit.time)
  }
  return { load: result.counts, windows: result.windows, upgrades, changes }
}

// ---------------------------------------------------------------------------------------------
// node --watch: a bare Fastify server on a fixed port, its file rewritten in each period

async function loadWatch(session, work, settings, signal) {
  const dir = path.join(work, 'watch')
  await mkdir(dir, { recursive: true })
  const script = path.join(dir, 'server.mjs')
  const port = await freePort()
  // a bare specifier would not resolve from a temp dir
  const source = (n) => `import Fastify from ${JSON.stringify(packageUrl('fastify'))}
// revision ${n}
const app = Fastify()
app.get('/hello/', async () => (${JSON.stringify(body)}))
await app.listen({ host: '127.0.0.1', port: ${port} })
console.log(JSON.stringify({ msg: 'listening', port: ${port} }))
`
  await writeFile(script, source(0))
  // its own process group, so `node --watch` and the server it restarts stop together
  const watcher = await startServer(session, 'node --watch', ['--watch', script], {
    cwd: dir,
    readyTimeoutMs: 20_000,
  })
  const url = `http://127.0.0.1:${port}/hello/`
  await expectBody(url)
  let revision = 0
  const load = startLoad(url, settings, signal)
  const changes = await everyPeriod(load, settings, signal, async () => {
    revision++
    await writeFile(script, source(revision))
  })
  const result = await load.done
  await watcher.stop(5000)
  return { load: result.counts, windows: result.windows, changes }
}

// ---------------------------------------------------------------------------------------------
// The load: `connections` sequential loops over one keep-alive agent, each request recorded

function startLoad(url, settings, signal) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: settings.connections })
  const counts = { requests: 0, ok: 0, failed: 0, refused: 0, reset: 0, non200: 0, other: 0 }
  const samples = []
  const t0 = performance.now()
  const end = t0 + settings.seconds * 1000
  const loop = async () => {
    while (performance.now() < end && !signal?.aborted) {
      const start = performance.now()
      const r = await get(url, agent)
      const finish = performance.now()
      counts.requests++
      if (r.status === 200) {
        counts.ok++
        samples.push([finish - t0, finish - start])
        continue
      }
      counts.failed++
      if (r.status !== undefined) counts.non200++
      else if (r.code === 'ECONNREFUSED') counts.refused++
      else if (r.code === 'ECONNRESET' || /hang up/.test(r.error)) counts.reset++
      else counts.other++
      // a server that is down refuses in microseconds: do not count thousands of refusals a second
      await delay(10)
    }
  }
  const done = Promise.all(Array.from({ length: settings.connections }, loop)).then(() => {
    agent.destroy()
    const period = settings.periodSeconds * 1000
    const windows = { quiet: [], upgrade: [] }
    for (const [at, ms] of samples) {
      const into = at % period
      ;(into < period / 2 ? windows.quiet : windows.upgrade).push(ms)
    }
    return { counts, windows }
  })
  return { t0, done }
}

/** Calls `change` in the middle of each period of the load; resolves with how many ran. */
async function everyPeriod(load, settings, signal, change) {
  const period = settings.periodSeconds * 1000
  let n = 0
  for (let at = period / 2; at < settings.seconds * 1000; at += period) {
    const wait = load.t0 + at - performance.now()
    if (wait > 0) await delay(wait)
    if (signal?.aborted) break
    await change()
    n++
  }
  return n
}

function get(url, agent) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode }))
      res.on('error', (err) => resolve({ code: err.code, error: err.message }))
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })))
    req.on('error', (err) => resolve({ code: err.code, error: err.message }))
  })
}

async function expectBody(url) {
  const { text } = await request(url, { timeoutMs: 10_000 })
  if (text !== JSON.stringify(body)) throw new Error(`${url} answered ${text.slice(0, 200)}`)
}

function readLog(file) {
  const records = []
  let text = ''
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return records
  }
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      records.push(JSON.parse(line))
    } catch {
      // a partial line
    }
  }
  return records
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function percentiles(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q) =>
    sorted.length === 0
      ? undefined
      : round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))], 2)
  return { p50: at(0.5), p99: at(0.99), max: at(1) }
}
