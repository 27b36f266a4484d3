import type { RequestGate } from '../reload/request-gate.js'
import type { Generation } from '../runtime/generation.js'

/** Where requests under one prefix go. */
export interface Route {
  readonly module: string
  readonly prefix: string
  /** The running generation, or `undefined` when the module is not running (503). */
  readonly generation: Generation | undefined
  readonly state: string
  /** Set while a blocking-mode reload swaps this module: requests wait on it, then look up again. */
  readonly gate?: RequestGate | undefined
}

/**
 * An immutable map from URL prefix to route. A reload builds a new table and
 * swaps the pointer in one step, so no request sees old and new modules mixed.
 * Lookup walks the path's own segments from longest to shortest, so its cost
 * depends on the URL's depth, not on how many modules are installed.
 *
 * The usual lookup makes no string: one pass over the URL's characters hashes
 * each segment boundary into an integer, and a prefix with that hash is
 * checked with `startsWith`. A substring and its string hash cost ~500
 * instructions a request under callgrind (bench/dispatch-gap.md, round 3).
 * Percent-encoded paths and URLs not starting with `/` take the string path.
 */
export class DispatchTable {
  readonly #byPrefix: Map<string, Route>
  /** The routes by `hashPrefix` of their prefix (a list: hashes can collide). */
  readonly #byHash: Map<number, Route[]>
  readonly #root: Route | undefined
  /** Scratch for lookup, which is synchronous: boundary hashes and ends, by depth. */
  readonly #hashes: Int32Array
  readonly #ends: Int32Array
  /** Each module's prefix, to drop its route when the module is replaced. */
  readonly #prefixOf: Map<string, string>
  /** The most segments any prefix has; deeper URLs are cut to this before lookup. */
  readonly #maxDepth: number

  /**
   * A table of `routes`; with `base`, that table with the routes of the
   * modules in `replaced` dropped first (a copy: `base` does not change).
   */
  constructor(routes: Iterable<Route>, base?: DispatchTable, replaced: Iterable<string> = []) {
    const byPrefix = new Map(base ? base.#byPrefix : undefined)
    const prefixOf = new Map(base ? base.#prefixOf : undefined)
    let maxDepth = base ? base.#maxDepth : 0
    let deepestGone = false
    for (const module of replaced) {
      const prefix = prefixOf.get(module)
      if (prefix === undefined) continue
      prefixOf.delete(module)
      if (byPrefix.get(prefix)?.module !== module) continue
      byPrefix.delete(prefix)
      if (depthOf(prefix) === maxDepth) deepestGone = true
    }
    if (deepestGone) {
      maxDepth = 0
      for (const prefix of byPrefix.keys()) maxDepth = Math.max(maxDepth, depthOf(prefix))
    }
    for (const route of routes) {
      byPrefix.set(route.prefix, route)
      prefixOf.set(route.module, route.prefix)
      maxDepth = Math.max(maxDepth, depthOf(route.prefix))
    }
    this.#byPrefix = byPrefix
    this.#prefixOf = prefixOf
    this.#maxDepth = maxDepth
    this.#root = byPrefix.get('/')
    this.#byHash = new Map()
    for (const route of byPrefix.values()) {
      if (route.prefix === '/') continue
      const hash = hashPrefix(route.prefix)
      const same = this.#byHash.get(hash)
      if (same) same.push(route)
      else this.#byHash.set(hash, [route])
    }
    this.#hashes = new Int32Array(maxDepth)
    this.#ends = new Int32Array(maxDepth)
  }

  /** This table with the routes of `modules` replaced by `routes` (a module left out loses its route). */
  replace(modules: Iterable<string>, routes: Iterable<Route>): DispatchTable {
    return new DispatchTable(routes, this, modules)
  }

  get routes(): readonly Route[] {
    return [...this.#byPrefix.values()]
  }

  /** The module whose route has exactly this prefix. */
  ownerOf(prefix: string): string | undefined {
    return this.#byPrefix.get(prefix)?.module
  }

  lookup(url: string): Route | undefined {
    const maxDepth = this.#maxDepth
    if (maxDepth === 0) return this.#root
    if (url.charCodeAt(0) !== 47) return this.#lookupPath(url)
    const hashes = this.#hashes
    const ends = this.#ends
    const length = url.length
    let depth = 0
    let hash = 0
    let i = 1
    for (; i < length; i++) {
      const c = url.charCodeAt(i)
      if (c === 47) {
        hashes[depth] = hash
        ends[depth] = i
        // keep at most maxDepth segments: a URL of thousands of slashes costs no more than a short one
        if (++depth === maxDepth) break
      } else if (c === 63) break
      else if (c === 37) return this.#lookupPath(url)
      hash = (Math.imul(hash, 31) + c) | 0
    }
    if (depth < maxDepth && i > 1) {
      hashes[depth] = hash
      ends[depth] = i
      depth++
    }
    while (depth > 0) {
      depth--
      const same = this.#byHash.get(hashes[depth] as number)
      if (same === undefined) continue
      const end = ends[depth] as number
      for (let k = 0; k < same.length; k++) {
        const route = same[k] as Route
        if (route.prefix.length === end && url.startsWith(route.prefix)) return route
      }
    }
    return this.#root
  }

  /** The string path: percent-decoded, as Fastify matches routes. */
  #lookupPath(url: string): Route | undefined {
    let end = url.length
    const query = url.indexOf('?')
    if (query !== -1) end = query
    // keep at most maxDepth segments: a URL of thousands of slashes costs no more than a short one
    let slashes = 0
    for (let i = 1; i < end; i++) {
      if (url.charCodeAt(i) === 47 && ++slashes === this.#maxDepth) {
        end = i
        break
      }
    }
    let path = end === url.length ? url : url.slice(0, end)
    // Fastify matches routes on the decoded path; match prefixes the same way
    if (path.includes('%')) path = decodePath(path)
    for (;;) {
      const route = this.#byPrefix.get(path)
      if (route) return route
      const cut = path.lastIndexOf('/')
      if (cut <= 0) break
      path = path.slice(0, cut)
    }
    return this.#root
  }
}

/** The hash `lookup` computes over a URL's characters after the leading `/`. */
function hashPrefix(prefix: string): number {
  let hash = 0
  for (let i = 1; i < prefix.length; i++) hash = (Math.imul(hash, 31) + prefix.charCodeAt(i)) | 0
  return hash
}

function depthOf(prefix: string): number {
  if (prefix === '/') return 0
  let depth = 0
  for (let i = 0; i < prefix.length; i++) if (prefix.charCodeAt(i) === 47) depth++
  return depth
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path)
  } catch {
    return path
  }
}

/** Pairs of modules that claim the same prefix, after normalization. */
export function prefixConflicts(
  claims: Iterable<{ module: string; prefix: string }>,
): { module: string; other: string; prefix: string }[] {
  const owner = new Map<string, string>()
  const conflicts: { module: string; other: string; prefix: string }[] = []
  for (const { module, prefix } of claims) {
    const first = owner.get(prefix)
    if (first === undefined) owner.set(prefix, module)
    else conflicts.push({ module: first, other: module, prefix })
  }
  return conflicts
}
