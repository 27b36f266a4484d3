import { createRequire, isBuiltin } from 'node:module'
import path from 'node:path'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import vm from 'node:vm'
import type { Bundle } from '../bundle/open-bundle.js'
import { isNyalaError, type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { stronglyConnected } from '../strongly-connected.js'
import { codeName, entryAt, moduleLocation } from './module-location.js'
import { loadAddon } from './native-addon.js'

/** The CommonJS `module` object module code sees. */
interface CjsModule {
  exports: unknown
  readonly id: string
  readonly filename: string
  loaded: boolean
}

export interface ModuleCode {
  /** The main file's `module.exports`. */
  readonly exports: unknown
  /** The entries that were evaluated, in load order. */
  readonly loaded: readonly string[]
  /** Which bundle entries each entry required, in the order it first required them. */
  readonly requires: ReadonlyMap<string, readonly string[]>
}

const hostRequire = createRequire(import.meta.url)
const wrapperParams = ['exports', 'require', 'module', '__filename', '__dirname']
const extensions = ['', '.js', '.cjs', '.json', '.node']
const posix = path.posix

export type CompiledModule = (...args: unknown[]) => unknown

/** Compiles one CommonJS file; a syntax error names the bundle and `entry:line`. */
function compileEntry(label: string, entry: string, source: string, filename: string): CompiledModule {
  try {
    return vm.compileFunction(source, wrapperParams, { filename }) as CompiledModule
  } catch (err) {
    // V8 puts `<filename>:<line>` as the first line of a SyntaxError's stack
    const line = /:(\d+)\n/.exec((err as Error).stack ?? '')?.[1]
    const location = line ? `${entry}:${line}` : entry
    throw nyalaError('NYALA_ERR_MODULE_SYNTAX', { bundle: label, location, reason: reasonOf(err) }, err)
  }
}

/** Verdicts of syntax checks made elsewhere (the bundle reader's worker thread), by bundle. */
const verdicts = new WeakMap<Bundle, { error: NyalaError | undefined }>()

/** Records the verdict of a syntax check already made for `bundle`: `checkSyntax` then reports it without compiling. */
export function rememberSyntax(bundle: Bundle, error: NyalaError | undefined): void {
  verdicts.set(bundle, { error })
}

/**
 * Compiles every script of a bundle without running anything, so a reload can
 * refuse a syntax error before any generation is touched. The bundle's own
 * `node_modules/` is left to load time: packages there often carry files that
 * are never required. A bundle read by the bundle reader was checked on its
 * worker thread: its verdict is reported instead.
 */
export function checkSyntax(bundle: Bundle): void {
  const known = verdicts.get(bundle)
  if (known) {
    if (known.error) throw known.error
    return
  }
  for (const [entry, content] of bundle.files) {
    if (entry.startsWith('node_modules/') || entry.includes('/node_modules/')) continue
    if (entry.endsWith('.json')) {
      if (entry !== 'package.json' && !entry.endsWith('/package.json')) continue
    } else if (!entry.endsWith('.js') && !entry.endsWith('.cjs')) continue
    const source = content.toString('utf8')
    if (entry.endsWith('.json')) {
      try {
        JSON.parse(source)
      } catch (err) {
        throw nyalaError('NYALA_ERR_MODULE_SYNTAX', {
          bundle: bundle.file,
          location: entry,
          reason: reasonOf(err),
        })
      }
    } else compileEntry(bundle.file, entry, source, codeName(bundle, entry))
  }
}

/**
 * Compiles `entries` of a bundle ahead of `loadModuleCode`, at most about
 * `sliceMs` at a time with the event loop let through in between, so the one
 * synchronous block of loading is left with running the code. Which files a
 * load will require is only known by running it: a reload passes the files the
 * previous generation loaded. A file that does not compile is left out; the
 * load reports it where it reaches it.
 */
export async function precompile(
  bundle: Bundle,
  entries: Iterable<string>,
  sliceMs = 4,
): Promise<ReadonlyMap<string, CompiledModule>> {
  const compiled = new Map<string, CompiledModule>()
  let sliceStart = performance.now()
  for (const entry of entries) {
    const content = bundle.files.get(entry)
    if (!content || entry.endsWith('.json')) continue
    try {
      compiled.set(entry, compileEntry(bundle.file, entry, content.toString('utf8'), codeName(bundle, entry)))
    } catch {
      continue
    }
    if (performance.now() - sliceStart >= sliceMs) {
      await yieldToLoop()
      sliceStart = performance.now()
    }
  }
  return compiled
}

/**
 * Runs a bundle's CommonJS code from memory, starting at its main file.
 *
 * Each call builds a fresh module cache, so every generation gets its own
 * copies and drops them all when it is no longer referenced. Code is compiled
 * with `vm.compileFunction` rather than `import()`: ES modules are never
 * unloaded, which would grow the heap with every reload.
 *
 * `require` resolves, in order: relative paths and `.json` inside the bundle,
 * Node built-ins, the bundle's own `node_modules/`, then the host's packages.
 * `__dirname` and `__filename` name the file's copy in the bundle's cache
 * directory when a generation placed it there (file-cache.ts); a `.node`
 * file is loaded from there (native-addon.ts).
 * `compiled` holds entries compiled ahead (`precompile`).
 */
export function loadModuleCode(
  bundle: Bundle,
  compiled: ReadonlyMap<string, CompiledModule> = new Map(),
): ModuleCode {
  const loader = createLoader(bundle, compiled)
  const exports = loader.load(bundle.manifest.main)
  return { exports, loaded: loader.loaded, requires: loader.requires }
}

/**
 * `loadModuleCode` for a reload: the packages the previous generation loaded
 * from the bundle's `node_modules/` are run first, one file at a time,
 * dependencies before the files that require them (see `evaluationPlan`), at
 * most about `sliceMs` at a time with the event loop let through in between.
 * Running the main file then finds them in the module cache, so the one
 * synchronous block left is the module's own code. A file of the plan that
 * throws is left to the main file's load, which reports it where it reaches it.
 */
export async function loadModuleCodeInSlices(
  bundle: Bundle,
  compiled: ReadonlyMap<string, CompiledModule>,
  plan: readonly string[],
  sliceMs = 4,
): Promise<ModuleCode> {
  const loader = createLoader(bundle, compiled)
  let sliceStart = performance.now()
  for (const entry of plan) {
    if (!bundle.files.has(entry)) continue
    try {
      loader.load(entry)
    } catch {
      // reported by the main file's load if it needs the file
    }
    if (performance.now() - sliceStart >= sliceMs) {
      await yieldToLoop()
      sliceStart = performance.now()
    }
  }
  const exports = loader.load(bundle.manifest.main)
  return { exports, loaded: loader.loaded, requires: loader.requires }
}

/**
 * The order in which a reload may run a bundle's packages ahead of its main
 * file, from what the previous generation required: a depth-first walk from
 * the main file in the order files were first required (the order CommonJS
 * ran them), each file after the files it requires. Only files under
 * `node_modules/` are planned (a module's own files may depend on what their
 * parent did before requiring them), and no file of a require cycle: which
 * file of a cycle runs first decides what the others see half-built, so a
 * cycle is left to run in its own order when its parent requires it.
 */
export function evaluationPlan(main: string, requires: ReadonlyMap<string, readonly string[]>): string[] {
  const inCycle = cycleMembers(requires)
  const plan: string[] = []
  const seen = new Set<string>([main])
  // iterative post-order: deep dependency chains must not overflow the stack
  const stack: { entry: string; next: number }[] = [{ entry: main, next: 0 }]
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!
    const deps = requires.get(top.entry) ?? []
    if (top.next < deps.length) {
      const dep = deps[top.next++]!
      if (!seen.has(dep)) {
        seen.add(dep)
        stack.push({ entry: dep, next: 0 })
      }
      continue
    }
    stack.pop()
    const { entry } = top
    if (entry !== main && !inCycle.has(entry) && isPackageFile(entry)) plan.push(entry)
  }
  return plan
}

const isPackageFile = (entry: string) => entry.startsWith('node_modules/') || entry.includes('/node_modules/')

/** Entries on a require cycle (a strongly connected component of more than one, or a self-require). */
function cycleMembers(requires: ReadonlyMap<string, readonly string[]>): Set<string> {
  const edges = (entry: string) => requires.get(entry) ?? []
  const members = new Set<string>()
  for (const scc of stronglyConnected(requires.keys(), edges)) {
    if (scc.length > 1 || edges(scc[0]!).includes(scc[0]!)) for (const e of scc) members.add(e)
  }
  return members
}

/** The module cache and `require` of one generation's code. */
function createLoader(bundle: Bundle, compiled: ReadonlyMap<string, CompiledModule>) {
  const cache = new Map<string, CjsModule>()
  const loaded: string[] = []
  const requires = new Map<string, string[]>()
  const label = bundle.file

  const fileOf = (entry: string) => codeName(bundle, entry)

  const tryFile = (base: string): string | undefined => {
    for (const ext of extensions) {
      if (bundle.files.has(base + ext)) return base + ext
    }
    const pkg = bundle.files.get(`${base}/package.json`)
    if (pkg) {
      const main = (JSON.parse(pkg.toString('utf8')) as { main?: string }).main
      if (main) {
        const found = tryFile(posix.join(base, main))
        if (found) return found
      }
    }
    for (const index of ['index.js', 'index.cjs', 'index.json']) {
      if (bundle.files.has(`${base}/${index}`)) return `${base}/${index}`
    }
    return undefined
  }

  const resolveIn = (from: string, request: string): string | { host: unknown } => {
    const fail = (reason: string) =>
      nyalaError('NYALA_ERR_MODULE_REQUIRE', { bundle: label, from, request, reason })
    if (request.startsWith('./') || request.startsWith('../') || request === '.' || request === '..') {
      const target = posix.normalize(posix.join(posix.dirname(from), request))
      if (target.startsWith('..')) throw fail('the path leaves the bundle')
      const found = tryFile(target === '.' ? '' : target)
      if (!found) throw fail('no such file in the bundle')
      return found
    }
    if (path.isAbsolute(request) || /^[A-Za-z]:/.test(request)) {
      // a path built from __dirname names the bundle's cache directory: the entry there
      const entry = entryAt(bundle, request)
      const found = entry === undefined ? undefined : tryFile(entry)
      if (!found) throw fail("absolute paths are allowed only into the bundle's own cache directory")
      return found
    }
    if (isBuiltin(request)) return { host: hostRequire(request) }
    // the bundle's own node_modules, nearest first
    let dir = posix.dirname(from)
    for (;;) {
      const base = dir === '.' ? `node_modules/${request}` : `${dir}/node_modules/${request}`
      const found = tryFile(base)
      if (found) return found
      if (dir === '.') break
      dir = posix.dirname(dir)
    }
    try {
      return { host: hostRequire(request) }
    } catch (err) {
      throw fail(`not in the bundle and not a host package (${reasonOf(err)})`)
    }
  }

  const load = (entry: string): unknown => {
    const cached = cache.get(entry)
    if (cached) return cached.exports
    const location = moduleLocation(bundle, entry)
    if (entry.endsWith('.node')) {
      const exports = loadAddon(bundle, entry, location.filename)
      cache.set(entry, { exports, id: entry, filename: location.filename, loaded: true })
      return exports
    }
    const source = bundle.files.get(entry)!.toString('utf8')
    const filename = fileOf(entry)
    const mod: CjsModule = { exports: {}, id: entry, filename: location.filename, loaded: false }
    cache.set(entry, mod)
    if (entry.endsWith('.json')) {
      try {
        mod.exports = JSON.parse(source)
      } catch (err) {
        cache.delete(entry)
        throw nyalaError('NYALA_ERR_MODULE_SYNTAX', { bundle: label, location: entry, reason: reasonOf(err) })
      }
      mod.loaded = true
      return mod.exports
    }
    let fn: CompiledModule
    try {
      fn = compiled.get(entry) ?? compileEntry(label, entry, source, filename)
    } catch (err) {
      cache.delete(entry)
      throw err
    }
    const localRequire = Object.assign((request: string) => requireFrom(entry, request), {
      resolve: (request: string) => {
        const target = resolveIn(entry, request)
        return typeof target === 'string' ? moduleLocation(bundle, target).filename : request
      },
    })
    loaded.push(entry)
    try {
      fn.call(mod.exports, mod.exports, localRequire, mod, location.filename, location.dirname)
    } catch (err) {
      cache.delete(entry)
      if (isNyalaError(err)) throw err
      throw nyalaError('NYALA_ERR_MODULE_EVAL', { bundle: label, entry, reason: reasonOf(err) }, err)
    }
    mod.loaded = true
    return mod.exports
  }

  const requireFrom = (from: string, request: string): unknown => {
    const target = resolveIn(from, request)
    if (typeof target !== 'string') return target.host
    let edges = requires.get(from)
    if (!edges) {
      edges = []
      requires.set(from, edges)
    }
    if (!edges.includes(target)) edges.push(target)
    return load(target)
  }

  return { load, loaded, requires }
}
