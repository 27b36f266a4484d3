import { createRequire } from 'node:module'
import path from 'node:path'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import type { Bundle } from '../bundle/open-bundle.js'
import { isNyalaError, type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { stronglyConnected } from '../strongly-connected.js'
import { codeCacheKeyOf, hasCodeCache } from './code-cache.js'
import {
  type CacheRequest,
  type CompiledModule,
  compiledKeyName,
  compileModule,
  heldModule,
  transformAhead,
  transformsOf,
} from './compile-module.js'
import { namespaceOf } from './esm-interop.js'
import { moduleKindOf } from './module-kind.js'
import { codeName, compiledAs, entryAt, moduleLocation, urlOf } from './module-location.js'
import { loadAddon } from './native-addon.js'
import {
  type Resolved,
  ResolveFailure,
  type ResolveIndex,
  type ResolveMode,
  resolveIndexOf,
  resolveRequest,
} from './resolve.js'
import { ownScripts, parseJson } from './syntax-check.js'

export type { CompiledModule } from './compile-module.js'

/** The CommonJS `module` object module code sees. */
interface CjsModule {
  exports: unknown
  readonly id: string
  readonly filename: string
  loaded: boolean
  /**
   * The module that first required it; for the main file (and a package file run ahead of it,
   * loadModuleCodeInSlices) the host's stand-in: never absent, so the old "run on my own" test
   * `if (!module.parent) app.listen(...)` does not start a second server inside the host. Node
   * gives a truthy parent too to code loaded with `createRequire(...)` from a host.
   */
  parent?: CjsModule | undefined
  children?: CjsModule[]
  require?: ((request: string) => unknown) | undefined
  /** Its exports may be an ES module namespace (see CompiledModule). */
  namespace?: boolean
}

export interface ModuleCode {
  /** The main file's `module.exports`. */
  readonly exports: unknown
  /** The entries that were evaluated, in load order. */
  readonly loaded: readonly string[]
  /** Which bundle entries each entry required, in the order it first required them. */
  readonly requires: ReadonlyMap<string, readonly string[]>
  /** CommonJS scripts compiled from their source: what code caches can be made of (`BundleReader.makeCodeCaches`). */
  readonly uncached: readonly string[]
  /** The wrappers of the CommonJS scripts loaded, by code cache key: what the generation holds (held-functions.ts). */
  readonly functions: ReadonlyMap<string, CompiledModule>
}

/** The code cache key of one entry (code-cache.ts), when the reader thread gave its digest. */
const cacheKeyOf = (bundle: Bundle, entry: string, name = compiledAs(bundle, entry)) =>
  codeCacheKeyOf(bundle, entry, compiledKeyName(name))

/** One entry compiled for a load: a running generation's wrapper if it has one (not even decoded), else compiled. */
function compileEntry(bundle: Bundle, index: ResolveIndex, entry: string): CompiledModule {
  const name = compiledAs(bundle, entry)
  const cache: CacheRequest = { key: cacheKeyOf(bundle, entry, name) }
  return (
    heldModule(index, entry, cache.key) ??
    compileModule(bundle.file, index, entry, index.readText(entry), name.file, cache, name.shown)
  )
}

const hostRequire = createRequire(import.meta.url)

export { ownScripts } from './syntax-check.js'

const isPackageFile = (entry: string) => entry.startsWith('node_modules/') || entry.includes('/node_modules/')

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
  const index = resolveIndexOf(bundle.files)
  for (const entry of ownScripts(bundle)) {
    const source = index.readText(entry)
    if (entry.endsWith('.json')) parseJson(bundle.file, entry, source)
    else compileModule(bundle.file, index, entry, source, codeName(bundle, entry))
  }
}

/**
 * Transforms ahead, off this thread, the bundle's own ES module and TypeScript
 * files (and those of `entries`), so that `checkSyntax` and loading find them
 * in the transform cache. Resolves with the results.
 */
export function transformBundleAhead(bundle: Bundle, entries: Iterable<string> = []) {
  const index = resolveIndexOf(bundle.files)
  // a file with a code cache is plain CommonJS (only those get one): not decoded and scanned again
  const plain = (entry: string) => {
    const key = cacheKeyOf(bundle, entry)
    return key !== undefined && hasCodeCache(key)
  }
  return transformAhead(transformsOf(index, new Set([...ownScripts(bundle), ...entries]), plain))
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
  const list = [...entries]
  // ES modules and TypeScript: transformed in esbuild's process while this thread serves
  await transformBundleAhead(bundle, list)
  const index = resolveIndexOf(bundle.files)
  let sliceStart = performance.now()
  for (const entry of list) {
    if (!bundle.files.has(entry) || entry.endsWith('.json') || entry.endsWith('.node')) continue
    try {
      compiled.set(entry, compileEntry(bundle, index, entry))
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
 * Runs a bundle's code from memory, starting at its main file (ES modules
 * and TypeScript transformed to CommonJS first: docs/modules.md).
 *
 * Each call builds a fresh module cache, so every generation gets its own
 * copies and drops them all when it is no longer referenced. Code is compiled
 * with `vm.compileFunction` rather than `import()`: ES modules are never
 * unloaded, which would grow the heap with every reload.
 *
 * `require` and `import` resolve as Node does (resolve.ts): relative paths
 * inside the bundle, Node built-ins, the bundle's own `node_modules/`, then the
 * host's packages. `__dirname` and `__filename` name the file's copy in the
 * bundle's cache directory when a generation placed it there (file-cache.ts);
 * a `.node` file is loaded from there (native-addon.ts). `compiled` holds
 * entries compiled ahead (`precompile`).
 */
export function loadModuleCode(
  bundle: Bundle,
  compiled: ReadonlyMap<string, CompiledModule> = new Map(),
): ModuleCode {
  const loader = createLoader(bundle, compiled)
  const exports = loader.load(bundle.manifest.main)
  return codeOf(loader, exports)
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
  return codeOf(loader, exports)
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

/** Entries on a require cycle (a strongly connected component of more than one, or a self-require). */
function cycleMembers(requires: ReadonlyMap<string, readonly string[]>): Set<string> {
  const edges = (entry: string) => requires.get(entry) ?? []
  const members = new Set<string>()
  for (const scc of stronglyConnected(requires.keys(), edges)) {
    if (scc.length > 1 || edges(scc[0]!).includes(scc[0]!)) for (const e of scc) members.add(e)
  }
  return members
}

/** The host's error behind each error a failed `require` or `import` threw to module code. */
const requireFailures = new WeakMap<object, NyalaError>()

/**
 * What module code gets from a `require` or `import` that finds nothing: an error with Node's
 * code (`MODULE_NOT_FOUND` / `ERR_MODULE_NOT_FOUND`, or the package map's own:
 * `ERR_PACKAGE_PATH_NOT_EXPORTED`, `ERR_PACKAGE_IMPORT_NOT_DEFINED`, ...), so that code probing
 * for an optional dependency (`catch (e) { if (e.code !== 'MODULE_NOT_FOUND') throw e }`) goes on
 * as under Node. Not caught, it is reported as the host's NYALA_ERR_MODULE_REQUIRE, which carries
 * the same message.
 */
function notFound(failure: NyalaError, mode: ResolveMode, nodeCode: string | undefined): Error {
  const code = nodeCode ?? (mode === 'import' ? 'ERR_MODULE_NOT_FOUND' : 'MODULE_NOT_FOUND')
  const err = Object.assign(new Error(failure.message), { code, nyalaCode: failure.code })
  requireFailures.set(err, failure)
  return err
}

/** The module cache and `require` of one generation's code. */
function createLoader(bundle: Bundle, compiled: ReadonlyMap<string, CompiledModule>) {
  const cache = new Map<string, CjsModule>()
  const loaded: string[] = []
  const uncached: string[] = []
  // an entry run again (taken out of require.cache, then required) is recorded once
  const recorded = new Set<string>()
  const functions = new Map<string, CompiledModule>()
  const requires = new Map<string, string[]>()
  const label = bundle.file
  const index = resolveIndexOf(bundle.files)

  // what the main file (and anything loaded ahead of it) sees as `module.parent`
  const host: CjsModule = {
    exports: {},
    id: '[nyala host]',
    filename: '[nyala host]',
    loaded: true,
    children: [],
  }

  /**
   * `require.cache`, as in Node an object of the modules this generation has loaded by file name
   * (its entry's place on disk), over the loader's own cache: `delete require.cache[file]` makes
   * the next require of that file run it again (import-fresh, cosmiconfig, decache do this).
   * Shared by every file of the generation, nothing of another generation's.
   */
  const requireCache = new Proxy(Object.create(null) as Record<string, CjsModule>, {
    get: (_target, key) => (typeof key === 'string' ? cachedAt(key) : undefined),
    has: (_target, key) => typeof key === 'string' && cachedAt(key) !== undefined,
    deleteProperty: (_target, key) => {
      put(key, undefined)
      return true
    },
    // a module put in by hand (mock-require and the like) is what the next require of that file
    // gets, as in Node; a file outside the bundle has no place here and is ignored
    set: (_target, key, value) => {
      put(key, value)
      return true
    },
    // it cannot be frozen: its keys are the loader's, which a frozen target would contradict
    preventExtensions: () => false,
    // a property that cannot be configured would have to be on the (empty) target: refused
    defineProperty: (_target, key, descriptor) => {
      if (descriptor.configurable === false) return false
      put(key, descriptor.value)
      return true
    },
    ownKeys: () => [...cache.keys()].map((entry) => moduleLocation(bundle, entry).filename),
    getOwnPropertyDescriptor: (_target, key) => {
      const mod = typeof key === 'string' ? cachedAt(key) : undefined
      return mod && { value: mod, writable: true, enumerable: true, configurable: true }
    },
  })
  /** `require.cache[file] = value`: a module object is what the next require gets; `undefined` runs the file again. */
  const put = (key: string | symbol, value: unknown): void => {
    const entry = typeof key === 'string' ? entryAt(bundle, key) : undefined
    if (entry === undefined) return
    if (typeof value === 'object' && value !== null) cache.set(entry, value as CjsModule)
    else if (value === undefined) cache.delete(entry)
  }
  const cachedAt = (file: string): CjsModule | undefined => {
    const entry = entryAt(bundle, file)
    return entry === undefined ? undefined : cache.get(entry)
  }

  const resolveFrom = (from: string, request: string, mode: ResolveMode): Resolved => {
    try {
      if (path.isAbsolute(request) || request.startsWith('file:')) {
        // a path built from __dirname names the bundle's cache directory: the entry there
        const entry = entryAt(bundle, request)
        if (entry === undefined) {
          throw new ResolveFailure("absolute paths are allowed only into the bundle's own cache directory")
        }
        return resolveRequest(index, '[root]', `./${entry.replace(/\[folder\]$/, '')}`, mode)
      }
      return resolveRequest(index, from, request, mode)
    } catch (err) {
      if (!(err instanceof ResolveFailure)) throw err
      throw notFound(
        nyalaError('NYALA_ERR_MODULE_REQUIRE', { bundle: label, from, request, reason: err.message }),
        mode,
        err.nodeCode,
      )
    }
  }

  const load = (entry: string): unknown => loadModule(entry, host).exports

  const loadModule = (entry: string, parent: CjsModule): CjsModule => {
    const cached = cache.get(entry)
    if (cached) return cached
    const { filename, dirname } = moduleLocation(bundle, entry)
    if (entry.endsWith('.node')) {
      const addon: CjsModule = {
        exports: loadAddon(bundle, entry, filename),
        id: filename,
        filename,
        loaded: true,
      }
      cache.set(entry, addon)
      return addon
    }
    // `id` is the file name, as Node gives it to every module but the process's main
    const mod: CjsModule = { exports: {}, id: filename, filename, loaded: false, parent, children: [] }
    parent.children?.push(mod)
    cache.set(entry, mod)
    if (moduleKindOf(index, entry).format === 'json') {
      try {
        mod.exports = parseJson(label, entry, index.readText(entry))
      } catch (err) {
        cache.delete(entry)
        throw err
      }
      mod.loaded = true
      return mod
    }
    let code: CompiledModule
    try {
      code = compiled.get(entry) ?? compileEntry(bundle, index, entry)
    } catch (err) {
      cache.delete(entry)
      throw err
    }
    mod.namespace = code.namespace
    const localRequire = requireOf(entry)
    mod.require = localRequire
    if (!recorded.has(entry)) {
      recorded.add(entry)
      loaded.push(entry)
      if (code.fromCache === false) uncached.push(entry)
    }
    if (code.key !== undefined) functions.set(code.key, code)
    try {
      if (!code.transformed) code.fn.call(mod.exports, mod.exports, localRequire, mod, filename, dirname)
      else {
        // esbuild writes every import as `require(...)`: those resolve as imports, with namespaces
        const importRequire = (request: string) => requireFrom(entry, request, 'import')
        const location = { filename, dirname }
        const importMeta = {
          url: urlOf(location),
          filename,
          dirname,
          resolve: (request: string) => {
            const target = resolveFrom(entry, request, 'import')
            if (target.kind === 'entry') return urlOf(moduleLocation(bundle, target.entry))
            return target.kind === 'builtin' ? target.id : urlOf({ filename: target.file, dirname: '' })
          },
        }
        const self = code.esm ? undefined : mod.exports
        code.fn.call(self, mod.exports, importRequire, mod, filename, dirname, localRequire, importMeta)
      }
    } catch (err) {
      cache.delete(entry)
      // a require that found nothing and was not caught: said by its own code to the host
      const unresolved = typeof err === 'object' && err !== null ? requireFailures.get(err) : undefined
      if (unresolved) throw unresolved
      if (isNyalaError(err)) throw err
      throw nyalaError('NYALA_ERR_MODULE_EVAL', { bundle: label, entry, reason: reasonOf(err) }, err)
    }
    mod.loaded = true
    return mod
  }

  /**
   * The CommonJS `require` of an entry. `require.main` is left undefined, as Node leaves it in a
   * process started from an ES module (the host's CLI is one): `require.main === module` is false
   * in module code, which is not the process's main.
   */
  const requireOf = (entry: string) =>
    Object.assign((request: string) => requireFrom(entry, request, 'require'), {
      resolve: (request: string) => {
        const target = resolveFrom(entry, request, 'require')
        return target.kind === 'entry' ? moduleLocation(bundle, target.entry).filename : hostId(target)
      },
      cache: requireCache,
    })

  // `createRequire(import.meta.url)` (ES modules that require) must give the bundle's require
  let moduleShim: unknown
  const moduleBuiltin = () => {
    moduleShim ??= {
      ...(hostRequire('node:module') as object),
      createRequire: (at: string | URL) => {
        const entry = entryAt(bundle, at)
        return entry === undefined ? createRequire(at) : requireOf(entry)
      },
    }
    return moduleShim
  }

  const requireFrom = (from: string, request: string, mode: ResolveMode): unknown => {
    const target = resolveFrom(from, request, mode)
    if (target.kind !== 'entry') {
      const exports =
        target.kind === 'builtin' && (target.id === 'module' || target.id === 'node:module')
          ? moduleBuiltin()
          : hostRequire(hostId(target))
      return mode === 'import' ? namespaceOf(exports, false) : exports
    }
    let edges = requires.get(from)
    if (!edges) {
      edges = []
      requires.set(from, edges)
    }
    if (!edges.includes(target.entry)) edges.push(target.entry)
    const parent = cache.get(from) ?? host
    const mod = loadModule(target.entry, parent)
    // a module already loaded is still a child of each module that requires it, as in Node
    if (parent.children && !parent.children.includes(mod)) parent.children.push(mod)
    return mode === 'import' ? namespaceOf(mod.exports, mod.namespace === true, mod.loaded) : mod.exports
  }

  return { load, loaded, requires, uncached, functions }
}

/** What a load made, for the generation (`exports`: its main file's). */
function codeOf(loader: ReturnType<typeof createLoader>, exports: unknown): ModuleCode {
  const { loaded, requires, uncached, functions } = loader
  return { exports, loaded, requires, uncached, functions }
}

const hostId = (target: Exclude<Resolved, { kind: 'entry' }>) =>
  target.kind === 'builtin' ? target.id : target.file
