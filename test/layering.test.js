import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { fileURLToPath } from 'node:url'

// The layers of src/ (docs/architecture.md). A part is a folder under src/, or a file at its
// root (cli.ts belongs to cli/, whose entry it is). A part imports only parts of a lower level,
// through the edges below; the few that do not are listed with their reason.

const src = fileURLToPath(new URL('../src/', import.meta.url))

/** Higher imports lower. */
const levels = {
  cli: 11,
  index: 11,
  cluster: 10,
  host: 9,
  reload: 8,
  isolate: 8,
  upgrade: 8,
  http: 7,
  supervise: 6,
  runtime: 5,
  graph: 4,
  loader: 4,
  bundle: 3,
  'process-exit': 3,
  logger: 2,
  config: 1,
  errors: 0,
  'fault-point': 0,
  'pretty-log': 0,
  'process-alive': 0,
  'monotonic-clock': 0,
  'strongly-connected': 0,
}

/**
 * Every import between two parts the code has (the table was made from it). A new one is a
 * decision: add it here, downwards, or pass what is needed in through an interface the lower
 * part owns (as reload/reload-host.ts, http/admin-host.ts and upgrade/upgrade-host.ts do).
 */
// biome-ignore format: one line per part reads as a table
const allowed = {
  cli: ['bundle', 'cluster', 'config', 'errors', 'host', 'http', 'loader', 'logger', 'process-exit', 'reload', 'supervise', 'upgrade'],
  index: ['runtime'],
  // a worker process runs a whole host (worker-process.ts); the pool is the supervisor's ModuleRuntime
  cluster: ['bundle', 'config', 'errors', 'host', 'http', 'loader', 'logger', 'monotonic-clock', 'reload', 'runtime', 'supervise'],
  // host -> upgrade is type-only: `implements UpgradeHost`
  host: ['bundle', 'config', 'errors', 'graph', 'http', 'isolate', 'loader', 'logger', 'reload', 'runtime', 'supervise', 'upgrade'],
  // a module in a thread of its own: the thread runs the loader and Generation; the serving thread's
  // proxy answers with http's error replies
  isolate: ['bundle', 'config', 'errors', 'http', 'loader', 'logger', 'runtime', 'supervise'],
  // sideways: reload -> loader, a reload validates in memory with the loader's checks (syntax,
  // addons) before it locks, and reads a changed bundle through the loader's reader thread;
  // reload -> supervise, crash actions implement the supervisor's SupervisedHost (a restart is a
  // forced reload)
  reload: ['bundle', 'config', 'errors', 'fault-point', 'graph', 'loader', 'logger', 'process-alive', 'runtime', 'supervise'],
  // sideways: upgrade -> http, the "listening on" line uses http/listener.ts's URL format
  upgrade: ['config', 'errors', 'http', 'logger', 'process-alive', 'process-exit', 'supervise'],
  // http -> reload goes up, type-only (typeOnly below)
  http: ['bundle', 'config', 'errors', 'logger', 'monotonic-clock', 'reload', 'runtime'],
  supervise: ['config', 'errors', 'logger', 'pretty-log', 'runtime'],
  // sideways: runtime -> loader, a generation loads its module's code through the loader
  runtime: ['bundle', 'errors', 'loader'],
  graph: ['bundle', 'errors', 'strongly-connected'],
  loader: ['bundle', 'errors', 'process-alive', 'strongly-connected'],
  bundle: ['config', 'errors', 'fault-point'],
  'process-exit': ['errors', 'logger'],
  logger: ['config', 'pretty-log'],
  config: ['errors'],
  errors: [],
  'fault-point': [],
  'pretty-log': [],
  'process-alive': [],
  'monotonic-clock': [],
  'strongly-connected': [],
}

/**
 * Edges that go up, allowed as `import type` only (no code of the higher part runs below it).
 * http -> reload: the dispatch table holds a reload's RequestGate, metrics and the admin API
 * take ReloadEvents, ReloadResult and the runtime's WorkerView; reload/ owns those shapes, and
 * never imports http/.
 */
const typeOnly = new Set(['http -> reload'])

function sourceFiles(dir) {
  return readdirSync(dir, { recursive: true })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f))
    .sort()
}

function partOf(file) {
  const [first, ...rest] = path.relative(src, file).split(path.sep)
  if (rest.length > 0) return first
  const stem = first.replace(/\.ts$/, '')
  return stem === 'cli' ? 'cli' : stem
}

/**
 * The code with comments and the text of template literals blanked (a template holding an
 * `import` line, like cli/init-templates.ts's, is not an import); quoted strings stay, since
 * import specifiers are quoted. Enough of a lexer for this code base, regular expressions included.
 */
function codeOnly(text) {
  let out = ''
  let i = 0
  let last = '' // the last significant character of code
  let depth = 0 // open braces in code
  const closers = [] // for each open `${` of a template: the depth its `}` closes
  const blank = (s) => s.replace(/[^\n]/g, ' ')
  // from just after a template's backquote or `}` to its end or its next `${`
  const templateText = () => {
    const start = i
    while (i < text.length) {
      if (text[i] === '\\') i += 2
      else if (text[i] === '`') {
        out += `${blank(text.slice(start, i))}\``
        i++
        last = '`'
        return
      } else if (text[i] === '$' && text[i + 1] === '{') {
        out += `${blank(text.slice(start, i))}\${`
        i += 2
        closers.push(depth)
        depth++
        last = '{'
        return
      } else i++
    }
    out += blank(text.slice(start))
    i = text.length
  }
  while (i < text.length) {
    const c = text[i]
    const next = text[i + 1]
    if (c === '/' && (next === '/' || next === '*')) {
      const end = next === '/' ? text.indexOf('\n', i) : text.indexOf('*/', i + 2) + 2
      const stop = end === -1 || end === 1 ? text.length : end
      out += blank(text.slice(i, stop))
      i = stop
    } else if (c === "'" || c === '"') {
      const start = i
      i++
      while (i < text.length && text[i] !== c && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1
      i++
      out += text.slice(start, i)
      last = c
    } else if (c === '`') {
      out += c
      i++
      templateText()
    } else if (
      c === '/' &&
      (last === '' ||
        /[(,=:[!&|?{};+\-*%<>~^]/.test(last) ||
        /\b(return|typeof|of|in)\s*$/.test(out.slice(-12)))
    ) {
      // a regular expression literal, not a division
      const start = i
      let inClass = false
      i++
      while (i < text.length && text[i] !== '\n' && (inClass || text[i] !== '/')) {
        if (text[i] === '\\') i++
        else if (text[i] === '[') inClass = true
        else if (text[i] === ']') inClass = false
        i++
      }
      i++
      out += blank(text.slice(start, i))
      last = '/'
    } else if (c === '}' && closers.length > 0 && closers.at(-1) === depth - 1) {
      closers.pop()
      depth--
      out += c
      i++
      templateText()
    } else {
      if (c === '{') depth++
      else if (c === '}') depth--
      out += c
      if (!/\s/.test(c)) last = c
      i++
    }
  }
  return out
}

const importPattern =
  /(?:^|[;\n}])\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*(['"])([^'"]+)\4|(?:^|[;\n}])\s*import\s*(['"])([^'"]+)\6|\bimport\s*\(\s*(['"])([^'"]+)\8\s*\)/g

/** The relative imports of a file: `{ spec, typeOnly }` (`import type`, or every name `type`). */
function importsOf(text) {
  const found = []
  for (const m of codeOnly(text).matchAll(importPattern)) {
    const spec = m[5] ?? m[7] ?? m[9]
    if (!spec.startsWith('.')) continue
    let typeOnly = false
    if (m[5] !== undefined) {
      const clause = m[3]
      const names = /^\{([^}]*)\}$/.exec(clause.trim())?.[1]
      typeOnly =
        m[2] !== undefined ||
        (names !== undefined &&
          names.split(',').filter((n) => n.trim() !== '').length > 0 &&
          names.split(',').every((n) => n.trim() === '' || /^type\s/.test(n.trim())))
    }
    found.push({ spec, typeOnly })
  }
  return found
}

let scanned

/** Part-level edges: `from -> to` => the imports that make it. */
function partEdges() {
  scanned ??= scan()
  return scanned
}

function scan() {
  const edges = new Map()
  for (const file of sourceFiles(src)) {
    for (const { spec, typeOnly } of importsOf(readFileSync(file, 'utf8'))) {
      const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts')
      const from = partOf(file)
      const to = partOf(target)
      if (from === to) continue
      const key = `${from} -> ${to}`
      if (!edges.has(key)) edges.set(key, [])
      edges.get(key).push({ file: path.relative(src, file), spec, typeOnly })
    }
  }
  return edges
}

/** A cycle of parts in `edges` (as a list of parts, first repeated last), or undefined. */
function findCycle(edges) {
  const next = new Map()
  for (const key of edges.keys()) {
    const [from, to] = key.split(' -> ')
    if (!next.has(from)) next.set(from, [])
    next.get(from).push(to)
  }
  const state = new Map() // 1: on the path, 2: done
  const pathNow = []
  const visit = (part) => {
    state.set(part, 1)
    pathNow.push(part)
    for (const to of next.get(part) ?? []) {
      if (state.get(to) === 1) return [...pathNow.slice(pathNow.indexOf(to)), to]
      if (!state.has(to)) {
        const cycle = visit(to)
        if (cycle) return cycle
      }
    }
    pathNow.pop()
    state.set(part, 2)
    return undefined
  }
  for (const part of [...next.keys()].sort()) {
    if (state.has(part)) continue
    const cycle = visit(part)
    if (cycle) return cycle
  }
  return undefined
}

const describe = (imports) => imports.map((i) => `${i.file} imports ${i.spec}`).join('; ')

test('the import scanner finds imports, type-only ones, and nothing in comments or templates', () => {
  const found = importsOf(
    [
      "import type { A } from './a.js'",
      "import { type B, type C } from './b.js'",
      "import { type D, e } from './d.js'",
      "export * from './f.js'",
      "export type { G } from './g.js'",
      "import './h.js'",
      "const i = await import('./i.js')",
      "// import { j } from './j.js'",
      "/* import { k } from './k.js' */",
      // a placeholder, then template text again
      "const l = `import { l } from './l.js'\n$" + "{x}import m from './m.js'`",
      "const n = /['`]/.test(s) ? 1 : 2",
      "import { o } from 'node:o'",
      "import {\n  p,\n  type P,\n} from './p.js'",
    ].join('\n'),
  )
  assert.deepEqual(found, [
    { spec: './a.js', typeOnly: true },
    { spec: './b.js', typeOnly: true },
    { spec: './d.js', typeOnly: false },
    { spec: './f.js', typeOnly: false },
    { spec: './g.js', typeOnly: true },
    { spec: './h.js', typeOnly: false },
    { spec: './i.js', typeOnly: false },
    { spec: './p.js', typeOnly: false },
  ])
  // and on the real sources: a scanner that finds nothing would pass every check below
  const edges = partEdges()
  assert.ok(sourceFiles(src).length > 100)
  assert.ok(edges.has('host -> reload'), 'host.ts imports reload/')
  assert.ok(edges.has('cli -> host'), 'cli/start.ts imports host.ts')
  assert.ok(!edges.has('cli -> index'), "cli/init-templates.ts's template is not an import")
})

test('every part is in the layers table', () => {
  const parts = new Set(sourceFiles(src).map(partOf))
  for (const part of parts)
    assert.ok(part in levels, `src part "${part}" has no level in test/layering.test.js`)
  for (const part of Object.keys(allowed)) assert.ok(part in levels, `"${part}" has no level`)
})

test('the allowed edges go down, or up as type-only imports with a reason', () => {
  for (const [from, tos] of Object.entries(allowed)) {
    for (const to of tos) {
      const key = `${from} -> ${to}`
      if (typeOnly.has(key)) continue
      assert.ok(levels[from] > levels[to], `${key} goes from level ${levels[from]} to ${levels[to]}`)
    }
  }
})

test('no part imports what the table does not allow', () => {
  const refused = []
  for (const [key, imports] of partEdges()) {
    const [from, to] = key.split(' -> ')
    if (!(allowed[from] ?? []).includes(to)) {
      refused.push(`${key} (${describe(imports)})`)
      continue
    }
    if (typeOnly.has(key)) {
      const values = imports.filter((i) => !i.typeOnly)
      if (values.length > 0) refused.push(`${key} must be type-only (${describe(values)})`)
    }
  }
  assert.deepEqual(refused, [], `imports against docs/architecture.md's layers:\n${refused.join('\n')}`)
})

test('no import cycle between parts, type-only imports included', () => {
  const edges = partEdges()
  const cycle = findCycle(edges)
  const detail = cycle
    ?.slice(1)
    .map((to, i) => `${cycle[i]} -> ${to}: ${describe(edges.get(`${cycle[i]} -> ${to}`))}`)
  assert.equal(cycle, undefined, `import cycle ${cycle?.join(' -> ')}:\n${detail?.join('\n')}`)
  // the check itself: a cycle made of two real edges is found
  const [one] = edges.keys()
  const [a, b] = one.split(' -> ')
  assert.deepEqual(
    findCycle(
      new Map([
        [one, []],
        [`${b} -> ${a}`, []],
      ]),
    ),
    [a, b, a],
  )
})
