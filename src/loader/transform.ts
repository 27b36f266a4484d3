import { createHash } from 'node:crypto'
import { type TransformOptions, transform, transformSync } from 'esbuild'
import { parseJsoncText } from './json-text.js'
import { scriptName, type TransformLoader } from './module-kind.js'

/**
 * ES module and TypeScript sources turned into CommonJS that `vm.compileFunction`
 * runs (and the garbage collector can drop with its generation), with esbuild.
 *
 * In the transformed code, `require(...)` is an import (esbuild writes each
 * `import` and `import()` as one; `import()` as `Promise.resolve().then(() =>
 * require(...))`), the source's own `require` is `__nyalaRequire` and
 * `import.meta` is `__nyalaImportMeta`: the loader passes all three.
 *
 * Results are kept in a bounded in-memory LRU keyed by the SHA-256 of the
 * source and everything that shapes the output, so a reload of unchanged files
 * does not transform them again. The bound is on the bytes of code and source
 * maps held (`cacheLimitBytes`), per thread.
 */

export interface TransformInput {
  /** Bundle entry, for messages and the source map's file name. */
  readonly entry: string
  readonly source: string
  /** `ts` for .ts/.mts/.cts, `tsx` and `jsx` for those files, else `js`. */
  readonly loader: TransformLoader
  /** ES module semantics (strict code); else CommonJS that uses `import()`, or TypeScript in CommonJS. */
  readonly esm: boolean
  /**
   * The text of the tsconfig.json that applies, if any (esbuild reads the options it knows:
   * `jsx`, `jsxFactory`, `jsxFragmentFactory`, `jsxImportSource` for JSX).
   */
  readonly tsconfig?: string | undefined
}

export interface Transformed {
  readonly key: string
  readonly code: string
  /** The source map (JSON text), for stack traces that name the original lines. */
  readonly map: string
}

/** A transform that esbuild refused: a syntax error, or top-level await (`tla`). */
export class TransformFailure extends Error {
  constructor(
    message: string,
    readonly line: number | undefined,
    readonly tla: boolean,
  ) {
    super(message)
  }
}

/**
 * Counters of transforms (for logs, benches and tests): made on this thread,
 * made on the bundle reader's thread for this one, answered from the cache,
 * and the milliseconds this thread spent in transforms it made.
 */
export const transformStats = { transformed: 0, transformedOffThread: 0, cacheHits: 0, ms: 0 }

/** The counters for a log line: transforms made (on any thread) and answered from the cache. */
export const transformCounts = () => ({
  made: transformStats.transformed + transformStats.transformedOffThread,
  cached: transformStats.cacheHits,
})

/** Bytes of code and maps the cache holds before it drops the least recently used. @default 64 MiB */
export const cacheLimitBytes = 64 * 1024 * 1024
let limit = cacheLimitBytes
const cache = new Map<string, Transformed>()
let cachedBytes = 0

/** Sets this thread's cache bound (the bundle reader's thread keeps none: the loading thread does). */
export function setTransformCacheLimit(bytes: number): void {
  limit = bytes
}

/** The keys of the transforms this thread holds. */
export const cachedKeys = (): string[] => [...cache.keys()]

// the output's version: a change of the options below must change every key
const optionsVersion = 'nyala-transform-3'

export function transformKey(input: TransformInput): string {
  return createHash('sha256')
    .update(`${optionsVersion}\0${input.loader}\0${input.esm}\0${input.tsconfig ?? ''}\0`)
    .update(input.source)
    .digest('hex')
}

/**
 * The name the transform gives its input, which its source map names. Never a .mjs/.mts name:
 * esbuild would then give an import of CommonJS "node mode" interop, which the loader gives
 * itself (so that ES modules importing ES modules get their default).
 */
export const transformSourceName = (entry: string, loader: TransformLoader): string =>
  `${entry.replace(scriptName, '')}.${loader}`

/**
 * `"jsx": "preserve"` (Next.js's default) and `"react-native"` leave JSX to a later tool, which
 * then applies React's automatic runtime; the host is the last tool, so it does the same
 * (importing `<jsxImportSource>/jsx-runtime`, default `react`). esbuild alone would compile them
 * to the classic `React.createElement`, which fails when it renders without `React` in scope. A
 * `jsxFactory` set beside them, or a file's own `@jsx` pragma, keeps the classic factory it names.
 */
function jsxOptionsOf(tsconfig: string, source: string): Pick<TransformOptions, 'jsx'> {
  const config = parseJsoncText(tsconfig) as { compilerOptions?: { jsx?: unknown; jsxFactory?: unknown } }
  const options = config?.compilerOptions
  // TypeScript reads the option's value in any case
  const jsx = typeof options?.jsx === 'string' ? options.jsx.toLowerCase() : undefined
  const later = jsx === 'preserve' || jsx === 'react-native'
  return later && options?.jsxFactory === undefined && !/@jsx\s+\S/.test(source) ? { jsx: 'automatic' } : {}
}

function optionsOf(input: TransformInput): TransformOptions {
  return {
    format: 'cjs',
    loader: input.loader,
    // a source with an inline map (`//# sourceMappingURL=data:...`) gets a map through both:
    // esbuild reads the inline one, and names its sources (source-maps.ts)
    sourcefile: transformSourceName(input.entry, input.loader),
    sourcemap: 'external',
    sourcesContent: false,
    target: `node${process.versions.node}`,
    supported: { 'dynamic-import': false },
    // free uses only: a file that declares its own `__dirname` or `__filename` (the ES module
    // idiom, from import.meta.url) keeps it, where a wrapper parameter of that name made the
    // declaration a SyntaxError ("already been declared"). Not `exports`: in a file without
    // import/export esbuild keeps it as CommonJS's own binding, whatever the define says
    define: {
      require: '__nyalaRequire',
      'import.meta': '__nyalaImportMeta',
      __dirname: '__nyalaDirname',
      __filename: '__nyalaFilename',
    },
    ...(input.tsconfig === undefined ? {} : { tsconfigRaw: input.tsconfig }),
    ...(input.tsconfig !== undefined && (input.loader === 'tsx' || input.loader === 'jsx')
      ? jsxOptionsOf(input.tsconfig, input.source)
      : {}),
    logLevel: 'silent',
  }
}

/**
 * What an ES module's transformed code starts with: ES modules are strict. On the first line, so
 * no line moves; the columns of that line move by its length (source-maps.ts takes it off).
 */
export const strictPrefix = "'use strict';"

function finish(input: TransformInput, key: string, code: string, map: string): Transformed {
  const result = { key, code: input.esm ? `${strictPrefix}${code}` : code, map }
  remember(result)
  return result
}

function failure(err: unknown): TransformFailure {
  const first = (err as { errors?: { text: string; location?: { line: number } | null }[] }).errors?.[0]
  if (!first) return new TransformFailure((err as Error).message, undefined, false)
  return new TransformFailure(first.text, first.location?.line, /top-level await/i.test(first.text))
}

/** The cached result for `input`, if any (and counts the hit). */
export function cached(input: TransformInput, key = transformKey(input)): Transformed | undefined {
  const hit = cache.get(key)
  if (!hit) return undefined
  cache.delete(key)
  cache.set(key, hit)
  transformStats.cacheHits++
  return hit
}

/** Transforms now, on this thread (esbuild's service does the work; this thread waits). */
export function transformNow(input: TransformInput): Transformed {
  const { key, hit, t0 } = lookup(input)
  if (hit) return hit
  try {
    return made(input, key, transformSync(input.source, optionsOf(input)), t0)
  } catch (err) {
    throw failed(err, t0)
  }
}

/** Transforms without blocking this thread (esbuild works in its own process). */
export async function transformLater(input: TransformInput): Promise<Transformed> {
  const { key, hit, t0 } = lookup(input)
  if (hit) return hit
  try {
    return made(input, key, await transform(input.source, optionsOf(input)), t0)
  } catch (err) {
    throw failed(err, t0)
  }
}

function lookup(input: TransformInput) {
  const key = transformKey(input)
  return { key, hit: cached(input, key), t0: performance.now() }
}

function made(input: TransformInput, key: string, out: { code: string; map: string }, t0: number) {
  transformStats.ms += performance.now() - t0
  transformStats.transformed++
  return finish(input, key, out.code, out.map)
}

function failed(err: unknown, t0: number): TransformFailure {
  transformStats.ms += performance.now() - t0
  return failure(err)
}

/** Puts a result into the cache (one made on another thread, say). */
export function remember(result: Transformed): void {
  const old = cache.get(result.key)
  if (old) {
    cache.delete(result.key)
    cachedBytes -= old.code.length + old.map.length
  }
  cache.set(result.key, result)
  cachedBytes += result.code.length + result.map.length
  for (const [key, entry] of cache) {
    if (cachedBytes <= limit || cache.size === 1) break
    cache.delete(key)
    cachedBytes -= entry.code.length + entry.map.length
  }
}
