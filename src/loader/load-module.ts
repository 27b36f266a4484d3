import { createRequire, isBuiltin } from 'node:module'
import path from 'node:path'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import vm from 'node:vm'
import type { Bundle } from '../bundle/open-bundle.js'
import { isNyalaError, type NyalaError, nyalaError, reasonOf } from '../errors.js'

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
}

const hostRequire = createRequire(import.meta.url)
const wrapperParams = ['exports', 'require', 'module', '__filename', '__dirname']
const extensions = ['', '.js', '.cjs', '.json']
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
    } else compileEntry(bundle.file, entry, source, `${bundle.file}/${entry}`)
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
      compiled.set(
        entry,
        compileEntry(bundle.file, entry, content.toString('utf8'), `${bundle.file}/${entry}`),
      )
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
 * `compiled` holds entries compiled ahead (`precompile`).
 */
export function loadModuleCode(
  bundle: Bundle,
  compiled: ReadonlyMap<string, CompiledModule> = new Map(),
): ModuleCode {
  const cache = new Map<string, CjsModule>()
  const loaded: string[] = []
  const label = bundle.file

  const fileOf = (entry: string) => `${bundle.file}/${entry}`

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
    if (request.startsWith('/') || /^[A-Za-z]:/.test(request)) throw fail('absolute paths are not allowed')
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
    const source = bundle.files.get(entry)!.toString('utf8')
    const filename = fileOf(entry)
    const mod: CjsModule = { exports: {}, id: entry, filename, loaded: false }
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
        return typeof target === 'string' ? fileOf(target) : request
      },
    })
    loaded.push(entry)
    try {
      fn.call(mod.exports, mod.exports, localRequire, mod, filename, posix.dirname(filename))
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
    return typeof target === 'string' ? load(target) : target.host
  }

  const exports = load(bundle.manifest.main)
  return { exports, loaded }
}
