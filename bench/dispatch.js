// Requests per second through Nyala's dispatcher into a module route, against the same route on a
// bare Fastify app, plus the host's start-up time for 1, 10 and 100 modules.
//
// These machines have 2 shared cores: two runs one after the other are not comparable (see
// /work/shared/NOTES.md, "Measuring on these machines"). Both servers are therefore loaded at the
// same time, by the same client with the same settings, in several short rounds that alternate
// which load starts first; the median of the per-round ratios is the figure.
//
// The load is pipelined (10 requests in flight per connection, as Fastify's own benchmarks do).
// Without it one autocannon process cannot keep two servers busy: the servers wait on the client,
// whichever answers sooner is sent more, and the two race for the CPU; per-round ratios then ran
// from 0.66 to 1.14 for one build, and the CPU per request moved with the rate each server got.
// Pipelined, each server always has work and gets an even share of the cores (about 50 % each),
// so the req/s ratio is the ratio of what each does with the same CPU (bench/dispatch-gap.md,
// round 3).
import { spawn, spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import autocannon from 'autocannon'
import {
  assertBuilt,
  cliPath,
  closeOnSignal,
  cpuMicros,
  makeRoot,
  mapLimit,
  medianOf,
  packageUrl,
  packBundle,
  packModule,
  request,
  round,
  runNode,
  startServer,
  withSession,
  writeModuleSource,
} from './common.js'

export const target = 0.95
const body = { hello: 'world' }
const moduleCount = 100
/** The module the 100-module host is loaded through; any would do, lookup does not scan. */
const busyTarget = 'm050'

// 10 rounds: with 6, a quiet machine still gave medians from 0.92 to 1.00 for the same build
const full = {
  roundSeconds: 3,
  rounds: 10,
  warmupSeconds: 2,
  connections: 10,
  pipelining: 10,
  startupSamples: 3,
}
const quick = {
  roundSeconds: 0.5,
  rounds: 1,
  warmupSeconds: 0,
  connections: 10,
  pipelining: 10,
  startupSamples: 1,
}

/**
 * @param {{ quick?: boolean, duration?: number, rounds?: number, signal?: AbortSignal,
 *   progress?: (msg: string) => void }} opts
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.duration) settings.roundSeconds = opts.duration
  if (opts.rounds) settings.rounds = opts.rounds
  const progress = opts.progress ?? (() => {})
  assertBuilt([cliPath, packModule])

  return withSession(opts.signal, async (session) => {
    const check = () => opts.signal?.throwIfAborted()
    const work = await session.tempDir()
    progress(`preparing ${moduleCount} modules in ${work}`)
    const roots = await prepareRoots(session, work)
    const bareScript = await writeBareScript(work)
    // Nyala gives every module instance a logger; Fastify then does per-request work (response
    // listeners, timing) that a logger-less app skips (bench/dispatch-gap.md). This case measures
    // against an app configured like a module instance: pino at info, request logging off.
    const bareLoggerScript = await writeBareScript(work, { logger: true })
    check()

    const table = []
    const ratios = {}
    const cases = [
      { name: '1 module', root: roots[1], route: '/m000/hello' },
      { name: `${moduleCount} modules`, root: roots[moduleCount], route: `/${busyTarget}/hello` },
      {
        name: '1 module, baseline with a logger',
        root: roots[1],
        route: '/m000/hello',
        bare: bareLoggerScript,
      },
    ]
    // wrk (C, Debian's `apt-get install wrk`) keeps both servers saturated with far less client
    // CPU than autocannon: a second opinion on the same pair of servers
    const wrk = hasWrk()
    if (wrk) cases.push({ name: '1 module, wrk', root: roots[1], route: '/m000/hello', client: 'wrk' })
    for (const c of cases) {
      progress(`throughput, ${c.name}: ${settings.rounds} round(s) of ${settings.roundSeconds} s`)
      const rounds = await compareCase(session, c, c.bare ?? bareScript, settings, check)
      check()
      const valid = rounds.filter((r) => r.errors === 0)
      const median = valid.length > 0 ? round(medianOf(valid.map((r) => r.ratio)), 3) : undefined
      const sum = (key) => valid.reduce((a, r) => a + r[key], 0)
      const cpu = valid.filter((r) => r['nyala cpu us/req'] > 0 && r['bare cpu us/req'] > 0)
      ratios[c.name] = {
        median,
        rounds: rounds.map((r) => r.ratio),
        invalidRounds: rounds.length - valid.length,
        // all rounds' requests together: less swayed by one round the scheduler favoured
        pooled: valid.length > 0 ? round(sum('nyala req/s') / sum('bare req/s'), 3) : undefined,
        // what a server saturated on CPU would see: bare's CPU per request over Nyala's
        cpuRatio:
          cpu.length > 0
            ? round(medianOf(cpu.map((r) => r['bare cpu us/req'] / r['nyala cpu us/req'])), 3)
            : undefined,
      }
      for (const r of rounds) table.push({ section: 'throughput', case: c.name, ...r })
      table.push({
        section: 'throughput',
        case: c.name,
        round: 'median',
        'nyala req/s': round(medianOf(valid.map((r) => r['nyala req/s'])), 0),
        'bare req/s': round(medianOf(valid.map((r) => r['bare req/s'])), 0),
        ratio: median,
      })
    }

    const startup = {}
    for (const n of [1, 10, moduleCount]) {
      progress(`start-up, ${n} module(s): ${settings.startupSamples} sample(s)`)
      const samples = []
      for (let i = 0; i < settings.startupSamples; i++) {
        check()
        samples.push(await measureStartup(session, roots[n], n))
      }
      const spawnMs = samples.map((s) => s.spawnMs)
      startup[n] = round(medianOf(spawnMs), 1)
      table.push({
        section: 'start-up (process spawn to "listening" log line)',
        modules: n,
        samples: samples.length,
        'median ms': startup[n],
        'min ms': round(Math.min(...spawnMs), 1),
        'max ms': round(Math.max(...spawnMs), 1),
        'host load ms (median)': round(medianOf(samples.map((s) => s.loadMs)), 1),
      })
    }

    const notes = []
    for (const [name, r] of Object.entries(ratios)) {
      const verdict =
        r.median === undefined
          ? 'no valid round'
          : opts.quick
            ? 'quick run, too short to judge'
            : r.median >= target
              ? 'met'
              : 'NOT met'
      notes.push(
        `Nyala/bare ratio, ${name}: median ${r.median ?? 'n/a'} over ${r.rounds.length} round(s) ` +
          `[${r.rounds.join(', ')}], target >= ${target}: ${verdict}`,
      )
      notes.push(
        `  ${name}: all rounds pooled ${r.pooled ?? 'n/a'}; CPU per request, bare/Nyala (median of rounds): ` +
          `${r.cpuRatio ?? 'n/a'}, the throughput ratio of servers saturated on CPU`,
      )
      if (r.invalidRounds > 0) notes.push(`  ${r.invalidRounds} round(s) had errors and are left out`)
    }
    notes.push(
      wrk
        ? `The wrk case: one wrk thread per server, ${settings.connections} keep-alive connections, no pipelining.`
        : 'wrk is not installed (apt-get install wrk): its case was skipped',
    )
    notes.push(
      `Start-up, spawn to listening: ${Object.entries(startup)
        .map(([n, ms]) => `${n} module(s) ${ms} ms`)
        .join(', ')}`,
    )
    notes.push(
      `Both servers loaded at once, ${settings.connections} keep-alive connections each with ` +
        `${settings.pipelining} requests in flight (so both stay busy and share the cores evenly), ` +
        `rounds alternate which load starts first. cpu us/req comes from /proc (10 ms ticks); ` +
        `client cpu % near 100 means the client, not the servers, set the pace.`,
    )
    return {
      name: 'dispatch',
      table,
      notes,
      summary: { target, settings, ratio: ratios, startupMs: startup },
    }
  })
}

/** Runs the rounds for one case with both servers up; stops both whatever happens. */
async function compareCase(session, c, bareScript, settings, check) {
  let nyala
  let bare
  try {
    // started one after the other so neither start-up steals CPU from the other's timing
    nyala = await startServer(session, 'nyala', [cliPath, 'start', '--root', c.root, '--port', '0'], {
      readyTimeoutMs: 60_000,
      stopMs: 8000,
    })
    bare = await startServer(session, 'bare', [bareScript, c.route], { readyTimeoutMs: 30_000, stopMs: 8000 })
    check()
    const urls = {
      nyala: `http://127.0.0.1:${nyala.port}${c.route}`,
      bare: `http://127.0.0.1:${bare.port}${c.route}`,
    }
    // a fast 404 would look like a fast server: both must give the same 200 first
    const answers = await Promise.all([
      request(urls.nyala, { timeoutMs: 10_000 }),
      request(urls.bare, { timeoutMs: 10_000 }),
    ])
    for (const [i, a] of answers.entries()) {
      const who = i === 0 ? 'nyala' : 'bare'
      if (a.status !== 200 || a.text !== JSON.stringify(body)) {
        throw new Error(`${who} ${c.route} answered ${a.status} ${a.text.slice(0, 200)}`)
      }
    }
    if (settings.warmupSeconds > 0) {
      const shape = { ...settings, client: c.client }
      await loadBoth(session, urls, { nyala, bare }, settings.warmupSeconds, shape, 'nyala')
    }
    const rounds = []
    for (let i = 0; i < settings.rounds; i++) {
      check()
      const first = i % 2 === 0 ? 'nyala' : 'bare'
      const shape = { ...settings, client: c.client }
      const r = await loadBoth(session, urls, { nyala, bare }, settings.roundSeconds, shape, first)
      rounds.push({ round: i + 1, first, ...r })
      await delay(200)
    }
    return rounds
  } finally {
    await Promise.all([nyala?.stop(), bare?.stop()])
  }
}

/** Loads both servers at the same time; `first` is the load started first (same tick). */
async function loadBoth(session, urls, servers, seconds, shape, first) {
  const order = first === 'nyala' ? ['nyala', 'bare'] : ['bare', 'nyala']
  const cpuBefore = { nyala: cpuMicros(servers.nyala.pid), bare: cpuMicros(servers.bare.pid) }
  const clientBefore = process.cpuUsage()
  const t0 = performance.now()
  const running = {}
  for (const who of order) running[who] = load(session, urls[who], seconds, shape)
  const [a, b] = await Promise.all([running.nyala, running.bare])
  const wall = performance.now() - t0
  const client = process.cpuUsage(clientBefore)
  const stats = { nyala: a, bare: b }
  const out = {}
  for (const who of ['nyala', 'bare']) out[`${who} req/s`] = round(stats[who].rps, 0)
  out.ratio = round(a.rps / b.rps, 3)
  for (const who of ['nyala', 'bare']) out[`${who} p99 ms`] = stats[who].p99
  for (const who of ['nyala', 'bare']) {
    const after = cpuMicros(servers[who].pid)
    const before = cpuBefore[who]
    out[`${who} cpu us/req`] =
      after === undefined || before === undefined || stats[who].requests === 0
        ? undefined
        : round((after - before) / stats[who].requests, 1)
  }
  out['client cpu %'] = round(((client.user + client.system) / 1000 / wall) * 100, 0)
  out.errors = a.errors + b.errors
  return out
}

/** One autocannon (or wrk) load, bounded by a watchdog in case a server stops answering. */
async function load(session, url, seconds, { connections, pipelining, client }) {
  if (client === 'wrk') return loadWrk(session, url, seconds, connections)
  const tracker = autocannon({
    url,
    connections,
    pipelining,
    duration: seconds,
    timeout: 10,
    // autocannon only notices the end of the duration on a sample tick (1 s by default)
    sampleInt: 100,
  })
  session.clients.add(tracker)
  const watchdog = setTimeout(() => tracker.stop(), (seconds + 15) * 1000)
  try {
    const result = await tracker
    const requests = result.requests.total
    return {
      requests,
      rps: result.duration > 0 ? requests / result.duration : 0,
      p99: result.latency.p99,
      errors: result.errors + result.timeouts + result.non2xx,
    }
  } finally {
    clearTimeout(watchdog)
    session.clients.delete(tracker)
  }
}

function hasWrk() {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined
}

/** One wrk load: one thread, `connections` keep-alive connections, no pipelining. */
async function loadWrk(session, url, seconds, connections) {
  const duration = Math.max(1, Math.round(seconds))
  const child = spawn(
    'wrk',
    ['-t1', `-c${connections}`, `-d${duration}s`, '--timeout', '10s', '--latency', url],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const tracker = { stop: () => child.kill('SIGKILL') }
  session.clients.add(tracker)
  const watchdog = setTimeout(() => child.kill('SIGKILL'), (duration + 15) * 1000)
  let output = ''
  child.stdout.on('data', (d) => {
    output += d
  })
  child.stderr.on('data', (d) => {
    output += d
  })
  try {
    const code = await new Promise((resolve) => {
      child.once('close', resolve)
      child.once('error', () => resolve(-1))
    })
    const done = /(\d+) requests in ([\d.]+)(us|ms|s|m)\b/.exec(output)
    if (code !== 0 || !done) throw new Error(`wrk ${url} failed (${code}): ${output.slice(0, 500)}`)
    const requests = Number(done[1])
    const elapsed = Number(done[2]) * { us: 1e-6, ms: 1e-3, s: 1, m: 60 }[done[3]]
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0)
    const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output)
    const p99 = /^\s*99%\s+([\d.]+)(us|ms|s)$/m.exec(output)
    return {
      requests,
      rps: elapsed > 0 ? requests / elapsed : 0,
      p99: p99 ? round(Number(p99[1]) * { us: 1e-3, ms: 1, s: 1000 }[p99[2]], 2) : undefined,
      errors: non2xx + (socket ? socket.slice(1).reduce((a, n) => a + Number(n), 0) : 0),
    }
  } finally {
    clearTimeout(watchdog)
    session.clients.delete(tracker)
  }
}

async function measureStartup(session, root, modules) {
  const server = await startServer(session, 'nyala', [cliPath, 'start', '--root', root, '--port', '0'], {
    readyTimeoutMs: 60_000,
    stopMs: 8000,
  })
  try {
    const loaded = server.records.find((r) => typeof r.msg === 'string' && r.msg.startsWith('modules loaded'))
    if (loaded?.running !== modules) {
      throw new Error(`expected ${modules} running modules, host says ${JSON.stringify(loaded)}`)
    }
    return { spawnMs: server.readyMs, loadMs: loaded.ms }
  } finally {
    await server.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/** Sources m000..m099, and roots with 1, 10 and 100 of them packed into `modules/`. */
async function prepareRoots(session, work) {
  const names = Array.from({ length: moduleCount }, (_, i) => `m${String(i).padStart(3, '0')}`)
  const src = path.join(work, 'src')
  for (const name of names) {
    await writeModuleSource(
      path.join(src, name),
      `module.exports = {\n  async register(app) {\n    app.get('/hello', async () => (${JSON.stringify(body)}))\n  },\n}\n`,
    )
  }
  const roots = {}
  for (const n of [1, 10, moduleCount]) roots[n] = await makeRoot(path.join(work, `root-${n}`))
  const out = (n, name) => path.join(roots[n], 'modules', `${name}.zip`)
  // the real `nyala pack` where it is cheap enough; 100 CLI spawns would take longer than the rest
  const pack = (n, name) =>
    runNode(session, [cliPath, 'pack', path.join(src, name), '-o', out(n, name)], { check: true })
  await pack(1, names[0])
  await mapLimit(names.slice(0, 10), 2, (name) => pack(10, name))
  await mapLimit(names, 8, (name) => packBundle(path.join(src, name), out(moduleCount, name)))
  return roots
}

/**
 * The bare baseline: one Fastify app, the same route and body, Fastify's defaults otherwise
 * (no logger), or with `logger` a pino logger at info and request logging off, as Nyala
 * configures a module's instance.
 */
async function writeBareScript(work, { logger = false } = {}) {
  const file = path.join(work, logger ? 'bare-fastify-logger.mjs' : 'bare-fastify.mjs')
  const options = logger ? "{ logger: { level: 'info' }, disableRequestLogging: true }" : ''
  // the script lives in a temp dir, where a bare `fastify` specifier would not resolve
  await writeFile(
    file,
    `import Fastify from ${JSON.stringify(packageUrl('fastify'))}
const route = process.argv[2]
const app = Fastify(${options})
app.get(route, async () => (${JSON.stringify(body)}))
await app.listen({ host: '127.0.0.1', port: 0 })
const { port } = app.server.address()
console.log(JSON.stringify({ msg: 'listening on http://127.0.0.1:' + port, port }))
${closeOnSignal('app')}
`,
  )
  return file
}
