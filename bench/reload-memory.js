// Heap and RSS of the host across many reloads of one module: 500 forced reloads through the admin
// API (quick: 20), the host's memory read after every 100 (quick: every 5) through a probe module
// that runs a full GC first (the host runs with --expose-gc). Each generation of the reloaded
// module holds ~0.5 MB of its own heap, a timer, an onStop callback and a handoff value; its bundle
// carries a 64 KB asset. Its `ctx` objects are registered in a FinalizationRegistry (the probe's),
// so the probe also counts the generations that were never collected: the most direct sign of a
// leak, independent of heap noise. Flat is the target.
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import {
  assertBuilt,
  cliPath,
  makeRoot,
  mb as mbOf,
  packModule,
  request,
  requestSettled,
  startHost,
  withSession,
  writeModule,
} from './common.js'

/** Heap growth per 100 reloads, after the first checkpoint, under which the heap counts as flat. */
export const flatHeapBytesPer100 = 512 * 1024
/** Old generations still not collected after a full GC: the one still draining at most. */
export const maxUncollected = 1

const full = { reloads: 500, every: 100 }
const quick = { reloads: 20, every: 5 }

const ballastIndex = `module.exports = {
  async register (app, ctx) {
    // the probe (a dependency, never reloaded) counts how many generations get collected
    const track = globalThis.__nyalaBenchGenerations
    track.created++
    track.registry.register(ctx, ctx.generation)
    // ~0.5 MB of heap owned by this generation only
    const ballast = Array.from({ length: 8192 }, (_, i) => ({ i, text: 'generation ' + ctx.generation + ' item ' + i + ' '.repeat(32) }))
    const state = { hits: ctx.previous?.hits ?? 0 }
    ctx.setInterval(() => { state.ticks = (state.ticks ?? 0) + 1 }, 1000)
    ctx.onStop(() => { state.stopped = true })
    app.get('/', async () => ({ generation: ctx.generation, hits: ++state.hits, size: ballast.length }))
    app.get('/items/:i', async (req) => ballast[Number(req.params.i) % ballast.length])
    this.state = state
  },
  handoff () { return { hits: this.state.hits } },
}
`

// settles the heap before reporting: several full collections with turns of the event loop between;
// counts the generations created and collected of any module that registers its `ctx` (reload-kitchen-sink too)
export const probeIndex = `const track = { created: 0, collected: 0 }
track.registry = new FinalizationRegistry(() => { track.collected++ })
globalThis.__nyalaBenchGenerations = track
module.exports = {
  async register (app) {
    app.get('/', async () => {
      if (typeof globalThis.gc !== 'function') throw new Error('the host needs --expose-gc')
      for (let i = 0; i < 6; i++) {
        globalThis.gc()
        await new Promise((resolve) => setImmediate(resolve))
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
      globalThis.gc()
      await new Promise((resolve) => setImmediate(resolve))
      return { ...process.memoryUsage(), created: track.created, collected: track.collected }
    })
  },
}
`

/**
 * @param {{ quick?: boolean, rounds?: number, signal?: AbortSignal, progress?: (msg: string) => void }} opts
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  // --rounds N: N checkpoints
  if (opts.rounds) settings.reloads = opts.rounds * settings.every
  const progress = opts.progress ?? (() => {})
  assertBuilt([cliPath, packModule])
  return withSession(opts.signal, async (session) => {
    const work = await session.tempDir()
    const root = await makeRoot(path.join(work, 'root'), { 'admin.host': '127.0.0.1' })
    const modules = path.join(root, 'modules')
    await writeModule(path.join(work, 'src', 'ballast'), ballastIndex, path.join(modules, 'ballast.zip'), {
      properties: 'version=1.0.0\ndepends-on=probe\n',
      files: { 'assets/blob.bin': randomBytes(64 * 1024) },
    })
    await writeModule(path.join(work, 'src', 'probe'), probeIndex, path.join(modules, 'probe.zip'))
    progress('starting the host with --expose-gc')
    const host = await startHost(session, root, { nodeArgs: ['--expose-gc'] })
    const app = (p) => `http://127.0.0.1:${host.port}${p}`
    const admin = (p) => `http://127.0.0.1:${host.adminPort}${p}`

    const measure = async (reloads) => {
      // the last reload's old generation drains and stops just after the swap
      await delay(100)
      const res = await request(app('/probe'), { timeoutMs: 30_000 })
      if (res.status !== 200) throw new Error(`GET /probe answered ${res.status} ${JSON.stringify(res.body)}`)
      const m = res.body
      // the live generation is not collectable
      const uncollected = m.created - m.collected - 1
      return { reloads, heapUsed: m.heapUsed, external: m.external, rss: m.rss, uncollected }
    }
    const served = await request(app('/ballast'), { timeoutMs: 15_000 })
    if (served.status !== 200 || served.body?.generation !== 1) {
      throw new Error(`GET /ballast answered ${served.status} ${JSON.stringify(served.body)}`)
    }
    const points = [await measure(0)]
    progress(`${settings.reloads} forced reloads, memory after every ${settings.every}`)
    let failures = 0
    for (let i = 1; i <= settings.reloads; i++) {
      opts.signal?.throwIfAborted()
      const res = await requestSettled(admin('/modules/ballast/reload?force=true'), {
        method: 'POST',
        timeoutMs: 30_000,
      })
      if (res.status !== 200 || res.body?.result !== 'reloaded') {
        failures++
        if (failures > 5) throw new Error(`reload ${i} answered ${res.status} ${JSON.stringify(res.body)}`)
      }
      if (i % settings.every === 0) {
        const p = await measure(i)
        points.push(p)
        progress(
          `${i} reloads: heap ${mb(p.heapUsed)} MB, rss ${mb(p.rss)} MB, ${p.uncollected} old generation(s) alive`,
        )
      }
    }
    const last = await request(app('/ballast'), { timeoutMs: 15_000 })
    if (last.status !== 200 || last.body?.generation !== settings.reloads + 1 - failures) {
      throw new Error(`after ${settings.reloads} reloads GET /ballast answered ${JSON.stringify(last.body)}`)
    }
    await host.stop()
    return report(settings, Boolean(opts.quick), points, failures, host.errors, last.body)
  })
}

function report(settings, quickRun, points, failures, errors, last) {
  const base = points[0]
  const table = points.map((p) => ({
    reloads: p.reloads,
    'heap MB': mb(p.heapUsed),
    'external MB': mb(p.external),
    'rss MB': mb(p.rss),
    'heap delta MB': mb(p.heapUsed - base.heapUsed),
    'rss delta MB': mb(p.rss - base.rss),
    'old gens alive': p.uncollected,
  }))
  // growth is judged from the first checkpoint after reloading started (warm-up: JIT, caches, pools)
  const from = points[1] ?? base
  const to = points.at(-1)
  const per100 = (key) =>
    to.reloads > from.reloads ? ((to[key] - from[key]) / (to.reloads - from.reloads)) * 100 : Number.NaN
  const heapPer100 = per100('heapUsed')
  const rssPer100 = per100('rss')
  const heapFlat = heapPer100 < flatHeapBytesPer100
  const released = to.uncollected <= maxUncollected
  const flat = heapFlat && released
  const verdict = quickRun ? 'quick run, too short to judge' : flat ? 'flat' : 'NOT flat'
  const notes = [
    `old generations still alive after GC: ${to.uncollected} after ${to.reloads} reloads ` +
      `(target <= ${maxUncollected}): ${released ? 'released' : 'NOT released (a leak)'}`,
    `heap after GC grows ${mb(heapPer100)} MB per 100 reloads from ${from.reloads} to ${to.reloads} reloads ` +
      `(target < ${mb(flatHeapBytesPer100)} MB per 100): ${heapFlat ? 'met' : 'NOT met'}; verdict: ${verdict}`,
    `rss grows ${mb(rssPer100)} MB per 100 reloads over the same span (allocator slack included; for information)`,
    `${settings.reloads} forced reloads through POST /modules/ballast/reload, ${failures} failed; ` +
      `the last generation served ${JSON.stringify(last)}`,
  ]
  if (errors.length > 0) notes.push(`host error log lines: ${errors.join(' | ')}`)
  return {
    name: 'reload-memory',
    table,
    notes,
    summary: {
      settings,
      failures,
      flat: quickRun ? undefined : flat,
      uncollected: to.uncollected,
      heapGrowthPer100Bytes: Math.round(heapPer100),
      rssGrowthPer100Bytes: Math.round(rssPer100),
      points,
    },
  }
}

/** MB with two decimals here: the growth per 100 reloads is small. */
const mb = (bytes) => mbOf(bytes, 2)
