// Nyala's hot reload against what users would pick instead, on one workload: a route answering a
// small JSON body under a steady keep-alive load while the route's code changes.
//
// Contenders (each its own server process, started one after the other):
//   nyala-overlap    Nyala, module bundle replaced in modules/ (watcher), auto.reload.mode=overlap
//   nyala-blocking   the same with auto.reload.mode=blocking
//   node-watch       `node --watch` restarting a bare Fastify server when routes.mjs changes
//   restartable      @fastify/restartable: fs.watch -> app.restart() in process; the factory
//                    imports routes.mjs?v=N, since a restart alone would run the old code again
//   esm-cache-bust   one Fastify app whose handler calls the newest import('./routes.mjs?v=N'),
//                    the way hot-hook and similar tools swap ES modules
//   nyala-upgrade    Nyala process upgrade: the new bundle copied into modules/, then `nyala upgrade`
//                    (a new process loads every module and takes the listening socket over); fewer
//                    changes in the memory phase, see allContenders
//
// The same client for all (bench/common.js startLoad: paced keep-alive loops that keep every
// request's timestamps), the same code (a route returning { hello, v, words } plus ~10 KB of
// source that differs per version), the same change (the new file is written beside the watched
// one and renamed over it), the same memory probe (GET /probe/mem: global.gc() under --expose-gc,
// then process.memoryUsage() of the serving process).
//
// One continuous load per contender, cut into alternating 2 s windows (NOTES.md, "Measuring on
// these machines": a separate baseline run is not comparable): quiet, change, quiet, change, ...
// Each change window starts with one change. Then, still under load, more changes one after the
// other (each as soon as the previous one answers with its new code) up to 200, and the heap
// and RSS of the serving process after GC.
import { copyFile, mkdir, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { latencyChart } from './chart.js'
import {
  cliPath,
  closeOnSignal,
  freePort,
  makeRoot,
  mapLimit,
  mb,
  medianOf,
  memHandler,
  packageUrl,
  percentile,
  probeMemory,
  projectRoot,
  round,
  runNode,
  startLoad,
  startServer,
  waitFor,
  withSession,
  writeMemProbe,
  writeModule,
} from './common.js'

export const targets = { p99Ratio: 1.2, failures: 0, flatMbPer100: 0.5 }

const full = {
  windowSeconds: 2,
  changes: 10,
  totalChanges: 200,
  warmupSeconds: 2,
  connections: 10,
  rate: 1000,
  pauseMs: 50,
  newCodeTimeoutMs: 5000,
}
const quick = {
  windowSeconds: 0.5,
  changes: 3,
  totalChanges: 10,
  warmupSeconds: 0.3,
  connections: 4,
  rate: 400,
  pauseMs: 50,
  newCodeTimeoutMs: 5000,
}

const appPath = '/app/hello'
const memPath = '/probe/mem'

/** ~10 KB of source that differs per version, so each version is real new code to compile and keep. */
function ballast(v) {
  const words = Array.from({ length: 400 }, (_, i) => `'w${v}-${i}-${(i * 2654435761) % 1000003}'`)
  return `const words = [\n  ${words.join(',\n  ')},\n]\n`
}
const esmRoutes = (v) =>
  `${ballast(v)}export function hello() {\n  return { hello: 'world', v: ${v}, words: words.length }\n}\n`
const nyalaIndex = (v) =>
  `${ballast(v)}module.exports = {\n  async register(app) {\n    app.get('/hello', async () => ({ hello: 'world', v: ${v}, words: words.length }))\n  },\n}\n`

/**
 * @param {{ quick?: boolean, duration?: number, rounds?: number, signal?: AbortSignal,
 *   progress?: (msg: string) => void, chartDir?: string, only?: string[] }} opts
 *   duration: seconds per window; rounds: changes in the windowed phase
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.duration) settings.windowSeconds = opts.duration
  if (opts.rounds) settings.changes = opts.rounds
  if (opts.totalChanges) settings.totalChanges = opts.totalChanges
  if (opts.pauseMs !== undefined) settings.pauseMs = opts.pauseMs
  settings.totalChanges = Math.max(settings.totalChanges, settings.changes)
  const progress = opts.progress ?? (() => {})
  const chartDir = opts.chartDir ?? path.join(projectRoot, 'bench', 'results', 'charts')

  return withSession(opts.signal, async (session) => {
    const check = () => opts.signal?.throwIfAborted()
    const work = await session.tempDir('nyala-bench-peers-')
    const fixtures = { work, session, settings, zips: undefined }
    const upgradeAvailable = await hasUpgradeCommand(session)
    const contenders = allContenders(upgradeAvailable, settings).filter(
      (c) => !opts.only || opts.only.includes(c.key),
    )
    if (contenders.some((c) => c.key.startsWith('nyala') && c.available !== false)) {
      progress(`packing ${settings.totalChanges + 1} versions of the Nyala module`)
      fixtures.zips = await packVersions(work, settings.totalChanges)
    }
    check()

    const results = []
    for (const contender of contenders) {
      if (contender.available === false) {
        results.push({ key: contender.key, label: contender.label, unavailable: contender.unavailableReason })
        continue
      }
      progress(
        `${contender.key}: ${settings.changes} change(s) in ${settings.windowSeconds} s windows, ` +
          `then up to ${Math.min(contender.maxChanges ?? Infinity, settings.totalChanges)} changes for memory`,
      )
      results.push(await measure(session, contender, fixtures, settings, check, progress))
      check()
    }

    const yMaxMs = Math.max(10, ...results.flatMap((r) => (r.buckets ?? []).map((b) => b.max ?? 0))) * 1.2
    const charts = []
    await mkdir(chartDir, { recursive: true })
    for (const r of results) {
      if (!r.buckets) continue
      const file = path.join(chartDir, `peers-${r.key}.svg`)
      await writeFile(
        file,
        latencyChart({
          title: `${r.label}: latency during changes (${r.rate} req/s, ${r.connections} keep-alive connections)`,
          durationMs: r.durationMs,
          bucketMs: r.bucketMs,
          buckets: r.buckets,
          changeWindows: r.windows.filter((w) => w.kind === 'change'),
          changes: r.changeTimes,
          yMaxMs,
        }),
      )
      charts.push({ title: r.label, file })
    }
    return report(results, settings, charts, opts.quick)
  })
}

// ---------------------------------------------------------------------------------------------
// Contenders: start(fixtures) resolves { port, change(v) -> time of the change, stop() }

function allContenders(upgradeAvailable, settings) {
  return [
    { key: 'nyala-overlap', label: 'Nyala reload (overlap)', start: (f) => startNyala(f, 'overlap') },
    { key: 'nyala-blocking', label: 'Nyala reload (blocking)', start: (f) => startNyala(f, 'blocking') },
    {
      key: 'nyala-upgrade',
      label: 'Nyala process upgrade',
      start: startNyalaUpgrade,
      available: upgradeAvailable,
      unavailableReason: 'not available in this build (`nyala upgrade` is not a command)',
      // Every upgrade is a new Node process that loads all modules before the handover (about a
      // second here, more under load), so the memory phase stops at 20 changes, not 200: the
      // serving process is never older than one change anyway. Its own benchmark, against
      // node --watch with a longer period: bench/upgrade-under-load.js (`npm run bench -- upgrade`).
      maxChanges: settings.windowSeconds < 1 ? settings.changes : 20,
      newCodeTimeoutMs: 30_000,
    },
    { key: 'node-watch', label: 'node --watch + Fastify', start: startNodeWatch },
    { key: 'restartable', label: '@fastify/restartable', start: startRestartable },
    { key: 'esm-cache-bust', label: 'ESM import ?v=N', start: startEsm },
  ]
}

async function hasUpgradeCommand(session) {
  const { output } = await runNode(session, [cliPath, '--help'])
  return /^\s+upgrade\b/m.test(output)
}

/** Versions 0..total of the module `app`, packed with Nyala's own packer, plus the probe module. */
async function packVersions(work, total) {
  const src = path.join(work, 'nyala-src')
  const zips = path.join(work, 'nyala-zips')
  await mkdir(zips, { recursive: true })
  await writeMemProbe(path.join(src, 'probe'), path.join(zips, 'probe.zip'))
  await mapLimit(
    Array.from({ length: total + 1 }, (_, v) => v),
    4,
    (v) => writeModule(path.join(src, `app-${v}`), nyalaIndex(v), path.join(zips, `app-${v}.zip`)),
  )
  return zips
}

async function startNyala(f, mode) {
  const root = await makeRoot(path.join(f.work, `nyala-${mode}`), {
    'auto.reload.modules': true,
    'auto.reload.mode': mode,
  })
  const staging = path.join(root, 'writes')
  await mkdir(staging, { recursive: true })
  await copyFile(path.join(f.zips, 'probe.zip'), path.join(root, 'modules', 'probe.zip'))
  await copyFile(path.join(f.zips, 'app-0.zip'), path.join(root, 'modules', 'app.zip'))
  const server = await startServer(
    f.session,
    `nyala ${mode}`,
    ['--expose-gc', cliPath, 'start', '--root', root],
    {
      readyTimeoutMs: 60_000,
    },
  )
  return {
    port: server.port,
    pid: server.pid,
    async change(v) {
      const tmp = path.join(staging, 'app.zip')
      await copyFile(path.join(f.zips, `app-${v}.zip`), tmp)
      const t = performance.now()
      await rename(tmp, path.join(root, 'modules', 'app.zip'))
      return t
    },
    stop: () => server.stop(),
    describe: server.describe,
  }
}

/**
 * Nyala under `nyala start --daemonize`; a change copies the new bundle into modules/ and runs
 * `nyala upgrade` in the background (one at a time): the successor process loads every module,
 * takes the listening socket over on SIGQUIT, and the old one drains and exits. The port stays.
 */
async function startNyalaUpgrade(f) {
  const root = await makeRoot(path.join(f.work, 'nyala-upgrade'), { 'shutdown.grace.period': 4 })
  const writes = path.join(root, 'writes')
  await mkdir(writes, { recursive: true })
  await copyFile(path.join(f.zips, 'probe.zip'), path.join(root, 'modules', 'probe.zip'))
  await copyFile(path.join(f.zips, 'app-0.zip'), path.join(root, 'modules', 'app.zip'))
  // --expose-gc reaches the daemon and every successor: they are started with this execArgv
  const cli = (args) =>
    runNode(f.session, ['--expose-gc', cliPath, ...args], { check: true, timeoutMs: 60_000 })
  const { output } = await cli(['start', '--root', root, '--daemonize'])
  const m = /pid (\d+) serving on http:\/\/\S+:(\d+)/.exec(output)
  if (!m) throw new Error(`nyala did not start: ${output}`)
  let current = Number(m[1])
  f.session.adopt(current)
  const failures = []
  let upgrading = Promise.resolve()
  return {
    port: Number(m[2]),
    pid: current,
    async change(v) {
      await upgrading
      const tmp = path.join(writes, 'app.zip')
      await copyFile(path.join(f.zips, `app-${v}.zip`), tmp)
      await rename(tmp, path.join(root, 'modules', 'app.zip'))
      const t = performance.now()
      upgrading = cli(['upgrade', '--root', root]).then(
        (r) => {
          current = Number(/successor pid (\d+)/.exec(r.output)?.[1])
          f.session.adopt(current)
        },
        (err) => {
          failures.push(`v${v}: ${err.message.split('\n')[0]}`)
          f.session.adopt(Number(/successor pid (\d+)/.exec(err.message)?.[1]))
        },
      )
      return t
    },
    async stop() {
      await upgrading
      try {
        process.kill(current, 'SIGTERM')
      } catch {
        return
      }
      const deadline = performance.now() + 10_000
      while (performance.now() < deadline) {
        try {
          process.kill(current, 0)
        } catch {
          return
        }
        await delay(50)
      }
    },
    describe: () =>
      `nyala upgrade: serving pid ${current}; failed upgrades: ${failures.join('; ') || 'none'}`,
    notes: () =>
      failures.length > 0 ? [`Nyala process upgrade: failed upgrades: ${failures.join('; ')}`] : [],
  }
}

const listeningLine = `console.log(JSON.stringify({ msg: 'listening on http://127.0.0.1:' + port, port, pid: process.pid }))`

/** Shared by the in-process contenders: reload when routes.mjs got new content, one at a time. */
const watchRoutes = (apply) => `const routesFile = fileURLToPath(new URL('./routes.mjs', import.meta.url))
let loadedText = readFileSync(routesFile, 'utf8')
let busy = false
let again = false
async function onChange() {
  if (busy) {
    again = true
    return
  }
  busy = true
  try {
    do {
      again = false
      const text = readFileSync(routesFile, 'utf8')
      if (text === loadedText) continue
      ${apply}
      loadedText = text
    } while (again)
  } catch (err) {
    console.error(err)
  } finally {
    busy = false
  }
}
// the directory, not the file: the change is a rename over routes.mjs
watch(path.dirname(routesFile), (_event, name) => {
  if (name === 'routes.mjs') onChange()
})`

/**
 * Writes <work>/<key>/server.mjs and routes.mjs v0. change(v) writes the new routes.mjs beside and
 * renames it over the old one, or with `inPlace` rewrites the file itself.
 */
async function writeApp(f, key, server, { inPlace = false } = {}) {
  const dir = path.join(f.work, key)
  const writes = path.join(f.work, `${key}-writes`)
  await mkdir(dir, { recursive: true })
  await mkdir(writes, { recursive: true })
  await writeFile(path.join(dir, 'routes.mjs'), esmRoutes(0))
  await writeFile(path.join(dir, 'server.mjs'), server)
  return {
    dir,
    script: path.join(dir, 'server.mjs'),
    async change(v) {
      if (inPlace) {
        const t = performance.now()
        await writeFile(path.join(dir, 'routes.mjs'), esmRoutes(v))
        return t
      }
      const tmp = path.join(writes, 'routes.mjs')
      await writeFile(tmp, esmRoutes(v))
      const t = performance.now()
      await rename(tmp, path.join(dir, 'routes.mjs'))
      return t
    },
  }
}

async function startNodeWatch(f) {
  const port = await freePort()
  const app = await writeApp(
    f,
    'node-watch',
    `import Fastify from ${JSON.stringify(packageUrl('fastify'))}
import { hello } from './routes.mjs'
const port = ${port}
const app = Fastify()
app.get('${appPath}', async () => hello())
app.get('${memPath}', ${memHandler})
await app.listen({ host: '127.0.0.1', port })
${listeningLine}
${closeOnSignal('app')}
`,
    // Node 20's watch mode follows the file it first saw: after a rename over it, it restarts once
    // and never again (measured), so this contender gets its file rewritten in place
    { inPlace: true },
  )
  const server = await startServer(f.session, 'node --watch', ['--watch', '--expose-gc', app.script], {
    cwd: app.dir,
  })
  return { port, pid: server.pid, change: app.change, stop: () => server.stop(), describe: server.describe }
}

/**
 * An in-process contender: `head` (after the imports the watcher needs) builds `app`; the server
 * then listens, runs `apply` whenever routes.mjs changes (watchRoutes), and logs its port.
 */
async function startInProcess(f, key, label, head, apply) {
  const app = await writeApp(
    f,
    key,
    `import { readFileSync, watch } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
${head}
await app.listen({ host: '127.0.0.1', port: 0 })
const { port } = app.server.address()
${watchRoutes(apply)}
${listeningLine}
${closeOnSignal('app')}
`,
  )
  const server = await startServer(f.session, label, ['--expose-gc', app.script], { cwd: app.dir })
  return { port: server.port, pid: server.pid, change: app.change, stop: () => server.stop() }
}

function startRestartable(f) {
  return startInProcess(
    f,
    'restartable',
    'restartable',
    `import * as restartableModule from ${JSON.stringify(packageUrl('@fastify/restartable'))}
const restartable = restartableModule.restartable ?? restartableModule.default.restartable ?? restartableModule.default
let version = 0
async function createApp(fastify, opts) {
  // a restart alone would build the app from the same (cached) code: the new code is imported
  const routes = await import('./routes.mjs?v=' + version)
  const app = fastify(opts)
  app.get('${appPath}', async () => routes.hello())
  app.get('${memPath}', ${memHandler})
  return app
}
const app = await restartable(createApp, {})`,
    'version++\n      await app.restart()',
  )
}

function startEsm(f) {
  return startInProcess(
    f,
    'esm-cache-bust',
    'esm',
    `import Fastify from ${JSON.stringify(packageUrl('fastify'))}
let version = 0
let routes = await import('./routes.mjs?v=0')
const app = Fastify()
app.get('${appPath}', async () => routes.hello())
app.get('${memPath}', ${memHandler})`,
    "routes = await import('./routes.mjs?v=' + ++version)",
  )
}

// ---------------------------------------------------------------------------------------------
// Measuring one contender

/** GET /probe/mem; retries while the server is away (a restarting `node --watch` child). */
const memory = (port) => probeMemory(port, { timeoutMs: 10_000, retryForMs: 15_000 })

async function measure(session, contender, f, settings, check, progress) {
  const instance = await contender.start(f)
  let client
  try {
    const url = `http://127.0.0.1:${instance.port}${appPath}`
    await waitFor(url, (b) => b?.v === 0, 20_000)
    // GC twice: the first collection after start-up can leave garbage a second one takes
    await memory(instance.port)
    const before = await memory(instance.port)
    client = startLoad(session, { url, connections: settings.connections, rate: settings.rate })
    await delay(settings.warmupSeconds * 1000)
    check()

    // windowed phase: quiet, change, quiet, change, ...
    const windowMs = settings.windowSeconds * 1000
    const t0 = performance.now()
    const windows = []
    const changeTimes = []
    let v = 0
    for (let i = 0; i < settings.changes; i++) {
      const quietStart = t0 + 2 * i * windowMs
      windows.push({ kind: 'quiet', start: quietStart, end: quietStart + windowMs })
      await delay(Math.max(0, quietStart + windowMs - performance.now()))
      check()
      v++
      const changeStart = quietStart + windowMs
      const t = await instance.change(v)
      changeTimes.push({ v, t })
      windows.push({ kind: 'change', start: changeStart, end: changeStart + windowMs })
      await delay(Math.max(0, changeStart + windowMs - performance.now()))
    }
    const phaseEnd = performance.now()
    client.setRecording(false)
    const countsAtPhaseEnd = structuredClone(client.counts)

    // memory phase: the remaining changes back to back, each once its new code answers (plus a
    // short pause, the same for all: a change written the instant a reload ends is a race
    // measured apart, not what this phase is for)
    const memT0 = performance.now()
    let notSeen = 0
    let stalled = false
    const totalChanges = Math.min(contender.maxChanges ?? Infinity, settings.totalChanges)
    const newCodeTimeoutMs = contender.newCodeTimeoutMs ?? settings.newCodeTimeoutMs
    const progressEvery = Math.max(10, Math.round(totalChanges / 5))
    // heap after GC at the start of this phase and at each quarter: a curve, not two points
    const quarter = Math.max(1, Math.round(totalChanges / 4))
    // the last windowed change must be serving first (a window may be shorter than a restart)
    if ((await client.waitForV(v, newCodeTimeoutMs)) === undefined) notSeen++
    const curve = [{ changes: v, ...pickMemory(await memory(instance.port)) }]
    while (v < totalChanges) {
      check()
      v++
      await delay(settings.pauseMs)
      await instance.change(v)
      if ((await client.waitForV(v, newCodeTimeoutMs)) === undefined) {
        notSeen++
        if (process.env.BENCH_DEBUG) console.error(`v${v} not seen`, instance.describe?.())
      }
      if (v % quarter === 0 && v < totalChanges) {
        await memory(instance.port)
        curve.push({ changes: v, ...pickMemory(await memory(instance.port)) })
      }
      if (v % progressEvery === 0) progress(`${contender.key}: ${v}/${totalChanges} changes`)
      if (notSeen >= 3 && notSeen === v - settings.changes) {
        stalled = true
        break
      }
    }
    const memSeconds = (performance.now() - memT0) / 1000
    await client.finish()
    const countsAfter = client.counts
    // the newest code must be what serves before memory is read
    await waitFor(url, (b) => b?.v === v, Math.max(15_000, newCodeTimeoutMs)).catch(() => {
      if (process.env.BENCH_DEBUG) console.error(instance.describe?.())
      notSeen++
    })
    await memory(instance.port)
    const after = await memory(instance.port)

    return {
      key: contender.key,
      label: contender.label,
      connections: settings.connections,
      rate: settings.rate,
      ...analyse(client.log, windows, changeTimes, t0, phaseEnd, windowMs),
      phaseCounts: countsAtPhaseEnd,
      memoryPhase: {
        changes: v - settings.changes,
        seconds: round(memSeconds, 1),
        failed: failuresOf(countsAfter) - failuresOf(countsAtPhaseEnd),
        notSeen,
        stalled,
      },
      totalChanges: v,
      notes: instance.notes?.() ?? [],
      before: pickMemory(before),
      after: pickMemory(after),
      curve: [...curve, { changes: v, ...pickMemory(after) }],
    }
  } finally {
    client?.stop()
    await client?.finish()
    await instance.stop()
  }
}

const pickMemory = (m) => ({ heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, external: m.external })
const failuresOf = (c) =>
  c.refused + c.reset + c.timeout + c.otherError + Object.values(c.status).reduce((a, b) => a + b, 0)

/** Latency per window kind, failures, first answer from new code, gaps, and chart buckets. */
function analyse(log, windows, changeTimes, t0, phaseEnd, windowMs) {
  const kinds = { quiet: { lat: [], failed: 0, refused: 0 }, change: { lat: [], failed: 0, refused: 0 } }
  const windowOf = (t) => {
    const i = Math.floor((t - t0) / windowMs)
    return i >= 0 && i < windows.length ? windows[i] : undefined
  }
  const firstNew = new Map()
  const okEnds = []
  const durationMs = phaseEnd - t0
  const bucketMs = Math.max(10, windowMs / 20)
  const buckets = Array.from({ length: Math.ceil(durationMs / bucketMs) }, (_, i) => ({
    t: i * bucketMs,
    lat: [],
    failed: 0,
  }))
  for (let i = 0; i < log.start.length; i++) {
    const start = log.start[i]
    const w = windowOf(start)
    if (!w) continue
    const ok = log.outcome[i] === 'ok'
    const k = kinds[w.kind]
    const bucket = buckets[Math.floor((start - t0) / bucketMs)]
    if (ok) {
      k.lat.push(log.latency[i])
      bucket?.lat.push(log.latency[i])
      const end = start + log.latency[i]
      if (w.kind === 'change') okEnds.push(end)
      const v = log.v[i]
      if (v !== undefined && !(firstNew.get(v) <= end)) firstNew.set(v, end)
    } else {
      k.failed++
      if (log.outcome[i] === 'refused') k.refused++
      if (bucket) bucket.failed++
    }
  }
  const stats = (k) => {
    const sorted = k.lat.sort((a, b) => a - b)
    return {
      requests: sorted.length + k.failed,
      failed: k.failed,
      refused: k.refused,
      p50: round(percentile(sorted, 50), 2),
      p99: round(percentile(sorted, 99), 2),
      max: round(sorted[sorted.length - 1], 1),
    }
  }
  const toNew = changeTimes.map(({ v, t }) => (firstNew.has(v) ? firstNew.get(v) - t : undefined))
  // longest time without a successful answer inside a change window (starting at the change)
  okEnds.sort((a, b) => a - b)
  let gap = 0
  for (const w of windows.filter((x) => x.kind === 'change')) {
    let last = w.start
    for (const e of okEnds) {
      if (e < w.start || e > w.end) continue
      gap = Math.max(gap, e - last)
      last = e
    }
    gap = Math.max(gap, w.end - last)
  }
  return {
    quiet: stats(kinds.quiet),
    change: stats(kinds.change),
    toNewCode: {
      median: round(medianOf(toNew), 1),
      max: round(Math.max(...toNew.filter(Number.isFinite)), 1),
      notSeen: toNew.filter((x) => x === undefined).length,
      all: toNew.map((x) => round(x, 1) ?? null),
    },
    longestGapMs: round(gap, 1),
    durationMs: round(durationMs, 0),
    bucketMs,
    windows: windows.map((w) => ({ kind: w.kind, start: round(w.start - t0, 0), end: round(w.end - t0, 0) })),
    changeTimes: changeTimes.map((c) => round(c.t - t0, 1)),
    buckets: buckets.map((b) => {
      const sorted = b.lat.sort((x, y) => x - y)
      return {
        t: round(b.t, 0),
        p50: round(percentile(sorted, 50), 2),
        max: round(sorted[sorted.length - 1], 2),
        failed: b.failed,
      }
    }),
  }
}

// ---------------------------------------------------------------------------------------------
// Report

/** Heap growth (MB) per 100 changes between the middle and the end of the curve. */
function secondHalfSlope(curve) {
  const last = curve[curve.length - 1]
  const mid = curve.reduce((best, c) =>
    Math.abs(c.changes - last.changes / 2) < Math.abs(best.changes - last.changes / 2) ? c : best,
  )
  if (last.changes === mid.changes) return undefined
  return ((last.heapUsed - mid.heapUsed) / 1024 / 1024 / (last.changes - mid.changes)) * 100
}

function report(results, settings, charts, quickRun) {
  const table = []
  const notes = []
  const esm = results.find((r) => r.key === 'esm-cache-bust' && !r.unavailable)
  const esmGrowth = esm ? esm.after.heapUsed - esm.before.heapUsed : undefined
  for (const r of results) {
    if (r.unavailable) {
      table.push({ section: 'during changes', contender: r.label, note: r.unavailable })
      continue
    }
    const ratio = round(r.change.p99 / r.quiet.p99, 2)
    const failed = r.quiet.failed + r.change.failed
    const isNyala = r.key.startsWith('nyala')
    table.push({
      section: 'during changes',
      contender: r.label,
      requests: r.quiet.requests + r.change.requests,
      failed,
      refused: r.quiet.refused + r.change.refused,
      'p50 ms': r.change.p50,
      'p99 ms': r.change.p99,
      'max ms': r.change.max,
      'quiet p99 ms': r.quiet.p99,
      'p99 ratio': ratio,
      'new code ms (median)': r.toNewCode.median,
      'new code ms (max)': r.toNewCode.max,
      'changes not seen': r.toNewCode.notSeen,
      'longest gap ms': r.longestGapMs,
      target: isNyala
        ? `failed 0: ${failed === 0 ? 'met' : 'NOT met'}; ratio <= ${targets.p99Ratio}: ${
            quickRun ? 'quick run' : ratio <= targets.p99Ratio ? 'met' : 'NOT met'
          }`
        : '',
    })
  }
  for (const r of results) {
    if (r.unavailable) continue
    const growth = r.after.heapUsed - r.before.heapUsed
    const slope = secondHalfSlope(r.curve)
    const isNyala = r.key.startsWith('nyala')
    table.push({
      section: `memory after ${settings.totalChanges} changes (serving process, after global.gc())`,
      contender: r.label,
      changes: r.totalChanges,
      'heap before MB': mb(r.before.heapUsed),
      'heap after MB': mb(r.after.heapUsed),
      'heap growth MB': mb(growth),
      'heap growth vs ESM': esmGrowth > 0 ? round(growth / esmGrowth, 2) : undefined,
      'heap MB at each quarter': r.curve.map((c) => mb(c.heapUsed)).join(' '),
      'MB per 100 changes, 2nd half': round(slope, 2),
      'rss before MB': mb(r.before.rss),
      'rss after MB': mb(r.after.rss),
      'failed (these changes)': r.memoryPhase.failed,
      'not seen': r.memoryPhase.notSeen || undefined,
      seconds: r.memoryPhase.seconds,
      target: isNyala
        ? `flat (2nd half <= ${targets.flatMbPer100} MB/100): ${
            quickRun ? 'quick run' : slope <= targets.flatMbPer100 ? 'met' : 'NOT met'
          }`
        : '',
    })
    if (r.memoryPhase.stalled)
      notes.push(`${r.label}: the new code never answered; memory phase stopped early`)
    notes.push(...r.notes)
    if (r.totalChanges < settings.totalChanges && !r.memoryPhase.stalled)
      notes.push(
        `${r.label}: ${r.totalChanges} changes, not ${settings.totalChanges}: each change is a new process that ` +
          'loads every module (200 would take several minutes), so the serving process is never older than one change.',
      )
  }
  notes.push(
    `Each contender: one continuous load (${settings.rate} req/s paced over ${settings.connections} keep-alive ` +
      `connections, same client for all), alternating ${settings.windowSeconds} s quiet and change windows, ` +
      `one change at the start of each change window (${settings.changes} changes). "quiet p99" is from the ` +
      `quiet windows of the same run. Latency counts answered requests (200); failed = refused, reset, timed ` +
      `out or non-200 (a failed loop waits 10 ms before its next request). "new code ms": from the rename of ` +
      `the new file (node --watch: the start of the in-place write) to the first 200 carrying the new version; "not seen": changes whose version never answered inside its window. "longest gap": longest time inside a change ` +
      `window without any 200.`,
  )
  notes.push(
    `Memory: the remaining changes back to back under the same load (each ${settings.pauseMs} ms after the previous ` +
      `one answered with its new code); ` +
      `GET /probe/mem (global.gc() with --expose-gc, then process.memoryUsage()) in the process that serves, ` +
      `at the start of this phase, at each quarter and at the end; "2nd half": heap growth per 100 changes ` +
      `from the middle to the end, after start-up effects (JIT, caches) have settled. ` +
      `node --watch serves from a fresh process after every change.`,
  )
  const summary = {}
  for (const r of results) {
    if (r.unavailable) {
      summary[r.key] = { unavailable: r.unavailable }
      continue
    }
    summary[r.key] = {
      failed: r.quiet.failed + r.change.failed,
      refused: r.quiet.refused + r.change.refused,
      quiet: r.quiet,
      change: r.change,
      p99Ratio: round(r.change.p99 / r.quiet.p99, 2),
      toNewCodeMs: r.toNewCode,
      longestGapMs: r.longestGapMs,
      phaseCounts: r.phaseCounts,
      memoryPhase: r.memoryPhase,
      totalChanges: r.totalChanges,
      heapCurve: r.curve.map((c) => ({ changes: c.changes, heapUsed: c.heapUsed, rss: c.rss })),
      heapMbPer100SecondHalf: round(secondHalfSlope(r.curve), 3),
      heapBefore: r.before.heapUsed,
      heapAfter: r.after.heapUsed,
      rssBefore: r.before.rss,
      rssAfter: r.after.rss,
      timeline: { bucketMs: r.bucketMs, durationMs: r.durationMs, changeTimes: r.changeTimes },
    }
  }
  return { name: 'peers', table, notes, charts, summary: { targets, settings, contenders: summary } }
}
