// Nyala operator console: the admin API drawn. Plain browser JavaScript, no build step, no
// library; served by the admin listener under a strict Content-Security-Policy, so nothing
// here uses inline handlers, eval or innerHTML (module names and error texts come from bundles:
// they only ever reach the page as text). The admin listener draws the first view into the page
// (src/http/console-view.ts) and the graph for every change; this script takes the page over
// and keeps it live. Its work waits for the page's first paint: the controls that need it (the
// filter, the deploy form, the dialogs: in <template>s until then) are put in and the graph
// (sent as text in a <noscript>) is drawn right after it, the rows after the first screenful
// (sent as text in a <noscript> too, without chart and buttons) are put in the table right after
// it and completed with the first GET /overview.

const $ = (id) => document.getElementById(id)
const svgNS = 'http://www.w3.org/2000/svg'
const tokenKey = 'nyala.admin.token'
const historySize = 100
// The poll: every 2 s the figures (GET /stats: the minute's figures and the requests in flight,
// about 1 ms of the host's serving thread at 200 modules), and every 10 s, or on a reload event,
// the whole view (GET /overview: every module described, about 4 ms there; in that time the
// host's own modules wait). Changes that send no event (a module unregistered from the CLI) show
// within the 10 s.
const pollMs = 2000
const fullEveryMs = 10_000
/** How long a deploy from the page waits for its reload's verdict. */
const verdictMs = 120_000

const state = {
  modules: [],
  stats: {},
  /** module name -> the id of the reload that started on it and has not ended */
  reloading: new Map(),
  events: [],
  filter: '',
  rendered: false,
  view: undefined,
  bounds: undefined,
  graphKey: '',
  waiters: new Set(),
}

// ---------------------------------------------------------------------------------------------
// The admin API, with the token asked once and kept for this tab (sessionStorage)

let asking
function askToken(message) {
  if (!asking) {
    asking = new Promise((resolve) => {
      const dialog = $('token-dialog')
      $('token-error').textContent = message
      $('token-input').value = ''
      const done = (event) => {
        event.preventDefault()
        sessionStorage.setItem(tokenKey, $('token-input').value)
        $('token-form').removeEventListener('submit', done)
        dialog.removeEventListener('cancel', dismissed)
        dialog.close()
        if ($('token-again')) notice('')
        asking = undefined
        resolve()
      }
      // Escape closes the prompt; every request still waits for a token (the page can show
      // nothing without one), so the notice offers the prompt again instead of leaving a page
      // that waits for ever with no way on but reloading it
      const dismissed = () => {
        const again = document.createElement('button')
        again.type = 'button'
        again.id = 'token-again'
        again.textContent = 'Enter the admin token'
        again.addEventListener('click', () => dialog.showModal())
        $('notice').replaceChildren(
          'The admin API needs a token (admin.token) before this page can show the host. ',
          again,
        )
        $('notice').classList.add('error')
        again.focus()
      }
      $('token-form').addEventListener('submit', done)
      dialog.addEventListener('cancel', dismissed)
      dialog.showModal()
    })
  }
  return asking
}

async function api(path, init = {}) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const headers = new Headers(init.headers)
    const token = sessionStorage.getItem(tokenKey)
    if (token) headers.set('authorization', `Bearer ${token}`)
    const res = await fetch(path, { ...init, headers })
    if (res.status !== 401) return res
    await askToken(token ? 'That token was refused: try again.' : '')
  }
  throw new Error('the admin API refused every token given')
}

async function json(path, init) {
  const res = await api(path, init)
  const body = await res.json().catch(() => ({}))
  return { status: res.status, body }
}

// ---------------------------------------------------------------------------------------------
// Loading and polling

// One request per update (modules, figures and, when it changed, the graph). A burst of
// events (a rescan of 200 modules) asks for many: at most one is in flight and one waits, which
// every caller during the wait shares, so answers are applied in the order they were asked.
let inFlight
let queued
/** When the last whole view was asked for, and how many have been applied (a figures-only answer older than one is dropped). */
let lastFull = -Infinity
let fullApplied = 0

function refresh() {
  if (!inFlight) {
    inFlight = load().finally(() => {
      inFlight = undefined
    })
    return inFlight
  }
  queued ??= inFlight
    .catch(() => {})
    .then(() => {
      queued = undefined
      return refresh()
    })
  return queued
}

async function load() {
  lastFull = performance.now()
  const { status, body } = await json(`/overview?graph=${encodeURIComponent(state.graphKey)}`)
  if (status !== 200) throw new Error(`GET /overview: ${status}`)
  state.modules = body.modules ?? []
  state.stats = body.stats ?? {}
  fullApplied++
  if (body.graph !== undefined) drawGraph(body.graph)
  render()
  document.documentElement.dataset.ready = ''
}

/** The figures alone, between whole views; none while a whole view is on its way (it brings them). */
async function loadFigures() {
  if (inFlight) return
  const before = fullApplied
  const { status, body } = await json('/stats')
  if (status !== 200) throw new Error(`GET /stats: ${status}`)
  if (inFlight || fullApplied !== before) return
  state.stats = body.modules ?? {}
  for (const m of state.modules) Object.assign(m, body.counts?.[m.name])
  render()
}

async function poll() {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, pollMs))
    if (document.hidden) continue
    const update = performance.now() - lastFull >= fullEveryMs ? refresh() : loadFigures()
    await update.catch(() => {})
  }
}

const stateOf = (m) => (state.reloading.has(m.name) ? 'reloading' : m.state)

function render() {
  const running = state.modules.filter((m) => m.state === 'running').length
  const failed = state.modules.filter((m) => m.state === 'failed').length
  $('summary').textContent = `${state.modules.length} modules: ${running} running, ${failed} failed`
  renderTable()
  markGraph()
  applyFilter()
  if (!state.rendered) {
    state.rendered = true
    // read by tests and bench/console.js: the page has drawn every module once
    document.documentElement.dataset.rendered = String(Math.round(performance.now()))
  }
}

// ---------------------------------------------------------------------------------------------
// The module table: one row per module, kept (so focus and selection survive a refresh)

const rows = new Map()

function cell(row, i) {
  return row.children[i]
}

function newRow(name) {
  const tr = document.createElement('tr')
  tr.dataset.module = name
  for (let i = 0; i < 11; i++) tr.append(document.createElement(i === 0 ? 'th' : 'td'))
  tr.children[0].scope = 'row'
  cell(tr, 9).className = 'reload-cell'
  addActions(cell(tr, 10))
  return tr
}

/** A row's buttons: the listener sends every row without them (src/http/console-view.ts). */
function addActions(td) {
  const actions = document.createElement('div')
  actions.className = 'actions'
  const button = (label, action, cls) => {
    const b = document.createElement('button')
    b.type = 'button'
    b.textContent = label
    b.dataset.action = action
    if (cls) b.className = cls
    actions.append(b)
  }
  // clicks are handled on the table (wireTable): rows drawn by the server work the same
  button('Reload', 'reload')
  button('Force reload', 'force', 'danger')
  button('Unregister', 'registration', 'registration danger')
  td.append(actions)
}

/** The registration button says what a click does: unregister a module registered for reloading, or register it. */
function showRegistration(tr, registered) {
  const reg = tr.querySelector('button.registration')
  reg.textContent = registered ? 'Unregister' : 'Register'
  reg.dataset.registered = String(registered)
  reg.classList.toggle('danger', registered)
}

function renderTable() {
  const tbody = $('modules').tBodies[0]
  const seen = new Set(state.modules.map((m) => m.name))
  for (const [name, tr] of rows) {
    if (!seen.has(name)) {
      tr.remove()
      rows.delete(name)
    }
  }
  // the host's order, with a row moved only when it is out of place: a row taken out of the
  // document and put back loses the keyboard focus of the button in it, every poll
  let next = tbody.firstElementChild
  for (const m of state.modules) {
    let tr = rows.get(m.name)
    if (!tr) {
      tr = newRow(m.name)
      rows.set(m.name, tr)
    }
    if (tr === next) next = tr.nextElementSibling
    else tbody.insertBefore(tr, next)
    const s = stateOf(m)
    const stats = state.stats[m.name]
    cell(tr, 0).textContent = m.name
    cell(tr, 1).textContent = m.version ?? '–'
    const stateCell = cell(tr, 2)
    stateCell.replaceChildren(span(s, `state ${s}`))
    if (m.error) {
      stateCell.append(document.createElement('br'), span(m.error.code, 'error'))
      stateCell.title = m.error.message
    } else stateCell.removeAttribute('title')
    const gen = cell(tr, 3)
    // with worker processes that serve different generations: each worker's after it
    const perWorker = m.workers?.generations.map((g) => g ?? '–')
    gen.textContent = `${m.generation ?? '–'}${m.workers && !m.workers.same ? ` · ${perWorker.join('/')}` : ''}`
    gen.dataset.generation = m.generation ?? ''
    if (perWorker) gen.title = `per worker: ${perWorker.join(', ')}`
    cell(tr, 4).textContent = m.prefix ?? '–'
    cell(tr, 5).textContent = String(m.inflight ?? 0)
    const rate = cell(tr, 6)
    rate.replaceChildren(stats ? formatRate(stats.rps) : '–')
    if (stats) rate.append(sparkline(stats.perSecond))
    cell(tr, 7).textContent = stats?.p99Ms == null ? '–' : `${formatMs(stats.p99Ms)}`
    cell(tr, 8).textContent = String(m.crashes ?? 0)
    renderLastReload(cell(tr, 9), m)
    if (!cell(tr, 10).firstElementChild) addActions(cell(tr, 10))
    showRegistration(tr, m.registered !== false)
  }
}

function renderLastReload(td, m) {
  const last = m.lastReload
  const err = m.lastError
  const errorIsNewer = err && (!last || err.at > last.at)
  if (errorIsNewer) {
    td.replaceChildren(span(`${time(err.at)} refused: `, ''), span(err.code, 'error'))
    td.title = err.message
  } else if (last) {
    td.replaceChildren(`${time(last.at)} · ${Math.round(last.ms)} ms · ok`)
    td.removeAttribute('title')
  } else {
    td.replaceChildren('–')
    td.removeAttribute('title')
  }
}

function span(text, className) {
  const s = document.createElement('span')
  s.textContent = text
  if (className) s.className = className
  return s
}

function sparkline(values) {
  const svg = document.createElementNS(svgNS, 'svg')
  svg.setAttribute('class', 'spark')
  svg.setAttribute('viewBox', '0 0 60 20')
  svg.setAttribute('preserveAspectRatio', 'none')
  svg.setAttribute('role', 'img')
  svg.setAttribute('aria-label', 'requests per second over the last minute')
  // as src/http/console-view.ts draws it: 1 unit per pixel, a flat run's inner points left out
  const max = Math.max(1, ...values)
  const ys = values.map((v) => Math.round(19 - (v / max) * 18))
  const points = ys.map((y, i) => (y !== ys[i - 1] || y !== ys[i + 1] ? `${i},${y}` : '')).filter(Boolean)
  const line = document.createElementNS(svgNS, 'polyline')
  line.setAttribute('points', points.join(' '))
  svg.append(line)
  return svg
}

const formatRate = (rps) => (rps >= 100 ? String(Math.round(rps)) : rps.toFixed(rps >= 10 ? 1 : 2))
const formatMs = (ms) => (ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(ms >= 10 ? 1 : 2)} ms`)
const time = (iso) => new Date(iso).toLocaleTimeString()

// ---------------------------------------------------------------------------------------------
// The graph: laid out and drawn by the admin listener (in the page, and in GET /overview when it
// changed), zoomed and panned here through the SVG viewBox; a reload in progress recolours nodes

function drawGraph(markup) {
  if (markup.trim() === '') {
    $('graph').replaceChildren()
    return
  }
  // an SVG document parsed as XML: nothing in it runs (and the CSP forbids inline script anyway)
  const parsed = new DOMParser().parseFromString(markup, 'image/svg+xml').documentElement
  if (parsed.namespaceURI !== svgNS) return
  $('graph').replaceChildren(document.importNode(parsed, true))
  adoptGraph()
}

/** Takes the drawn graph's key and extent; keeps the operator's zoom across redraws. */
function adoptGraph() {
  const svg = $('graph').querySelector(':scope > svg')
  if (!svg) return
  state.graphKey = svg.dataset.key ?? ''
  const [x, y, w, h] = (svg.dataset.bounds ?? '').split(' ').map(Number)
  state.bounds = { x, y, w, h }
  if (!state.view) fit()
  else applyView()
}

function markGraph() {
  const byName = new Map(state.modules.map((m) => [m.name, m]))
  for (const g of $('graph').querySelectorAll('.node')) {
    const m = byName.get(g.dataset.node)
    if (m) g.setAttribute('class', `node ${stateOf(m)}`)
  }
}

function fit() {
  const b = state.bounds
  if (!b) return
  // never smaller than readable when there are few modules: at least 600 x 300 units of view
  state.view = { x: b.x, y: b.y, w: Math.max(b.w, 600), h: Math.max(b.h, 300) }
  applyView()
}

function applyView() {
  const svg = $('graph').querySelector(':scope > svg')
  const v = state.view
  if (svg && v) svg.setAttribute('viewBox', `${v.x} ${v.y} ${v.w} ${v.h}`)
}

function zoom(factor, cx = 0.5, cy = 0.5) {
  const v = state.view
  if (!v) return
  const w = Math.min(Math.max(v.w * factor, 100), 50_000)
  const h = (v.h * w) / v.w
  state.view = { x: v.x + (v.w - w) * cx, y: v.y + (v.h - h) * cy, w, h }
  applyView()
}

function pan(dx, dy) {
  const v = state.view
  if (!v) return
  state.view = { ...v, x: v.x + dx * v.w, y: v.y + dy * v.h }
  applyView()
}

function wireGraph() {
  const el = $('graph')
  // keyboard-operable (role=application): + and - zoom, arrows pan, 0 fits
  el.tabIndex = 0
  // the node under the press: with the pointer captured (for dragging) the click that follows
  // goes to the graph's box, not to the node that was pressed
  let pressed
  el.addEventListener('click', (e) => {
    const node = pressed ?? e.target.closest?.('[data-node]')
    pressed = undefined
    if (node) focusRow(node.dataset.node)
  })
  el.addEventListener(
    'wheel',
    (e) => {
      e.preventDefault()
      const r = el.getBoundingClientRect()
      zoom(e.deltaY > 0 ? 1.15 : 0.87, (e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height)
    },
    { passive: false },
  )
  let drag
  el.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, y: e.clientY }
    pressed = e.target.closest?.('[data-node]') ?? undefined
    el.setPointerCapture(e.pointerId)
  })
  el.addEventListener('pointermove', (e) => {
    if (!drag) return
    // a drag is not a click on the node it started on
    if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) pressed = undefined
    const r = el.getBoundingClientRect()
    pan(-(e.clientX - drag.x) / r.width, -(e.clientY - drag.y) / r.height)
    drag = { x: e.clientX, y: e.clientY }
  })
  el.addEventListener('pointerup', () => {
    drag = undefined
  })
  el.addEventListener('keydown', (e) => {
    const keys = {
      '+': () => zoom(0.8),
      '=': () => zoom(0.8),
      '-': () => zoom(1.25),
      0: fit,
      ArrowLeft: () => pan(-0.1, 0),
      ArrowRight: () => pan(0.1, 0),
      ArrowUp: () => pan(0, -0.1),
      ArrowDown: () => pan(0, 0.1),
    }
    const fn = keys[e.key]
    if (fn) {
      e.preventDefault()
      fn()
    }
  })
}

function focusRow(name) {
  const tr = rows.get(name)
  if (!tr) return
  tr.scrollIntoView({ block: 'nearest' })
  tr.querySelector('button')?.focus()
}

// ---------------------------------------------------------------------------------------------
// Filter by name: the table hides, the graph dims

function applyFilter() {
  const f = state.filter
  for (const [name, tr] of rows) tr.classList.toggle('hidden', f !== '' && !name.includes(f))
  for (const g of $('graph').querySelectorAll('.node')) {
    g.classList.toggle('dim', f !== '' && !g.dataset.node.includes(f))
  }
  for (const p of $('graph').querySelectorAll('.edge')) {
    p.classList.toggle('dim', f !== '' && !p.dataset.from.includes(f) && !p.dataset.to.includes(f))
  }
}

// ---------------------------------------------------------------------------------------------
// Live: the admin API's event stream, read with fetch (EventSource cannot send the token)

function setLive(status) {
  const el = $('live')
  el.dataset.live = status
  el.textContent = `events: ${status === 'open' ? 'live' : status === 'paused' ? 'paused (tab hidden)' : status}`
}

/** Resolves once the tab is visible (at once when it is). */
function whenVisible() {
  return new Promise((resolve) => {
    if (!document.hidden) return resolve()
    const on = () => {
      if (document.hidden) return
      document.removeEventListener('visibilitychange', on)
      resolve()
    }
    document.addEventListener('visibilitychange', on)
  })
}

/**
 * Follows the event stream while the tab is visible. A browser gives a host 6 connections (HTTP/1.1)
 * and each open stream holds one: six console tabs left open stalled every request of a seventh,
 * and of their own polls. A hidden tab closes its stream (and does not poll); shown again, it
 * opens it and takes what it missed (the events from `GET /events/recent`, the whole view).
 */
async function follow() {
  for (let missed = false; ; missed = true) {
    await whenVisible()
    const hidden = new AbortController()
    const onHide = () => {
      if (document.hidden) hidden.abort()
    }
    document.addEventListener('visibilitychange', onHide)
    try {
      const res = await api('/events', { signal: hidden.signal })
      if (res.status !== 200 || !res.body) throw new Error(`GET /events: ${res.status}`)
      setLive('open')
      if (missed) {
        // what happened while the stream was down (a host keeps its last 100 events)
        refresh().catch(() => {})
        loadRecent().catch(() => {})
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += value
        let end = buffer.indexOf('\n\n')
        while (end >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n')
          if (data) onEvent(JSON.parse(data))
          end = buffer.indexOf('\n\n')
        }
      }
    } catch {
      // the host restarting or upgrading, or the tab hidden
    } finally {
      document.removeEventListener('visibilitychange', onHide)
    }
    // the ends of reloads under way are missed: the next whole view says what each module is
    state.reloading.clear()
    if (document.hidden) setLive('paused')
    else {
      setLive('closed')
      // the host restarting or upgrading: try again shortly
      await new Promise((resolve) => setTimeout(resolve, 2000))
    }
  }
}

/**
 * The host's last events (oldest first) merged into the history (newest first, at most 100).
 * Events share ids (a reload's start, swapped and drained; every crash is id 0) and a restarted
 * host counts from 1 again: an event is told apart by its time, id, phase and modules.
 */
async function loadRecent() {
  const { status, body } = await json('/events/recent')
  if (status !== 200) return
  const key = (e) => `${e.at} ${e.id} ${e.phase} ${e.module ?? ''} ${e.modules?.join(',') ?? ''}`
  const known = new Set(state.events.map(key))
  const missed = body.events.filter((e) => !known.has(key(e))).reverse()
  if (missed.length === 0) return
  state.events = [...missed, ...state.events]
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
    .slice(0, historySize)
  renderEvents()
}

function onEvent(e) {
  state.events.unshift(e)
  state.events.length = Math.min(state.events.length, historySize)
  renderEvents()
  // a module is reloading from the start that names it to that reload's end (same id): the end
  // may name fewer (a rescan starts with every bundle it read, swaps only those that changed)
  if (e.phase === 'start') for (const m of e.modules) state.reloading.set(m, e.id)
  if (e.phase === 'swapped' || e.phase === 'failed' || e.phase === 'unchanged') {
    for (const [m, id] of state.reloading) if (id === e.id) state.reloading.delete(m)
  }
  for (const waiter of [...state.waiters]) waiter(e)
  if (e.phase === 'start') render()
  else refresh().catch(() => {})
}

function describeEvent(e) {
  const what = e.module ?? e.modules.join(', ')
  const gens = e.generations
    ? ` → ${Object.entries(e.generations)
        .map(([m, g]) => `${m} g${g}`)
        .join(', ')}`
    : ''
  const ms = e.ms === undefined ? '' : ` (${Math.round(e.ms)} ms)`
  const err = e.error ? `: ${e.error.code}: ${e.error.message}` : ''
  const action = e.action ? ` (${e.action})` : ''
  return `${time(e.at)} #${e.id} ${e.phase} ${what}${gens}${ms}${action}${err} [${e.trigger}]`
}

function renderEvents() {
  const list = $('events')
  const items = state.events.map((e) => {
    const li = document.createElement('li')
    li.className = e.phase
    li.textContent = describeEvent(e)
    return li
  })
  list.replaceChildren(...items)
}

// ---------------------------------------------------------------------------------------------
// Actions

function notice(text, isError = false) {
  const el = $('notice')
  el.textContent = text
  el.classList.toggle('error', isError)
}

function confirmAction(text) {
  return new Promise((resolve) => {
    const dialog = $('confirm-dialog')
    $('confirm-text').textContent = text
    const finish = (ok) => (event) => {
      event?.preventDefault()
      $('confirm-form').removeEventListener('submit', yes)
      $('confirm-cancel').removeEventListener('click', no)
      dialog.removeEventListener('cancel', no)
      dialog.close()
      resolve(ok)
    }
    const yes = finish(true)
    const no = finish(false)
    $('confirm-form').addEventListener('submit', yes)
    $('confirm-cancel').addEventListener('click', no)
    dialog.addEventListener('cancel', no)
    dialog.showModal()
    $('confirm-cancel').focus()
  })
}

function reportReload(name, { status, body }) {
  if (status === 200) {
    const gens = Object.entries(body.generations ?? {})
      .map(([m, g]) => `${m} g${g}`)
      .join(', ')
    notice(
      body.result === 'unchanged' ? `${name}: unchanged` : `${name}: reloaded${gens ? ` (${gens})` : ''}`,
    )
  } else
    notice(
      `${name}: ${body.error?.code ?? body.code ?? status}: ${body.error?.message ?? body.message ?? ''}`,
      true,
    )
}

async function reloadModule(name) {
  notice(`${name}: reloading…`)
  reportReload(name, await json(`/modules/${encodeURIComponent(name)}/reload`, { method: 'POST' }))
}

async function forceReload(name) {
  if (
    !(await confirmAction(
      `Force a reload of ${name} and its dependents, even if its bundle has not changed?`,
    ))
  )
    return
  notice(`${name}: forced reload…`)
  reportReload(name, await json(`/modules/${encodeURIComponent(name)}/reload?force=true`, { method: 'POST' }))
}

async function toggleRegistered(name) {
  const m = state.modules.find((x) => x.name === name)
  // before the first GET /overview the row (drawn by the listener) says it
  const registering = m
    ? m.registered === false
    : rows.get(name)?.querySelector('button.registration')?.dataset.registered === 'false'
  if (
    !registering &&
    !(await confirmAction(
      `Unregister ${name} from reloading? Changes to its bundle are then ignored until it is registered again.`,
    ))
  )
    return
  const { status, body } = await json(
    `/modules/${encodeURIComponent(name)}/${registering ? 'register' : 'unregister'}`,
    {
      method: 'POST',
    },
  )
  notice(
    status === 200
      ? `${name}: ${registering ? 'registered for' : 'unregistered from'} reloading`
      : `${name}: ${body.code}: ${body.message}`,
    status !== 200,
  )
  await refresh()
}

/**
 * Listens for the event that decides a deploy: the end (swapped, unchanged or failed) of the
 * reload whose start names the placed file, or that file set aside for a newer one (superseded).
 * Started before the upload: the watcher can decide (and the events arrive) before the upload's
 * answer names the file, so events are kept from the start and looked through once it does.
 * Another reload of the module ending meanwhile (an older .tmp checked again) is not the answer.
 */
function listenForVerdict(timeoutMs = verdictMs) {
  const seen = []
  let wanted
  const ours = new Set()
  const decides = (e) => {
    const file = e.files?.[wanted.module]
    if (e.phase === 'start' && file === wanted.file) ours.add(e.id)
    if (e.phase === 'superseded') return file === wanted.file
    return ours.has(e.id) && ['swapped', 'unchanged', 'failed'].includes(e.phase)
  }
  const waiter = (e) => {
    if (!wanted) seen.push(e)
    else if (decides(e)) wanted.resolve(e)
  }
  state.waiters.add(waiter)
  return {
    stop: () => state.waiters.delete(waiter),
    verdictOf: (module, file) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          state.waiters.delete(waiter)
          resolve(undefined)
        }, timeoutMs)
        wanted = {
          module,
          file,
          resolve: (e) => {
            clearTimeout(timer)
            state.waiters.delete(waiter)
            resolve(e)
          },
        }
        const early = seen.find(decides)
        if (early) wanted.resolve(early)
      }),
  }
}

async function deploy(event) {
  event.preventDefault()
  const file = $('deploy-file').files[0]
  if (!file) {
    notice('choose a bundle file (.zip or .jar) first', true)
    return
  }
  if (
    !(await confirmAction(
      `Deploy ${file.name} (${Math.round(file.size / 1024)} KiB)? It replaces the running code of its module.`,
    ))
  )
    return
  notice(`${file.name}: uploading…`)
  const listener = listenForVerdict()
  const res = await api(`/deploy/${encodeURIComponent(file.name)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: file,
  }).catch((err) => {
    listener.stop()
    throw new Error(`${file.name}: not uploaded: ${err.message ?? err}`)
  })
  const body = await res.json().catch(() => ({}))
  if (res.status !== 202) {
    listener.stop()
    notice(`${file.name}: ${body.code ?? res.status}: ${body.message ?? 'refused'}`, true)
    return
  }
  notice(`${file.name}: placed in staging, waiting for ${body.module}…`)
  const verdict = await listener.verdictOf(body.module, body.file)
  if (!verdict)
    notice(
      `${file.name}: no verdict in ${Math.round(verdictMs / 1000)} s: ${body.module} was not reloaded (is it registered for reloading? does the host watch its staging directory?)`,
      true,
    )
  else if (verdict.phase === 'failed' || verdict.phase === 'superseded')
    notice(`${file.name}: refused: ${verdict.error?.code}: ${verdict.error?.message}`, true)
  else if (verdict.phase === 'unchanged') notice(`${file.name}: ${body.module} unchanged (same content)`)
  else notice(`${file.name}: ${body.module} now at generation ${verdict.generations?.[body.module] ?? '?'}`)
}

// ---------------------------------------------------------------------------------------------

function wireTable() {
  const tbody = $('modules').tBodies[0]
  // the rows the server drew: kept, updated in place
  for (const tr of tbody.rows) if (tr.dataset.module) rows.set(tr.dataset.module, tr)
  const actions = { reload: reloadModule, force: forceReload, registration: toggleRegistered }
  tbody.addEventListener('click', (e) => {
    const button = e.target.closest('button[data-action]')
    const name = button?.closest('tr')?.dataset.module
    if (!name) return
    actions[button.dataset.action](name).catch((err) => notice(`${name}: ${err.message ?? err}`, true))
  })
}

/**
 * The rows after the first screen's, sent as text in a <noscript> after the table (read as one
 * text node, so that the first paint neither builds nor styles them; src/http/console-view.ts,
 * moreRows): parsed and put in the table right after the first paint. An HTML document made by
 * DOMParser runs nothing; every value in it was escaped by the admin listener.
 */
function addMoreRows() {
  const more = $('more-rows')
  if (!more) return
  const parsed = new DOMParser().parseFromString(more.textContent, 'text/html')
  const tbody = $('modules').tBodies[0]
  for (const tr of parsed.querySelectorAll('tbody > tr[data-module]')) {
    if (rows.has(tr.dataset.module)) continue
    const row = document.importNode(tr, true)
    tbody.append(row)
    rows.set(row.dataset.module, row)
  }
  more.remove()
}

/**
 * Runs `fn` once the page's first frame is on screen, so that what the script draws and asks for
 * never holds that frame back; at once in a hidden tab, which paints no frames. "On screen" is
 * the browser's paint timing entry, reported once the frame is presented: a task right after the
 * first animation frame (what this waited for before) runs while that frame is still being
 * rastered and presented, and on a machine of few cores its work (the graph, the other rows,
 * about 20 ms at 200 modules) took the CPU from it. A browser without paint timing, or one whose
 * entry does not come within a second, runs `fn` then.
 */
function afterFirstPaint(fn) {
  if (document.visibilityState === 'hidden') return fn()
  let done = false
  const go = () => {
    if (done) return
    done = true
    observer?.disconnect()
    clearTimeout(fallback)
    setTimeout(fn, 0)
  }
  let observer
  let fallback
  if (PerformanceObserver.supportedEntryTypes?.includes('paint')) {
    observer = new PerformanceObserver(go)
    observer.observe({ type: 'paint', buffered: true })
    fallback = setTimeout(go, 1000)
  } else requestAnimationFrame(() => setTimeout(go, 0))
}

/**
 * The filter, the deploy form and the dialogs: in <template>s of the page until now, put in
 * where they stand (console/index.html says why).
 */
function addControls() {
  for (const id of ['tools', 'zoom', 'dialogs']) $(id)?.replaceWith($(id).content)
  $('zoom-in').addEventListener('click', () => zoom(0.8))
  $('zoom-out').addEventListener('click', () => zoom(1.25))
  $('zoom-fit').addEventListener('click', fit)
  // every row's buttons (the listener sends none: they work through this script only)
  for (const tr of rows.values()) {
    const td = cell(tr, 10)
    if (td.firstElementChild) continue
    addActions(td)
    showRegistration(tr, td.dataset.registered !== 'false')
  }
  $('filter').addEventListener('input', (e) => {
    state.filter = e.target.value.trim()
    applyFilter()
  })
  $('deploy-form').addEventListener('submit', (e) => {
    deploy(e).catch((err) => notice(String(err.message ?? err), true))
  })
}

function start() {
  const server = document.documentElement.dataset.view === 'server'
  state.rendered = server
  wireTable()
  wireGraph()
  afterFirstPaint(() => {
    // rows far below the first screen were held back from layout until now (style.css)
    document.documentElement.dataset.painted = ''
    addMoreRows()
    addControls()
    // the graph as the server drew it (in a <noscript>: text, until drawn here)
    const drawn = $('graph').querySelector('noscript')
    if (drawn) drawGraph(drawn.textContent)
    // drawn by the server: the page shows every module and the graph (html[data-rendered], read by tests)
    if (server) document.documentElement.dataset.rendered = 'server'
    loadRecent().catch(() => {})
    refresh()
      .catch((err) => notice(`cannot load modules: ${err.message}`, true))
      .finally(() => {
        follow()
        poll()
      })
  })
}

start()
