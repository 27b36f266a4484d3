import { hash } from 'node:crypto'
import type { Bundle } from '../bundle/open-bundle.js'
import { heldFunctionStats } from './held-functions.js'

/**
 * V8 code caches of CommonJS scripts, so that a reload compiles the files it
 * has seen before nearly for free (deserializing a code cache costs a fraction
 * of parsing and compiling the source): docs/code-cache.md.
 *
 * - Keyed by the SHA-256 of the file's bytes AND the name it is compiled
 *   under: V8 checks only a cache's source length, so the content must be the
 *   key; and a function deserialized from a cache keeps the script name it was
 *   compiled under (seen in Node 20), which stack traces and crash attribution
 *   read, so the name must be the key too.
 * - The digests are made on the bundle reader's thread as it reads a bundle
 *   (`rememberDigests`): no hashing on this thread for a reload it read. A
 *   bundle opened on this thread (start-up) or handed over by another process
 *   has its scripts hashed here, when they are compiled and some cache is held.
 * - The caches are made on the bundle reader's thread too, after a generation
 *   has started, of the scripts it compiled from their source
 *   (`BundleReader.makeCodeCaches`): making one costs about as much as the
 *   compile itself. A cache made at compile time holds the top-level code and
 *   the functions V8 compiles eagerly, not those it compiles lazily when first
 *   called. Scripts compile with `vm.compileFunction` (not `vm.Script`, whose
 *   caches can be made after a run): V8 keeps every `vm.Script`'s source and
 *   code in its compilation cache, so each reload of new content would leak
 *   (docs/code-cache.md).
 * - Held in memory only, never on disk: V8 does not verify a cache's checksum
 *   in release builds, and a corrupt cache aborts the process. A cache V8
 *   refuses (other V8 flags: they are process-wide) is dropped and the file
 *   compiled from source.
 * - Bounded by bytes (least recently used dropped first): the key is the
 *   content, so reloads of the same content add nothing.
 */

/**
 * Counters (for the module start log line, benches and tests): scripts
 * compiled from a cache, caches V8 refused, caches stored.
 */
export const codeCacheStats = { used: 0, rejected: 0, stored: 0 }

/** The counters for a log line. */
export const codeCacheCounts = () => ({
  ...codeCacheStats,
  entries: cache.size,
  bytes: cachedBytes,
  // scripts not compiled at all: a running generation's wrapper called again (held-functions.ts)
  reused: heldFunctionStats.reused,
})

/** Bytes of code caches held before the least recently used are dropped. @default 32 MiB */
export const codeCacheLimitBytes = 32 * 1024 * 1024
let limit = codeCacheLimitBytes
const cache = new Map<string, Buffer>()
let cachedBytes = 0

/** Sets the bound (tests; 0 turns the cache off). Drops what no longer fits. */
export function setCodeCacheLimit(bytes: number): void {
  limit = bytes
  trim()
}

/** The cache key of a file compiled under `filename` whose bytes have `digest`. */
export const codeCacheKey = (digest: string, filename: string): string => `${digest}\0${filename}`

/** The code cache for `key`, if one is held (and marks it recently used). */
export function codeCacheFor(key: string): Buffer | undefined {
  const hit = cache.get(key)
  if (!hit) return undefined
  cache.delete(key)
  cache.set(key, hit)
  return hit
}

/** Whether a cache for `key` is held (without marking it used). */
export const hasCodeCache = (key: string): boolean => cache.has(key)

/** Keeps a code cache (a copy of its own, so the bytes counted are the bytes kept). */
export function storeCodeCache(key: string, data: Uint8Array): void {
  if (data.length === 0 || data.length > limit) return
  dropCodeCache(key)
  cache.set(key, Buffer.from(data))
  cachedBytes += data.length
  codeCacheStats.stored++
  trim()
}

/** Forgets a cache V8 refused. */
export function dropCodeCache(key: string): void {
  const old = cache.get(key)
  if (!old) return
  cache.delete(key)
  cachedBytes -= old.length
}

function trim(): void {
  for (const [key, data] of cache) {
    if (cachedBytes <= limit) return
    cache.delete(key)
    cachedBytes -= data.length
  }
}

/** Per-file digests of bundles the reader thread read, by bundle. */
const digests = new WeakMap<Bundle, ReadonlyMap<string, string>>()

/** Records the digests the reader thread made of `bundle`'s scripts. */
export function rememberDigests(bundle: Bundle, entries: readonly string[], values: readonly string[]): void {
  const map = new Map<string, string>()
  for (const [i, entry] of entries.entries()) map.set(entry, values[i]!)
  digests.set(bundle, map)
}

/** The digests the reader thread made of `bundle`'s scripts, to hand on with it (worker processes). */
export function knownDigests(bundle: Bundle): { entries: string[]; values: string[] } | undefined {
  const known = digests.get(bundle)
  return known ? { entries: [...known.keys()], values: [...known.values()] } : undefined
}

/**
 * The cache key of one entry of `bundle` compiled under `filename`: by the
 * digest the reader thread made, else (a bundle opened on this thread, or
 * handed over by another process) by one made here, once per bundle and entry,
 * about 2 ms per MB. A start-up hashes too, although no cache is held yet: the
 * key is also what the first generation's compiled wrappers are held by
 * (held-functions.ts), so the first reload after a start calls them again
 * rather than compiling every file on the thread that serves.
 */
export function codeCacheKeyOf(bundle: Bundle, entry: string, filename: string): string | undefined {
  let digest = digests.get(bundle)?.get(entry)
  if (digest === undefined) {
    const bytes = bundle.files.get(entry)
    if (bytes === undefined || !isCacheableScript(entry)) return undefined
    let own = madeHere.get(bundle)
    if (!own) {
      own = new Map()
      madeHere.set(bundle, own)
    }
    digest = own.get(entry) ?? fileDigest(bytes)
    own.set(entry, digest)
  }
  return codeCacheKey(digest, filename)
}

/** Digests made on this thread, for bundles the reader thread did not read. */
const madeHere = new WeakMap<Bundle, Map<string, string>>()

/** Which entries get a digest (and so may get a code cache): CommonJS scripts by their name. */
export const isCacheableScript = (entry: string): boolean => entry.endsWith('.js') || entry.endsWith('.cjs')

/** The digest of a file's bytes that code caches are keyed by (one-shot `hash`: half the cost of a Hash object for small files). */
export const fileDigest = (bytes: Uint8Array): string => hash('sha256', bytes, 'base64')

/** Digests of `bundle`'s cacheable scripts (the reader thread makes them as it reads a bundle). */
export function digestsOf(bundle: Bundle): { entries: string[]; values: string[] } {
  const entries: string[] = []
  const values: string[] = []
  for (const [entry, bytes] of bundle.files) {
    if (!isCacheableScript(entry)) continue
    entries.push(entry)
    let digest = digestOfBuffer.get(bytes)
    if (digest === undefined) {
      digest = fileDigest(bytes)
      digestOfBuffer.set(bytes, digest)
    }
    values.push(digest)
  }
  return { entries, values }
}

/**
 * Digests by the Buffer they were taken of: the reader takes a file's content
 * over from the module's last read when it is stored the same (zip-reuse.ts),
 * and its digest with it. Buffers are never written after a bundle is read.
 */
const digestOfBuffer = new WeakMap<Buffer, string>()
