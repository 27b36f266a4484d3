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
 */
export class DispatchTable {
  readonly #byPrefix: ReadonlyMap<string, Route>
  /** The most segments any prefix has; deeper URLs are cut to this before lookup. */
  readonly #maxDepth: number
  readonly routes: readonly Route[]

  constructor(routes: Iterable<Route>) {
    const map = new Map<string, Route>()
    let maxDepth = 0
    for (const route of routes) {
      map.set(route.prefix, route)
      maxDepth = Math.max(maxDepth, route.prefix === '/' ? 0 : route.prefix.split('/').length - 1)
    }
    this.#byPrefix = map
    this.#maxDepth = maxDepth
    this.routes = Object.freeze([...map.values()])
  }

  lookup(url: string): Route | undefined {
    if (this.#maxDepth === 0) return this.#byPrefix.get('/')
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
    return this.#byPrefix.get('/')
  }
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
