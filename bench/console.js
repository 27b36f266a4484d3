// The operator console's first render, in Chromium (playwright-core, Debian's chromium).
//
// Measured (first render): from navigation start (performance.timeOrigin) to the first paint of
// the module rows in view: the paint time Chromium reports (Element Timing, `renderTime`) for the
// first module row's name, checked to be a frame in which the document holds all n rows (a
// requestAnimationFrame log of the row count; the round fails otherwise). The probe is added by
// the browser driver (an init script), not by the page. Cold: a new browser context (nothing
// cached, a new connection); files cached: a second visit in the same context (the page's script
// from the cache; the page itself is revalidated and drawn anew, it changes with every reload).
//
// What that frame paints changed on 2026-11-29 (the measurement did not): until then it painted
// the graph and the complete rows in view (rows off screen were already skipped, content-
// visibility); now the graph is drawn by the page's script right after it, the rows after the
// first 30 arrive without chart and buttons (off screen), completed by the script, and rows well
// below the first screen are not laid out ahead until after it (docs/console-render.md). Two more
// figures: the graph painted (Element Timing of its first node's label) and the page's data
// applied by its script (html[data-ready], every row complete).
//
// Baselines in the same run and browser, served as static files by a bare node:http server in
// this process: the same page as it arrived without its script (no graph: it is in a
// <noscript>); the same with the graph's drawing in the HTML (the page as it was before this
// change); and the floor, a page of one row and nothing else, what any page
// costs this browser on this machine. Target (issue 17): first render under 100 ms with 200
// modules.

import { existsSync } from 'node:fs'
import http from 'node:http'
import { loadavg } from 'node:os'
import path from 'node:path'
import {
  assertBuilt,
  cliPath,
  makeRoot,
  medianOf,
  percentileOf,
  round,
  startHost,
  withSession,
} from './common.js'
import { buildGraph, writeGraphModule } from './scale.js'

export const targets = { firstRenderMs: 100 }
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const full = { sizes: [4, 200], rounds: 15 }
const quick = { sizes: [4, 20], rounds: 2 }

export const definition =
  'navigation start -> first paint of the module rows in view (Element Timing renderTime of the first row), every row in the document in that frame; the graph and the rows after the first 30 completed by the script after it'
/** What the same figure was called until 2026-11-29, when that frame also painted the graph. */
export const previousDefinition =
  'navigation start -> first paint showing every module (Element Timing renderTime of the first row, all rows in that frame)'

/** @param {{ quick?: boolean, rounds?: number, sizes?: number[], signal?: AbortSignal, progress?: (msg: string) => void }} opts */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.rounds) settings.rounds = opts.rounds
  if (opts.sizes) settings.sizes = opts.sizes
  const progress = opts.progress ?? (() => {})
  assertBuilt([cliPath])
  if (!existsSync(executablePath))
    throw new Error(`Chromium not found at ${executablePath}: apt-get install chromium`)
  const { chromium } = await import('playwright-core')
  return withSession(opts.signal, async (session) => {
    const work = await session.tempDir()
    const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
    const table = []
    const summary = {}
    const load = [loadavg()[0]]
    try {
      for (const n of settings.sizes) {
        const root = await makeRoot(path.join(work, `root-${n}`))
        const graph = buildGraph(n)
        progress(`${n} modules: packing`)
        for (const m of graph.modules) {
          await writeGraphModule(work, m.name, m.deps, path.join(root, 'modules', `${m.name}.zip`))
        }
        progress(`${n} modules: starting the host`)
        const host = await startHost(session, root, { readyTimeoutMs: 120_000 })
        const origin = `http://127.0.0.1:${host.adminPort}`
        const baseline = await staticCopy(origin)
        const samples = { cold: [], cached: [], static: [], staticGraph: [], floor: [] }
        try {
          for (let i = 0; i < settings.rounds; i++) {
            if (opts.signal?.aborted) break
            progress(`${n} modules: round ${i + 1}/${settings.rounds}`)
            samples.cold.push(await firstRender(browser, `${origin}/`, n, false))
            samples.cached.push(await firstRender(browser, `${origin}/`, n, true))
            samples.static.push(await firstRender(browser, baseline.url, n, false))
            samples.staticGraph.push(await firstRender(browser, `${baseline.url}graph`, n, false))
            samples.floor.push(await firstRender(browser, `${baseline.url}floor`, 1, false))
          }
        } finally {
          await baseline.close()
          await host.stop()
        }
        load.push(loadavg()[0])
        const section = `console at ${n} modules`
        const med = (list, key) => round(medianOf(list.map((s) => s[key])), 1)
        const later = (s) => (s.graph === undefined ? undefined : round(s.graph, 1))
        for (const [measure, list] of [
          ['first render, cold (new context)', samples.cold],
          ['first render, files cached (second visit)', samples.cached],
          ['baseline: the same page as a static file, no script, cold', samples.static],
          ['baseline: that static file with the graph in its HTML, cold', samples.staticGraph],
          ['floor: a static page of one row, cold', samples.floor],
        ]) {
          const values = list.map((s) => s.render)
          table.push({
            section,
            measure,
            samples: values.length,
            'median ms': round(medianOf(values), 1),
            'p90 ms': round(percentileOf(values, 90), 1),
            'max ms': round(percentileOf(values, 100), 1),
            // the phases, medians: HTML first byte, HTML last byte, HTML parsed
            'html first byte': med(list, 'responseStart'),
            'html last byte': med(list, 'responseEnd'),
            'dom interactive': med(list, 'domInteractive'),
            // the renderer's main thread until a little after that paint (load-independent-ish)
            'main-thread cpu ms': med(list, 'cpu'),
            'script ms': med(list, 'script'),
            'style+layout ms': med(list, 'layout'),
            // after the first render, by the page's script: the graph painted, the data applied
            'graph painted ms': list.some((s) => s.graph !== undefined)
              ? round(medianOf(list.map(later).filter((v) => v !== undefined)), 1)
              : undefined,
            'data applied ms': list.some((s) => s.ready !== undefined)
              ? round(medianOf(list.map((s) => s.ready).filter((v) => v !== undefined)), 1)
              : undefined,
          })
        }
        table.push({
          section,
          measure: 'ratio first render (cold) / static baseline',
          samples: samples.cold.length,
          'median ms': round(
            medianOf(samples.cold.map((s) => s.render)) / medianOf(samples.static.map((s) => s.render)),
            2,
          ),
        })
        table.push({
          section,
          measure: 'ratio first render (cold) / floor',
          samples: samples.cold.length,
          'median ms': round(
            medianOf(samples.cold.map((s) => s.render)) / medianOf(samples.floor.map((s) => s.render)),
            2,
          ),
        })
        table.push({
          section,
          measure: 'ratio first render (cold) / static with the graph in its HTML',
          samples: samples.cold.length,
          'median ms': round(
            medianOf(samples.cold.map((s) => s.render)) / medianOf(samples.staticGraph.map((s) => s.render)),
            2,
          ),
        })
        summary[n] = {
          coldMs: med(samples.cold, 'render'),
          cachedMs: med(samples.cached, 'render'),
          staticMs: med(samples.static, 'render'),
          staticGraphMs: med(samples.staticGraph, 'render'),
          floorMs: med(samples.floor, 'render'),
          coldGraphMs: med(samples.cold, 'graph'),
          cachedGraphMs: med(samples.cached, 'graph'),
          coldReadyMs: med(samples.cold, 'ready'),
          pageBytes: baseline.bytes,
        }
      }
    } finally {
      await browser.close()
    }
    const largest = settings.sizes[settings.sizes.length - 1]
    const judged = (ms) => (opts.quick ? 'not judged' : ms <= targets.firstRenderMs ? 'met' : 'NOT met')
    return {
      name: 'console',
      table,
      notes: [
        `measured (first render): ${definition}`,
        `until 2026-11-29 the same figure was "${previousDefinition}": the same measurement, but that frame also painted the graph (the baseline "with the graph in its HTML" is that page, static)`,
        `first render at ${largest} modules: cold median ${summary[largest].coldMs} ms (${judged(summary[largest].coldMs)}), ` +
          `files cached median ${summary[largest].cachedMs} ms (${judged(summary[largest].cachedMs)}); target <= ${targets.firstRenderMs} ms`,
        `graph painted at ${largest} modules (by the script, after the first render): cold median ${summary[largest].coldGraphMs} ms, files cached ${summary[largest].cachedGraphMs} ms; data applied (every row complete) cold ${summary[largest].coldReadyMs} ms`,
        `load average (1 min) at the start and after each size: ${load.map((l) => l.toFixed(2)).join(', ')}; the browser, the host and this process share the machine`,
      ],
      summary: { targets, settings, definition, previousDefinition, load, results: summary },
    }
  })
}

/** The probe, run by the browser before the page's own script (an init script, outside the page's CSP). */
function probe() {
  const p = { frames: [], painted: undefined, graph: undefined, ready: undefined }
  window.__consoleProbe = p
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.identifier === 'first-module' && p.painted === undefined) p.painted = e.renderTime || e.loadTime
      if (e.identifier === 'graph' && p.graph === undefined) p.graph = e.renderTime || e.loadTime
    }
  }).observe({ type: 'element', buffered: true })
  // the graph, drawn by the page's script: its first node's label marked when it is inserted;
  // the page's data applied by its script: html[data-ready] (set when a GET /overview is drawn)
  new MutationObserver((_, observer) => {
    if (p.ready === undefined && document.documentElement.hasAttribute('data-ready'))
      p.ready = performance.now()
    const label = document.querySelector('#graph > svg .node text')
    if (label && !label.hasAttribute('elementtiming')) label.setAttribute('elementtiming', 'graph')
    if (label && p.ready !== undefined) observer.disconnect()
  }).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-ready'] })
  // marks the first row's name for Element Timing as soon as it is in the document
  new MutationObserver((_, observer) => {
    const name = document.querySelector('tbody tr[data-module] > th')
    if (!name) return
    name.setAttribute('elementtiming', 'first-module')
    observer.disconnect()
  }).observe(document, { childList: true, subtree: true })
  // rows in the document at each frame: the paint measured must show all of them
  const frame = (t) => {
    p.frames.push([t, document.querySelectorAll('tbody tr[data-module]').length])
    if (p.painted === undefined && p.frames.length < 1000) requestAnimationFrame(frame)
  }
  requestAnimationFrame(frame)
}

/** One visit: the first render and the HTML's phases, ms since navigation start. */
async function firstRender(browser, url, n, warm) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  try {
    const page = await context.newPage()
    await page.addInitScript(probe)
    if (warm) {
      await page.goto(url)
      await page.waitForFunction(() => window.__consoleProbe.painted !== undefined, null, { timeout: 30_000 })
    }
    // the renderer's main thread: CPU time (ThreadTime) and where its tasks went, this visit only
    const cdp = await context.newCDPSession(page)
    await cdp.send('Performance.enable')
    const before = await metrics(cdp)
    await page.goto(url)
    await page.waitForFunction(() => window.__consoleProbe.painted !== undefined, null, {
      timeout: 30_000,
      polling: 50,
    })
    const after = await metrics(cdp)
    const spent = (key) => (after[key] - before[key]) * 1000
    // a page with its script goes on: the graph painted and the data applied
    const scripted = await page.evaluate(() => document.querySelector('script[src]') !== null)
    if (scripted)
      await page.waitForFunction(
        () => window.__consoleProbe.graph !== undefined && window.__consoleProbe.ready !== undefined,
        null,
        { timeout: 30_000, polling: 50 },
      )
    const r = await page.evaluate(() => {
      const p = window.__consoleProbe
      const nav = performance.getEntriesByType('navigation')[0]
      // the frame painted: the last one begun before the paint time
      const frame = p.frames.filter(([t]) => t <= p.painted).at(-1)
      return {
        render: p.painted,
        graph: p.graph,
        ready: p.ready,
        rowsInFrame: frame?.[1],
        responseStart: nav.responseStart,
        responseEnd: nav.responseEnd,
        domInteractive: nav.domInteractive,
      }
    })
    if (r.rowsInFrame !== undefined && r.rowsInFrame !== n)
      throw new Error(`${url}: the first paint of a module showed ${r.rowsInFrame} rows, expected ${n}`)
    return {
      ...r,
      cpu: spent('ThreadTime'),
      script: spent('ScriptDuration'),
      layout: spent('LayoutDuration') + spent('RecalcStyleDuration'),
    }
  } finally {
    await context.close()
  }
}

async function metrics(cdp) {
  const { metrics: list } = await cdp.send('Performance.getMetrics')
  return Object.fromEntries(list.map((m) => [m.name, m.value]))
}

/**
 * The console page as the admin listener sends it, without its script, served as a static file
 * at `/`; at `/graph` the same with the graph's drawing out of its <noscript> (shown by the first
 * paint, as the page was before 2026-11-29).
 */
async function staticCopy(origin) {
  const res = await fetch(`${origin}/`)
  const html = (await res.text())
    .replace(/<script[^>]*><\/script>/g, '')
    .replaceAll('href="/console/', `href="${origin}/console/`)
  const body = Buffer.from(html)
  const withGraph = Buffer.from(html.replace(/<noscript>(<svg[\s\S]*?<\/svg>)<\/noscript>/, '$1'))
  const floor = Buffer.from(
    '<!doctype html><meta charset="utf-8"><title>floor</title><table><tbody><tr data-module="m"><th>m</th></tr></tbody></table>',
  )
  const server = http.createServer((req, reply) => {
    reply.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' })
    reply.end(req.url === '/floor' ? floor : req.url === '/graph' ? withGraph : body)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    /** The copy at `/`, with the graph drawn in at `/graph`, the floor at `/floor`. */
    url: `http://127.0.0.1:${server.address().port}/`,
    bytes: body.length,
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}
