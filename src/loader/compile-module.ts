import path from 'node:path'
import vm from 'node:vm'
import { nyalaError, reasonOf } from '../errors.js'
import { codeCacheFor, codeCacheStats, dropCodeCache } from './code-cache.js'
import { heldCode } from './held-functions.js'
import {
  cjsWithImport,
  detectedEsm,
  isEsmSyntaxError,
  type ModuleKind,
  mayImportDynamically,
  moduleKindOf,
} from './module-kind.js'
import type { CompiledName } from './module-location.js'
import type { ResolveIndex } from './resolve.js'
import { mappingUrlOf, placeOf, shippedMapOf } from './shipped-map.js'
import { registerSourceMap } from './source-maps.js'
import {
  strictPrefix,
  type Transformed,
  TransformFailure,
  type TransformInput,
  transformLater,
  transformNow,
  transformSourceName,
} from './transform.js'

/** One bundle entry compiled, ready to run with the loader's arguments. */
export interface CompiledModule {
  readonly fn: (...args: unknown[]) => unknown
  /** Run as an ES module (strict, `this` undefined at the top level). */
  readonly esm: boolean
  /**
   * ES module syntax made its exports (an ES module, or TypeScript written
   * with `import`/`export`): when they carry `__esModule` they are its
   * namespace, which an import gets as it is.
   */
  readonly namespace: boolean
  /** Transformed first: `fn` takes `__nyalaRequire` and `__nyalaImportMeta` after CommonJS's five. */
  readonly transformed: boolean
  /**
   * For a load that asked for a code cache (code-cache.ts): true when compiled
   * from one, false for a CommonJS script compiled from its source (one can be
   * made of it).
   */
  readonly fromCache?: boolean | undefined
  /** What a generation holds it by, when the load asked for a code cache (held-functions.ts). */
  readonly key?: string | undefined
}

const scriptParams = ['exports', 'require', 'module', '__filename', '__dirname']
/**
 * The same values in the same places, `__filename` and `__dirname` under names no module
 * declares: the transform turns free uses of them into these (transform.ts), so a file may
 * declare its own. `require` and `module` stay: esbuild's CommonJS output uses them, and renames
 * a file's own declarations of them.
 */
const transformedParams = [
  'exports',
  'require',
  'module',
  '__nyalaFilename',
  '__nyalaDirname',
  '__nyalaRequire',
  '__nyalaImportMeta',
]

/**
 * Compiles one CommonJS script; a syntax error names the bundle and `entry:line` (in the file as
 * written when `appended`, the `sourceURL` comment the host put after it, is given).
 */
export function compileScript(
  label: string,
  entry: string,
  source: string,
  filename: string,
  params = scriptParams,
  appended = '',
): CompiledModule['fn'] {
  try {
    return vm.compileFunction(source, params, { filename }) as CompiledModule['fn']
  } catch (err) {
    throw syntaxErrorOf(label, entry, source, filename, params, err, appended)
  }
}

/**
 * The syntax error of a compile, placed in the file as written: the `sourceURL` comment the host
 * `appended` after the code (`shownNameComment`) moves "Unexpected end of input" one line down,
 * so the code is compiled again without it (only when it did not compile).
 */
function syntaxErrorOf(
  label: string,
  entry: string,
  source: string,
  filename: string,
  params: string[],
  err: unknown,
  appended: string,
) {
  if (appended !== '' && source.endsWith(appended)) {
    try {
      vm.compileFunction(source.slice(0, -appended.length), params, { filename })
    } catch (own) {
      return syntaxError(label, entry, own)
    }
  }
  return syntaxError(label, entry, err)
}

/**
 * The comment after code compiled under another file name than the one its stack frames are to
 * show (module-location.ts, `compiledAs`): V8 shows the `sourceURL` in `err.stack`, and
 * `CallSite.getFileName()` still answers the file compiled under.
 */
export const shownNameComment = (shown: string | undefined): string =>
  shown === undefined ? '' : `\n//# sourceURL=${shown}`

/** The name a compile is keyed by (code caches, held wrappers): the file, and the name shown when it differs. */
export const compiledKeyName = (name: CompiledName): string =>
  name.shown === undefined ? name.file : `${name.file}\0${name.shown}`

/** A load's ask for a code cache (code-cache.ts): the file's cache key, when its digest is known. */
export interface CacheRequest {
  readonly key: string | undefined
}

/**
 * A V8 code cache of a CommonJS script as `compileScript` compiles it
 * (code-cache.ts), made on the bundle reader's thread; `undefined` when it does
 * not compile.
 */
export function produceCodeCache(source: string, name: CompiledName): Buffer | undefined {
  try {
    const fn = vm.compileFunction(source + shownNameComment(name.shown), scriptParams, {
      filename: name.file,
      produceCachedData: true,
    })
    return (fn as { cachedData?: Buffer }).cachedData
  } catch {
    return undefined
  }
}

/**
 * A CommonJS script compiled with the code cache held for `key`
 * (code-cache.ts); `undefined` when none is held. When V8 refuses the cache it
 * compiles from the source: the function is as good, and the cache is dropped.
 */
function compileFromCache(
  label: string,
  entry: string,
  source: string,
  filename: string,
  key: string,
  appended: string,
): { fn: CompiledModule['fn']; fromCache: boolean } | undefined {
  const cachedData = codeCacheFor(key)
  if (cachedData === undefined) return undefined
  let fn: CompiledModule['fn'] & { cachedDataRejected?: boolean }
  try {
    fn = vm.compileFunction(source, scriptParams, { filename, cachedData }) as typeof fn
  } catch (err) {
    throw syntaxErrorOf(label, entry, source, filename, scriptParams, err, appended)
  }
  if (fn.cachedDataRejected === true) {
    codeCacheStats.rejected++
    dropCodeCache(key)
    return { fn, fromCache: false }
  }
  codeCacheStats.used++
  return { fn, fromCache: true }
}

function syntaxError(label: string, entry: string, err: unknown) {
  // V8 puts `<filename>:<line>` as the first line of a SyntaxError's stack
  const line = /:(\d+)\n/.exec((err as Error).stack ?? '')?.[1]
  const location = line ? `${entry}:${line}` : entry
  return nyalaError('NYALA_ERR_MODULE_SYNTAX', { bundle: label, location, reason: reasonOf(err) }, err)
}

/** The key a compiled entry is held by (held-functions.ts): its code cache key and the kind it runs as. */
function heldKeyOf(index: ResolveIndex, entry: string, key: string): string {
  const kind = moduleKindOf(index, entry)
  return `${key}\0${kind.format}:${kind.loader ?? ''}`
}

/**
 * What a running generation compiled for this entry (held-functions.ts),
 * when its bytes and name are the key's and it runs as the same kind here.
 * Checked before the source is even decoded.
 */
export function heldModule(
  index: ResolveIndex,
  entry: string,
  key: string | undefined,
): CompiledModule | undefined {
  if (key === undefined) return undefined
  const heldKey = heldKeyOf(index, entry, key)
  const code = heldCode(heldKey)
  return code && { ...code, fromCache: true, key: heldKey }
}

/**
 * Compiles a bundle entry as Node would run it (see `moduleKindOf`): CommonJS
 * as it is; ES modules, TypeScript, and CommonJS calling `import()` through
 * the transform (cached; done now, on this thread, if not done ahead).
 * `filename` is the name it is compiled under; `shown`, when given, the name
 * its stack frames show instead (`compiledAs`).
 */
export function compileModule(
  label: string,
  index: ResolveIndex,
  entry: string,
  source: string,
  filename: string,
  cache?: CacheRequest,
  shown?: string,
): CompiledModule {
  // what a generation holds it by, when the load asked for a code cache (held-functions.ts)
  const held = (compiled: CompiledModule): CompiledModule =>
    cache?.key === undefined ? compiled : { ...compiled, key: heldKeyOf(index, entry, cache.key) }
  const comment = shownNameComment(shown)
  const script = scriptOrKind(label, index, entry, source + comment, filename, cache, comment)
  // a map shipped with the file (compiled code: tsc's dist/, a package's build); its sources are
  // named under the bundle as stacks show it
  const url = mappingUrlOf(source)
  const shownAs = shown ?? filename
  const shipped = url === undefined ? undefined : () => shippedMapOf(index, entry, url, shownAs)
  if ('fn' in script) {
    registerSourceMap(filename, source + comment, undefined, shipped)
    return held(script)
  }
  const input = transformInputOf(index, entry, source, script.kind)
  let out: Transformed
  try {
    out = transformNow(input)
  } catch (err) {
    throw transformError(label, entry, err)
  }
  const code = out.code + comment
  const compiled = compileTransformed(label, entry, code, filename, script.kind, comment)
  // an inline map of the input esbuild has read already (transform.ts): only a map file is left
  registerSourceMap(
    filename,
    code,
    {
      json: out.map,
      own: transformSourceName(entry, input.loader),
      place: placeOf(shownAs, entry),
      shift: input.esm ? strictPrefix.length : 0,
    },
    url?.startsWith('data:') ? undefined : shipped,
  )
  return held(compiled)
}

/**
 * A CommonJS entry compiled as it is, or the kind to transform it as: an ES
 * module or TypeScript by its name, a `.js` ES module found by its syntax (as
 * Node detects it), or CommonJS that calls `import()`. A syntax error throws.
 */
export function scriptOrKind(
  label: string,
  index: ResolveIndex,
  entry: string,
  source: string,
  filename: string,
  cache?: CacheRequest,
  appended = '',
): CompiledModule | { kind: ModuleKind } {
  // `appended`: the comment the host put after `source` (`shownNameComment`), if any
  const kind = moduleKindOf(index, entry)
  if (kind.loader !== undefined) return { kind }
  const key = cache?.key
  try {
    const cached =
      key === undefined ? undefined : compileFromCache(label, entry, source, filename, key, appended)
    // a cache is only ever made of a script that calls no import(): no need to look again
    if (cached?.fromCache)
      return { fn: cached.fn, esm: false, namespace: false, transformed: false, fromCache: true }
    const fn = cached?.fn ?? compileScript(label, entry, source, filename, scriptParams, appended)
    return mayImportDynamically(source)
      ? { kind: cjsWithImport }
      : {
          fn,
          esm: false,
          namespace: false,
          transformed: false,
          fromCache: cache === undefined ? undefined : false,
        }
  } catch (err) {
    if (!entry.endsWith('.js') || !isEsmSyntaxError(reasonOf(err))) throw err
    return { kind: detectedEsm }
  }
}

function compileTransformed(
  label: string,
  entry: string,
  code: string,
  filename: string,
  kind: ModuleKind,
  appended: string,
): CompiledModule {
  const fn = compileScript(label, entry, code, filename, transformedParams, appended)
  // TypeScript (and JSX) in a CommonJS scope is still written with import/export (Node's syntax
  // detection runs such a file as an ES module); `export =` gives no __esModule, and stays
  // CommonJS to importers
  const namespace = kind.format === 'esm' || (kind.loader !== undefined && kind.loader !== 'js')
  return { fn, esm: kind.format === 'esm', namespace, transformed: true }
}

export function transformError(label: string, entry: string, err: unknown) {
  if (!(err instanceof TransformFailure)) {
    return nyalaError(
      'NYALA_ERR_MODULE_SYNTAX',
      { bundle: label, location: entry, reason: reasonOf(err) },
      err,
    )
  }
  const location = err.line === undefined ? entry : `${entry}:${err.line}`
  if (err.tla) return nyalaError('NYALA_ERR_MODULE_TOP_LEVEL_AWAIT', { bundle: label, location })
  return nyalaError('NYALA_ERR_MODULE_SYNTAX', { bundle: label, location, reason: err.message }, err)
}

/** What the transform of `entry` is given: its kind and the tsconfig.json that applies. */
export function transformInputOf(
  index: ResolveIndex,
  entry: string,
  source: string,
  kind: ModuleKind,
): TransformInput {
  return {
    entry,
    source,
    loader: kind.loader ?? 'js',
    esm: kind.format === 'esm',
    // its JSX options apply to .jsx files too, as TypeScript and esbuild read them
    tsconfig: kind.loader !== undefined && kind.loader !== 'js' ? tsconfigOf(index, entry) : undefined,
  }
}

/** The nearest tsconfig.json above a TypeScript file, inside its package (not past `node_modules`). */
function tsconfigOf(index: ResolveIndex, entry: string): string | undefined {
  for (let dir = path.posix.dirname(entry); ; dir = path.posix.dirname(dir)) {
    if (dir === 'node_modules' || dir.endsWith('/node_modules')) return undefined
    const file = dir === '.' ? 'tsconfig.json' : `${dir}/tsconfig.json`
    if (index.files.has(file)) return index.readText(file)
    if (dir === '.') return undefined
  }
}

/**
 * The transform inputs of the entries that need one, as far as can be told
 * without compiling (a `.js` ES module in a CommonJS scope is only found by
 * compiling it). `knownPlain` entries are known to be CommonJS needing none.
 */
export function transformsOf(
  index: ResolveIndex,
  entries: Iterable<string>,
  knownPlain: (entry: string) => boolean = () => false,
): TransformInput[] {
  const inputs: TransformInput[] = []
  for (const entry of entries) {
    if (!index.files.has(entry) || knownPlain(entry)) continue
    let kind = moduleKindOf(index, entry)
    if (kind.format === 'json' || kind.format === 'addon') continue
    const source = index.readText(entry)
    if (kind.loader === undefined) {
      // a guess: the load compiles it first and decides
      if (entry.endsWith('.js') && /^\s*(import|export)\b/m.test(source)) kind = detectedEsm
      else if (mayImportDynamically(source)) kind = cjsWithImport
      else continue
    }
    inputs.push(transformInputOf(index, entry, source, kind))
  }
  return inputs
}

/**
 * Transforms ahead, without blocking this thread, what a load will need, so
 * the load finds it cached. Failures are left for the load to report.
 * Resolves with the results (new or cached), for another thread's cache.
 */
export async function transformAhead(inputs: readonly TransformInput[]): Promise<Transformed[]> {
  const results = await Promise.all(inputs.map((input) => transformLater(input).catch(() => undefined)))
  return results.filter((r): r is Transformed => r !== undefined)
}
