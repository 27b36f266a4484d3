// A big module reloaded while an unrelated small module serves a paced keep-alive load: does the
// reload of a bundle of real npm packages (zod, lodash, dayjs, ajv, uuid, @fastify/cors and
// @fastify/sensible in its node_modules/, about 3,000 files) stall the event loop that serves
// everyone else? Prints the small module's p99 and max latency and its throughput in quiet windows
// against the window of a dozen forced reloads (admin `POST /modules/big/reload?force=true`), the
// time from the trigger to the first answer of the new code, the host's own reload time and the
// bundle's file count, and the host's main-thread CPU time per reload (Linux: it does not grow when
// other processes take the cores, as wall time does).
//
// Two configurations in one run, each with a host of its own: the big module in the serving thread
// (in-process, as before), then the same bundle with `isolation=thread` in its module.properties
// (a worker thread of its own builds and serves it: src/isolate/). The issue's two targets are
// judged for each.
//
// The packages are installed at bench time (`npm install` into a temp dir; the npm registry must be
// reachable). With --quick (the smoke test, which must not need the network) the bundle is made of
// ~3,000 generated files instead: the same shape (a main file that requires packages of its
// node_modules/), not the same code.
import { copyFile, readdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import {
  assertBuilt,
  cliPath,
  latencyRow,
  mainThreadCpuMs,
  makeRoot,
  medianOf,
  packBundle,
  packModule,
  percentileOf,
  request,
  round,
  runNode,
  startHost,
  startLoad,
  withSession,
  writeModule,
  writeModuleSource,
} from './common.js'

export const targets = { maxMs: 20, reloadMs: 150 }

const packages = ['zod', 'lodash', 'dayjs', 'ajv', 'uuid@11', '@fastify/cors', '@fastify/sensible']
const full = { reloads: 12, quietSeconds: 3, pauseMs: 200, connections: 4, rate: 500, warmupSeconds: 1 }
const quick = { reloads: 3, quietSeconds: 0.5, pauseMs: 50, connections: 2, rate: 200, warmupSeconds: 0.3 }

/**
 * @param {{ quick?: boolean, rounds?: number, signal?: AbortSignal, progress?: (msg: string) => void }} opts
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.rounds) settings.reloads = opts.rounds
  const progress = opts.progress ?? (() => {})
  assertBuilt([cliPath, packModule])
  return withSession(opts.signal, async (session) => {
    const work = await session.tempDir()
    const bigSrc = path.join(work, 'big')
    if (opts.quick) {
      progress('generating a synthetic bundle (--quick: no network)')
      await writeSynthetic(bigSrc)
    } else {
      progress(`npm install ${packages.join(' ')}`)
      await runNode(
        session,
        [npmCli(), 'install', '--prefix', bigSrc, '--no-audit', '--no-fund', '--loglevel=error', ...packages],
        { timeoutMs: 180_000, check: true },
      )
      await writeModuleSource(bigSrc, realIndex)
    }
    const files = await countFiles(bigSrc)
    progress(`packing ${files} files`)
    const inProcessBundle = await packBundle(bigSrc, path.join(work, 'big-in-process.zip'))
    // the same module with isolation=thread in its module.properties
    await writeFile(path.join(bigSrc, 'module.properties'), 'version=1.0.0\nisolation=thread\n')
    const threadBundle = await packBundle(bigSrc, path.join(work, 'big-thread.zip'))
    const smallBundle = await writeModule(path.join(work, 'small'), smallIndex, path.join(work, 'small.zip'))

    const measured = {}
    for (const [label, bundle] of [
      ['in-process', inProcessBundle],
      ['thread', threadBundle],
    ]) {
      const root = await makeRoot(path.join(work, `root-${label}`), { 'admin.host': '127.0.0.1' })
      await copyFile(bundle, path.join(root, 'modules', 'big.zip'))
      await copyFile(smallBundle, path.join(root, 'modules', 'small.zip'))
      progress(`${label}: starting the host in ${root}`)
      measured[label] = await measure(session, root, settings, opts, (msg) => progress(`${label}: ${msg}`))
    }
    return report(settings, Boolean(opts.quick), files, measured)
  })
}

/** One host, the big module as its bundle says: quiet, a dozen forced reloads, quiet again. */
async function measure(session, root, settings, opts, progress) {
  const host = await startHost(session, root)
  if (host.errors.length > 0) throw new Error(`host errors: ${host.errors.join('; ')}`)
  const bigUrl = `http://127.0.0.1:${host.port}/big`
  const first = await request(bigUrl, { timeoutMs: 15_000 })
  if (first.status !== 200 || first.body?.generation !== 1) {
    throw new Error(`GET /big answered ${first.status} ${first.text.slice(0, 200)}`)
  }
  const reloadUrl = `http://127.0.0.1:${host.adminPort}/modules/big/reload?force=true`

  const load = startLoad(session, {
    url: `http://127.0.0.1:${host.port}/small`,
    connections: settings.connections,
    rate: settings.rate,
  })
  const reloads = []
  let quiet1
  let change
  let quiet2
  const cpu = {}
  try {
    await delay(settings.warmupSeconds * 1000)
    progress(`quiet ${settings.quietSeconds} s, ${settings.reloads} forced reloads, quiet again`)
    quiet1 = [performance.now()]
    cpu.quiet0 = mainThreadCpuMs(host.pid)
    await delay(settings.quietSeconds * 1000)
    cpu.quiet1 = mainThreadCpuMs(host.pid)
    quiet1.push(performance.now())
    change = [performance.now()]
    cpu.change0 = mainThreadCpuMs(host.pid)
    let generation = 1
    for (let i = 0; i < settings.reloads; i++) {
      opts.signal?.throwIfAborted()
      const t0 = performance.now()
      const res = await request(reloadUrl, { method: 'POST', timeoutMs: 60_000 })
      if (res.status !== 200 || res.body?.result !== 'reloaded') {
        throw new Error(`reload ${i + 1} answered ${res.status}: ${res.text.slice(0, 300)}`)
      }
      const answer = await request(bigUrl, { timeoutMs: 15_000 })
      const t1 = performance.now()
      if (answer.body?.generation <= generation) {
        throw new Error(`GET /big still answers generation ${answer.body?.generation} after a reload`)
      }
      generation = answer.body.generation
      reloads.push({ triggerToNewMs: t1 - t0, hostMs: res.body.ms })
      await delay(settings.pauseMs)
    }
    cpu.change1 = mainThreadCpuMs(host.pid)
    change.push(performance.now())
    quiet2 = [performance.now()]
    await delay(settings.quietSeconds * 1000)
    quiet2.push(performance.now())
  } finally {
    await load.finish()
  }
  await host.stop()
  return { load, windows: { quiet: [quiet1, quiet2], change }, reloads, cpu }
}

const realIndex = `const z = require('zod')
const _ = require('lodash')
const dayjs = require('dayjs')
const Ajv = require('ajv')
const { v4: uuid } = require('uuid')
const cors = require('@fastify/cors')
const sensible = require('@fastify/sensible')

const ajv = new Ajv()
const check = ajv.compile({ type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] })
const Body = z.object({ n: z.number().int() })

module.exports = {
  async register (app, ctx) {
    await app.register(cors)
    await app.register(sensible)
    app.get('/', async () => ({
      generation: ctx.generation,
      id: uuid(),
      at: dayjs(0).toISOString(),
      sum: _.sum([1, 2, 3]),
      valid: check({ n: 1 }) && Body.safeParse({ n: 1 }).success,
    }))
  },
}
`

const smallIndex = `module.exports = { async register (app) {
  app.get('/', async () => ({ ok: true }))
} }
`

/** npm's own CLI script beside this node, run with this node (no shell, no PATH lookup). */
function npmCli() {
  return path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')
}

/**
 * About 3,000 generated files: 100 packages of 30 files, each package's index requiring 5 of its
 * files, and a main file requiring every package.
 */
async function writeSynthetic(dir) {
  const extra = {}
  const requires = []
  for (let p = 0; p < 100; p++) {
    const pkg = `node_modules/synth-${p}`
    extra[`${pkg}/package.json`] = JSON.stringify({ name: `synth-${p}`, version: '1.0.0', main: 'index.js' })
    const lines = []
    for (let f = 0; f < 28; f++) {
      extra[`${pkg}/lib/f${f}.js`] = syntheticFile(p, f)
      if (f < 5) lines.push(`exports.f${f} = require('./lib/f${f}.js')`)
    }
    extra[`${pkg}/index.js`] = `${lines.join('\n')}\n`
    requires.push(`require('synth-${p}')`)
  }
  const index = `${requires.join('\n')}
module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ generation: ctx.generation }))
} }
`
  await writeModuleSource(dir, index, { files: extra })
}

function syntheticFile(p, f) {
  const fns = Array.from(
    { length: 12 },
    (_, i) =>
      `function fn${i} (a, b) {\n  const list = [a, b, ${p}, ${f}, ${i}].map((x) => x * 2)\n  return list.reduce((s, x) => s + x, 0)\n}`,
  )
  return `'use strict'\n${fns.join('\n')}\nmodule.exports = { ${fns.map((_, i) => `fn${i}`).join(', ')} }\n`
}

/**
 * The host's main-thread CPU ms per forced reload: the CPU time of the reload window less what
 * serving its requests took at the first quiet window's cost per request (the load runs
 * throughout, at a rate that drops while reloads take the thread); undefined where /proc is not
 * there. `served(range)`: requests answered that started in the range.
 */
function reloadCpuMs(cpu, windows, reloads, served) {
  if (Object.values(cpu).some((v) => v === undefined) || reloads.length === 0) return undefined
  const quietRequests = served(windows.quiet[0])
  if (quietRequests === 0) return undefined
  const perRequest = (cpu.quiet1 - cpu.quiet0) / quietRequests
  return (cpu.change1 - cpu.change0 - perRequest * served(windows.change)) / reloads.length
}

async function countFiles(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter((e) => e.isFile()).length
}

/**
 * The figures of both configurations, side by side: the in-process one's summary at the top level
 * (as before isolation existed), the thread one's under `summary.thread`.
 */
function report(settings, quickRun, files, measured) {
  const inProcess = figures(settings, quickRun, files, measured['in-process'], 'in-process')
  const thread = figures(settings, quickRun, files, measured.thread, 'isolation=thread')
  const judge = (ok) => (quickRun ? 'not judged (quick)' : ok ? 'met' : 'NOT met')
  const both = (name, f) =>
    `${name}: unrelated max ${f.summary.reloading.maxMs} ms (<= ${targets.maxMs}: ${judge(f.summary.reloading.maxMs <= targets.maxMs)}), ` +
    `reload ${f.summary.hostMs.median} ms (<= ${targets.reloadMs}: ${judge(f.summary.hostMs.median <= targets.reloadMs)}), ` +
    `p99 ${f.summary.reloading.p99Ms} ms, main-thread CPU per reload ${f.summary.mainThreadCpuMsPerReload ?? '-'} ms`
  return {
    name: 'reload-big-bundle',
    table: [...inProcess.table, ...thread.table],
    notes: [
      ...inProcess.notes,
      ...thread.notes,
      `issue 13 part 7 targets, side by side: ${both('in-process', inProcess)}; ${both('isolation=thread', thread)}`,
    ],
    summary: { ...inProcess.summary, thread: thread.summary },
  }
}

function figures(settings, quickRun, files, { load, windows, reloads, cpu }, label) {
  const tag = label === 'in-process' ? '' : `[${label}] `
  const { start, latency, outcome } = load.log
  const pick = (ranges) => {
    const latencies = []
    let failed = 0
    for (let i = 0; i < start.length; i++) {
      if (!ranges.some(([a, b]) => start[i] >= a && start[i] < b)) continue
      if (outcome[i] === 'ok') latencies.push(latency[i])
      else failed++
    }
    const seconds = ranges.reduce((s, [a, b]) => s + (b - a) / 1000, 0)
    return { latencies, failed, seconds }
  }
  const quiet = pick(windows.quiet)
  const change = pick([windows.change])
  const cpuPerReloadMs = reloadCpuMs(cpu, windows, reloads, (range) => pick([range]).latencies.length)
  const section = `${label}: unrelated module (GET /small), requests counted in the window they started in`
  const row = (name, s) => ({ ...latencyRow(section, name, s), seconds: round(s.seconds, 1) })
  const table = [row('quiet', quiet), row('reloading big', change)]
  const ratio = (p) => round(percentileOf(change.latencies, p) / percentileOf(quiet.latencies, p), 2)
  const throughputRatio = round(
    change.latencies.length / change.seconds / (quiet.latencies.length / quiet.seconds),
    3,
  )
  table.push({
    section,
    window: 'ratio reloading/quiet',
    'req/s': throughputRatio,
    'p50 ms': ratio(50),
    'p99 ms': ratio(99),
    'max ms': ratio(100),
  })
  const triggerToNew = reloads.map((r) => r.triggerToNewMs)
  const hostMs = reloads.map((r) => r.hostMs)
  const stat = (name, values) => ({
    section: `${label}: forced reloads of big (${files} files)`,
    measure: name,
    samples: values.length,
    'median ms': round(medianOf(values), 1),
    'min ms': round(percentileOf(values, 0), 1),
    'max ms': round(percentileOf(values, 100), 1),
  })
  table.push(stat('trigger (admin POST) -> first answer of the new code', triggerToNew))
  table.push(stat('host-side reload time (the reload result ms)', hostMs))
  if (cpuPerReloadMs !== undefined) {
    table.push({
      section: `${label}: forced reloads of big (${files} files)`,
      measure: 'host main-thread CPU per reload (serving the load subtracted)',
      samples: reloads.length,
      'median ms': round(cpuPerReloadMs, 1),
    })
  }

  const maxDuring = percentileOf(change.latencies, 100)
  const reloadMedian = medianOf(hostMs)
  const judge = (ok) => (quickRun ? 'quick run, synthetic bundle: not judged' : ok ? 'met' : 'NOT met')
  const notes = [
    `${tag}big bundle: ${files} files${quickRun ? ' (synthetic, --quick)' : ` (${packages.join(', ')} and their dependencies)`}`,
    `${tag}unrelated module during reloads: max ${round(maxDuring, 1)} ms (quiet ${round(percentileOf(quiet.latencies, 100), 1)} ms), ` +
      `target <= ${targets.maxMs} ms: ${judge(maxDuring <= targets.maxMs)}; p99 ${round(percentileOf(change.latencies, 99), 2)} ms ` +
      `(quiet ${round(percentileOf(quiet.latencies, 99), 2)} ms); throughput reloading/quiet ${throughputRatio}`,
    `${tag}reload of big: host-side median ${round(reloadMedian, 1)} ms (target <= ${targets.reloadMs} ms): ` +
      `${judge(reloadMedian <= targets.reloadMs)}; trigger -> new code median ${round(medianOf(triggerToNew), 1)} ms; ` +
      `host main-thread CPU per reload ${cpuPerReloadMs === undefined ? 'not measured (no /proc)' : `${round(cpuPerReloadMs, 1)} ms`}`,
    `${tag}failed requests: ${quiet.failed + change.failed}; ${settings.connections} keep-alive connections paced at ` +
      `${settings.rate} req/s in total, ${settings.reloads} forced reloads ${settings.pauseMs} ms apart between two ` +
      `quiet windows of ${settings.quietSeconds} s; client and host share the machine's cores.`,
  ]
  return {
    table,
    notes,
    summary: {
      targets,
      settings,
      files,
      failedRequests: quiet.failed + change.failed,
      quiet: {
        requests: quiet.latencies.length,
        p99Ms: round(percentileOf(quiet.latencies, 99), 3),
        maxMs: round(percentileOf(quiet.latencies, 100), 2),
      },
      reloading: {
        requests: change.latencies.length,
        p99Ms: round(percentileOf(change.latencies, 99), 3),
        maxMs: round(maxDuring, 2),
      },
      throughputRatio,
      reloads: reloads.length,
      hostMs: { median: round(reloadMedian, 2), samples: hostMs.map((v) => round(v, 2)) },
      mainThreadCpuMsPerReload: cpuPerReloadMs === undefined ? null : round(cpuPerReloadMs, 2),
      triggerToNewMs: {
        median: round(medianOf(triggerToNew), 2),
        samples: triggerToNew.map((v) => round(v, 2)),
      },
    },
  }
}
