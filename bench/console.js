// The operator console's first render, in Chromium (playwright-core, Debian's chromium).
//
// Measured (first render, the headline): from navigation start (performance.timeOrigin) to the
// first paint in which the first screen is painted whole: the latest of the paint times Chromium
// reports (Element Timing, `renderTime`: when the frame is presented) for the page's title, its
// summary and every data cell of every module row on screen (name to last reload, each cell whose
// text is inside the viewport), at 1280x800 and on a phone-sized 390x844. The visit fails if a
// cell on screen was never painted. This is what an operator perceives: what the first screen
// shows, like First Contentful / Largest Contentful Paint, but stricter (every row on screen
// complete, not the first or largest piece). Rows below the first screen are not in it: the page
// sends them in its second part, right after the first (src/http/console-parts.ts).
//
// Beside it, from the same visits: when every one of the n rows is in the document; the first
// paint after that moment (a speck of text the probe puts in then), which is the definition used
// until 2026-11-29 ("first paint with every row in the document", stricter than what anyone
// sees); the graph painted (its first node's label, drawn by the page's script after the first
// render); the page's data applied by its script (html[data-ready], every row complete). The
// probe is added by the browser driver (an init script), not by the page. Cold: a new browser
// context (nothing cached, a new connection); files cached: a second visit in the same context
// (the page's script from the cache; the page itself is revalidated and drawn anew, it changes
// with every reload).
//
// Baselines in the same run and browser, served as static files by a bare node:http server in
// this process, in one write: the same page as it arrived without its script (no graph: it is in
// a <noscript>; nor the rows after the first 30, in a <noscript> too since the third pass of
// 2026-11-29: its "all rows" figures count the rows in its document); the same with the graph's drawing in its HTML (the page as it was before
// 2026-11-29); the first screen alone (since 2026-11-29's fifth session: the page's title,
// summary and first six rows' cells as a plain table, no stylesheet, nothing else), the least
// any design of the page can cost for what its first screen shows; and the floor, a page of
// one row and nothing else, what any page costs this browser on this machine. Target (issue
// 17): first render under 100 ms with 200 modules.
//
// Each visit starts as an operator's does (since 2026-11-30): with the browser idle (a new tab's
// renderer goes on starting for half a second after the driver has the page, and took the cores
// from the page's first paint), and nothing of the driver's runs in the page until that paint
// (no waitForFunction, whose injected script was compiled during it). docs/console-render.md,
// "The measurement, corrected".
//
// Paired with the floor (since the third pass of 2026-11-29): each round visits the page and the
// floor one after the other, so each visit minus the same round's floor visit is printed too
// (median, p90, max): the load of this shared machine moves both, the difference is what the page
// costs over any page, and the floor's own median says how much of the target is left for it.

import { existsSync, readdirSync, readFileSync } from 'node:fs'
import http from 'node:http'
import { loadavg } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import {
  assertBuilt,
  cliPath,
  descendantPids,
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
const quick = { sizes: [4, 40], rounds: 2 }
const desktop = { width: 1280, height: 800 }
const phone = { width: 390, height: 844 }

export const definition =
  'navigation start -> first paint in which the first screen is painted whole: title, summary and every data cell on screen of every module row on screen (the latest Element Timing renderTime among them)'
/** The definition until 2026-11-29, printed beside it from the same visits. */
export const previousDefinition =
  'navigation start -> first paint with every one of the n rows in the document'

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
        const samples = {
          cold: [],
          cached: [],
          phone: [],
          static: [],
          staticGraph: [],
          minimal: [],
          floor: [],
        }
        try {
          for (let i = 0; i < settings.rounds; i++) {
            if (opts.signal?.aborted) break
            progress(`${n} modules: round ${i + 1}/${settings.rounds}`)
            samples.cold.push(await firstRender(browser, `${origin}/`, n))
            samples.cached.push(await firstRender(browser, `${origin}/`, n, { warm: true }))
            samples.phone.push(await firstRender(browser, `${origin}/`, n, { viewport: phone }))
            samples.static.push(await firstRender(browser, baseline.url, baseline.rows))
            samples.staticGraph.push(await firstRender(browser, `${baseline.url}graph`, baseline.rows))
            samples.minimal.push(await firstRender(browser, `${baseline.url}minimal`, baseline.minimalRows))
            samples.floor.push(await firstRender(browser, `${baseline.url}floor`, 1))
          }
        } finally {
          await baseline.close()
          await host.stop()
        }
        load.push(loadavg()[0])
        const section = `console at ${n} modules`
        const med = (list, key) => {
          const values = list.map((s) => s[key]).filter((v) => v !== undefined)
          return values.length ? round(medianOf(values), 1) : undefined
        }
        for (const [measure, list] of [
          ['first render, cold (new context)', samples.cold],
          ['first render, files cached (second visit)', samples.cached],
          ['first render, cold, phone 390x844', samples.phone],
          ['baseline: the same page as a static file, no script, cold', samples.static],
          ['baseline: that static file with the graph in its HTML, cold', samples.staticGraph],
          ['baseline: the first screen alone (title, summary, first rows; no style), cold', samples.minimal],
          ['floor: a static page of one row, cold', samples.floor],
        ]) {
          table.push({
            section,
            measure,
            ...spread(list.map((s) => s.render)),
            // how much of the page that first screen is: rows and data cells on screen
            'rows shown': med(list, 'rowsShown'),
            'cells shown': med(list, 'cellsShown'),
            // every row in the document, and the first paint after (the definition until 2026-11-29)
            'all rows in doc ms': med(list, 'allRows'),
            'first paint with all rows ms': med(list, 'strict'),
            // visits whose first screen was painted before every row was in the document
            'painted before all rows': list.filter((s) => s.render < s.allRows).length,
            // visits whose navigation began with the browser idle (the rest waited 5 s for it)
            'began idle': list.filter((s) => s.idle).length,
            // after the first render, by the page's script: the graph painted, the data applied
            'graph painted ms': med(list, 'graph'),
            'data applied ms': med(list, 'ready'),
            // the phases, medians: HTML first byte, HTML last byte, HTML parsed
            'html first byte': med(list, 'responseStart'),
            'html last byte': med(list, 'responseEnd'),
            'dom interactive': med(list, 'domInteractive'),
            // the renderer's main thread until that first paint with every row (for the pages
            // with a script it can include their work right after it)
            'main-thread cpu ms': med(list, 'cpu'),
            'style+layout ms': med(list, 'layout'),
          })
        }
        // each visit minus the floor's visit of the same round: the machine's load moves both
        // (this machine is shared), the difference is what the page itself costs over any page
        const paired = (a, b, measure) => {
          const values = a.slice(0, Math.min(a.length, b.length)).map((s, i) => s.render - b[i].render)
          table.push({ section, measure, ...spread(values) })
          return round(medianOf(values), 1)
        }
        const coldOverFloor = paired(
          samples.cold,
          samples.floor,
          'paired: first render (cold) minus the floor, same round',
        )
        const phoneOverFloor = paired(
          samples.phone,
          samples.floor,
          'paired: first render (phone) minus the floor, same round',
        )
        const staticOverFloor = paired(
          samples.static,
          samples.floor,
          'paired: static baseline minus the floor, same round',
        )
        const minimalOverFloor = paired(
          samples.minimal,
          samples.floor,
          'paired: the first screen alone minus the floor, same round',
        )
        const ratio = (a, b, measure) =>
          table.push({
            section,
            measure,
            samples: a.length,
            'median ms': round(medianOf(a.map((s) => s.render)) / medianOf(b.map((s) => s.render)), 2),
          })
        ratio(samples.cold, samples.static, 'ratio first render (cold) / static baseline')
        ratio(samples.cold, samples.floor, 'ratio first render (cold) / floor')
        ratio(
          samples.cold,
          samples.staticGraph,
          'ratio first render (cold) / static with the graph in its HTML',
        )
        summary[n] = {
          coldMs: med(samples.cold, 'render'),
          cachedMs: med(samples.cached, 'render'),
          phoneMs: med(samples.phone, 'render'),
          staticMs: med(samples.static, 'render'),
          staticGraphMs: med(samples.staticGraph, 'render'),
          floorMs: med(samples.floor, 'render'),
          minimalMs: med(samples.minimal, 'render'),
          minimalOverFloorMs: minimalOverFloor,
          coldAllRowsMs: med(samples.cold, 'allRows'),
          coldStrictMs: med(samples.cold, 'strict'),
          coldBeforeAllRows: samples.cold.filter((s) => s.render < s.allRows).length,
          cachedStrictMs: med(samples.cached, 'strict'),
          coldGraphMs: med(samples.cold, 'graph'),
          cachedGraphMs: med(samples.cached, 'graph'),
          coldReadyMs: med(samples.cold, 'ready'),
          rowsShown: med(samples.cold, 'rowsShown'),
          phoneRowsShown: med(samples.phone, 'rowsShown'),
          pageBytes: baseline.bytes,
          coldOverFloorMs: coldOverFloor,
          phoneOverFloorMs: phoneOverFloor,
          staticOverFloorMs: staticOverFloor,
        }
      }
    } finally {
      await browser.close()
    }
    const largest = settings.sizes[settings.sizes.length - 1]
    const at = summary[largest]
    const judged = (ms) => (opts.quick ? 'not judged' : ms < targets.firstRenderMs ? 'met' : 'NOT met')
    return {
      name: 'console',
      table,
      notes: [
        `measured (first render): ${definition}`,
        `first render at ${largest} modules: cold median ${at.coldMs} ms (${judged(at.coldMs)}), ` +
          `files cached median ${at.cachedMs} ms (${judged(at.cachedMs)}), cold on a phone ${at.phoneMs} ms; target under ${targets.firstRenderMs} ms (issue 17), a median of exactly ${targets.firstRenderMs} is not under it`,
        `the page over the floor at ${largest} modules (median of each round's visit minus that round's floor visit): cold ${at.coldOverFloorMs} ms, phone ${at.phoneOverFloorMs} ms, the static copy ${at.staticOverFloorMs} ms; with the floor's median of ${at.floorMs} ms, under ${targets.firstRenderMs} ms needs the page within ${round(targets.firstRenderMs - at.floorMs, 1)} ms of it`,
        `the first screen alone at ${largest} modules (the page's title, its summary and its first ${minimalRowsOf} rows' cells as a plain table, no stylesheet, nothing else: the least any page showing that first screen can cost this browser): median ${at.minimalMs} ms, ${at.minimalOverFloorMs} ms over the floor${at.minimalMs > targets.firstRenderMs ? `; above ${targets.firstRenderMs} ms, so on this machine no page showing this first screen renders under the target` : ''}`,
        `until 2026-11-29 the headline was "${previousDefinition}": from the same visits, cold ${at.coldStrictMs} ms, files cached ${at.cachedStrictMs} ms (every row in the document at ${at.coldAllRowsMs} ms cold; ${at.coldBeforeAllRows} of ${settings.rounds} cold visits painted the first screen before that)`,
        `graph painted at ${largest} modules (by the script, after the first render): cold median ${at.coldGraphMs} ms, files cached ${at.cachedGraphMs} ms; data applied (every row complete) cold ${at.coldReadyMs} ms`,
        `load average (1 min) at the start and after each size: ${load.map((l) => l.toFixed(2)).join(', ')}; the browser, the host and this process share the machine`,
      ],
      summary: { targets, settings, definition, previousDefinition, load, results: summary },
    }
  })
}

/** A measure's columns: how many samples, their median, p90 and max. */
const spread = (values) => ({
  samples: values.length,
  'median ms': round(medianOf(values), 1),
  'p90 ms': round(percentileOf(values, 90), 1),
  'max ms': round(percentileOf(values, 100), 1),
})

/** Rows the probe marks for Element Timing: more than any viewport measured shows. */
const markedRows = 60
/** A row's data cells (name to last reload; the actions cell holds buttons, not data). */
const dataCells = 10

/** The probe, run by the browser before the page's own script (an init script, outside the page's CSP). */
function probe([n, markedRows, dataCells]) {
  const p = { painted: {}, marked: 0, allRows: undefined, ready: undefined }
  window.__consoleProbe = p
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if (p.painted[e.identifier] === undefined) p.painted[e.identifier] = e.renderTime || e.loadTime
  }).observe({ type: 'element', buffered: true })
  const mark = (el, id) => {
    if (el && !el.hasAttribute('elementtiming')) el.setAttribute('elementtiming', id)
  }
  // marks what the first screen shows for Element Timing as soon as it is in the document (a
  // mutation callback runs before any frame that could paint it): the title, the summary and the
  // data cells of the first rows. The graph (drawn by the page's script): its first node's label.
  // The moment every row is in the document, and the page's data applied by its script
  // (html[data-ready], set when a GET /overview is drawn).
  new MutationObserver(() => {
    mark(document.querySelector('header h1'), 'title')
    mark(document.getElementById('summary'), 'summary')
    mark(document.querySelector('#graph > svg .node text'), 'graph')
    const rows = document.querySelectorAll('tbody tr[data-module]')
    // the last row seen may be parsed in part: looked at again the next time
    for (let i = Math.max(0, p.marked - 1); i < Math.min(rows.length, markedRows); i++) {
      const cells = rows[i].children
      for (let c = 0; c < Math.min(cells.length, dataCells); c++) mark(cells[c], `row${i}.${c}`)
    }
    p.marked = Math.min(rows.length, markedRows)
    if (p.allRows === undefined && rows.length >= n) {
      p.allRows = performance.now()
      // the first paint with every row in the document (the definition until 2026-11-29): a
      // speck of text put in now is painted in the first frame after this moment
      const speck = document.createElement('span')
      speck.textContent = '.'
      speck.setAttribute('elementtiming', 'all-rows')
      Object.assign(speck.style, {
        position: 'fixed',
        left: '0',
        bottom: '0',
        fontSize: '2px',
        color: '#0001',
      })
      document.documentElement.append(speck)
    }
    if (p.ready === undefined && document.documentElement.hasAttribute('data-ready'))
      p.ready = performance.now()
  }).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-ready'] })
}

/**
 * In the page, once it has settled: the first screen's paint, the latest paint time among the
 * title, the summary and every data cell with text on screen (its text inside the viewport and
 * inside the table's scrolling box); a row on screen beyond the rows marked, or a cell on screen
 * never painted, makes the visit fail.
 */
function firstScreen([markedRows, dataCells]) {
  const p = window.__consoleProbe
  const view = { left: 0, top: 0, right: innerWidth, bottom: innerHeight }
  const clip = document.querySelector('.table-wrap')?.getBoundingClientRect() ?? view
  const shown = (r) =>
    r.width > 0 &&
    r.height > 0 &&
    r.left < Math.min(view.right, clip.right) &&
    r.right > Math.max(view.left, clip.left) &&
    r.top < Math.min(view.bottom, clip.bottom) &&
    r.bottom > Math.max(view.top, clip.top)
  const textShown = (el) => {
    const range = document.createRange()
    range.selectNodeContents(el)
    return el.textContent.trim() !== '' && [...range.getClientRects()].some(shown)
  }
  const wanted = ['title', 'summary'].filter((id) => document.querySelector(`[elementtiming="${id}"]`))
  const rows = [...document.querySelectorAll('tbody tr[data-module]')]
  let rowsShown = 0
  const problems = []
  for (const [i, tr] of rows.entries()) {
    if (!shown(tr.getBoundingClientRect())) continue
    rowsShown++
    if (i >= markedRows) problems.push(`row ${i} is on screen but not marked`)
    for (const [c, cell] of [...tr.children].slice(0, dataCells).entries())
      if (textShown(cell)) wanted.push(`row${i}.${c}`)
  }
  const times = wanted.map((id) => p.painted[id])
  const unpainted = wanted.filter((id) => p.painted[id] === undefined)
  if (unpainted.length) problems.push(`on screen, never painted: ${unpainted.slice(0, 5).join(', ')}`)
  const nav = performance.getEntriesByType('navigation')[0]
  return {
    render: problems.length ? undefined : Math.max(...times),
    problems,
    rowsShown,
    cellsShown: wanted.length,
    allRows: p.allRows,
    strict: p.painted['all-rows'],
    graph: p.painted.graph,
    ready: p.ready,
    responseStart: nav.responseStart,
    responseEnd: nav.responseEnd,
    domInteractive: nav.domInteractive,
  }
}

/**
 * CPU time (ns) the browser's processes have used, every thread of each: /proc/<pid>/task/<tid>/
 * schedstat of the processes below this one that run Chromium (the host is below it too, and
 * not counted).
 */
function browserCpuNs() {
  let total = 0
  for (const pid of descendantPids(process.pid)) {
    let tasks
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('chromium')) continue
      tasks = readdirSync(`/proc/${pid}/task`)
    } catch {
      continue // gone meanwhile
    }
    for (const tid of tasks) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
      } catch {}
    }
  }
  return total
}

/**
 * Waits until the browser is idle (under 5% of a core over 100 ms), at most `settleMaxMs`; true
 * if it got there. A new tab's renderer goes on starting for about half a second after the
 * driver has the page (about 400 ms of CPU on this machine, measured 2026-11-30), where an
 * operator's browser has a started renderer ready when they open the page: a visit that began
 * at once measured that start-up fighting the page for the two cores.
 */
async function settled() {
  const start = performance.now()
  let before = browserCpuNs()
  while (performance.now() - start < settleMaxMs) {
    await delay(100)
    const now = browserCpuNs()
    if (now - before < 5e6) return true
    before = now
  }
  return false
}
const settleMaxMs = 5000

/**
 * Polls the page with a plain evaluation until `fn` holds. Not the driver's waitForFunction: that
 * puts the driver's own script into the page first, tens of ms of compiling on the renderer's
 * main thread, which landed inside the first paint it was waiting for.
 */
async function until(page, fn, timeoutMs = 30_000) {
  const start = Date.now()
  while (!(await page.evaluate(fn))) {
    if (Date.now() - start > timeoutMs) throw new Error(`${page.url()}: not ready in ${timeoutMs} ms`)
    await delay(50)
  }
}

/** One visit: the first render and the other moments, ms since navigation start. */
async function firstRender(browser, url, n, { warm = false, viewport = desktop } = {}) {
  const context = await browser.newContext({ viewport })
  try {
    const page = await context.newPage()
    await page.addInitScript(probe, [n, markedRows, dataCells])
    const strictPainted = () => window.__consoleProbe?.painted['all-rows'] !== undefined
    // the navigation starts with the browser idle and nothing of the driver's runs in the page
    // until the first screen is painted: what an operator's browser does when they open the page
    let idle = true
    const visit = async () => {
      idle = (await settled()) && idle
      await page.goto(url, { waitUntil: 'commit' })
      await until(page, strictPainted)
    }
    if (warm) await visit()
    // the renderer's main thread: CPU time (ThreadTime) and where its tasks went, this visit only
    const cdp = await context.newCDPSession(page)
    await cdp.send('Performance.enable')
    const before = await metrics(cdp)
    await visit()
    const after = await metrics(cdp)
    const spent = (key) => (after[key] - before[key]) * 1000
    // a page with its script goes on: the graph painted and the data applied
    const scripted = await page.evaluate(() => document.querySelector('script[src]') !== null)
    if (scripted)
      await until(
        page,
        () => window.__consoleProbe.painted.graph !== undefined && window.__consoleProbe.ready !== undefined,
      )
    // two more frames: every paint of the first screen reported
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))))
    const r = await page.evaluate(firstScreen, [markedRows, dataCells])
    if (r.problems.length) throw new Error(`${url}: the first screen: ${r.problems.join('; ')}`)
    return {
      ...r,
      idle,
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
/** Rows in the first-screen-alone baseline, at most: as many as the console's first screen shows (5 at 1280x800, 6 on a phone). */
const minimalRowsOf = 6

/**
 * The console's first screen and nothing else: its title, its summary and the data cells of its
 * first rows (their charts left out) as a plain table, no stylesheet, no script, no other part.
 * Whatever else a page does, showing these cells costs at least this: a lower bound for any
 * design of the page on this machine and browser, measured beside the page in the same rounds.
 */
function firstScreenAlone(html) {
  const pick = (re) => html.match(re)?.[0] ?? ''
  const rows = (html.match(/<tr data-module=[\s\S]*?<\/tr>/g) ?? [])
    .slice(0, minimalRowsOf)
    .map((row) => row.replace(/<svg[\s\S]*?<\/svg>/g, ''))
  const page =
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>Nyala console</title>' +
    `<header>${pick(/<h1>[\s\S]*?<\/h1>/)}${pick(/<p id="summary"[\s\S]*?<\/p>/)}</header>` +
    `<table><tbody>${rows.join('')}</tbody></table>`
  return { html: page, rows: rows.length }
}

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
  const minimal = firstScreenAlone(html)
  const pages = { '/floor': floor, '/graph': withGraph, '/minimal': Buffer.from(minimal.html) }
  const server = http.createServer((req, reply) => {
    reply.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' })
    reply.end(pages[req.url] ?? body)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    /** The copy at `/`, with the graph drawn in at `/graph`, the floor at `/floor`. */
    url: `http://127.0.0.1:${server.address().port}/`,
    bytes: body.length,
    // rows in its document: without the script, those after the first part stay text in their
    // <noscript> (src/http/console-view.ts, moreRows)
    rows: html.replace(/<noscript[\s\S]*?<\/noscript>/g, '').match(/<tr data-module=/g)?.length ?? 0,
    minimalRows: minimal.rows,
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}
